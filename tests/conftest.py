"""Fixtures: real redis-server processes, a real Redis Cluster, real service processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.processes import (
    DEMO_SITE,
    FAST_TIMING,
    LOG_FAULTS,
    RedisServer,
    Service,
    free_port,
    redis_cluster,
    redis_server,
    write_config,
)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes


ServiceFactory = Callable[..., Service]


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Start `portalpulse serve` processes; their logs must hold no traceback."""
    started: list[Service] = []

    def start(
        config: str = FAST_TIMING + DEMO_SITE,
        redis_url: str | None = None,
        data_dir: Path | None = None,
        extra: list[str] | None = None,
        allow_errors: bool = False,
        fanout: str | None = None,
    ) -> Service:
        index = len(started)
        if fanout is not None:  # the fan-out's implementation: "direct" or "asgi"
            config = config.replace("[server]", f'[server]\nfanout = "{fanout}"', 1)
        service = Service(
            port=free_port(),
            config=write_config(tmp_path / f"config-{index}.toml", config),
            data_dir=data_dir or tmp_path / f"data-{index}",
            redis_url=redis_url,
        )
        service.start(extra)
        service.allow_errors = allow_errors  # type: ignore[attr-defined]
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
    for service in started:
        logs = service.logs()
        if not getattr(service, "allow_errors", False):
            for fault in LOG_FAULTS:
                assert fault not in logs, f"service log has {fault!r}:\n{logs[-3000:]}"
