"""What ops see: shutdown, readiness, metrics, restarts, the command line."""

from __future__ import annotations

import signal
import subprocess
import sys

from support.client import Reader, visitor_id
from support.processes import FAST_TIMING, REPO, free_port, metric, wait_until, write_config
from support.waiting import throughout, until

PUSH = 0.5
COUNTED = PUSH + 1


async def test_sigterm_closes_with_1001_and_readers_move_without_a_dip(redis, make_service) -> None:
    a = make_service(redis_url=redis.url)
    b = make_service(redis_url=redis.url)
    watcher = await Reader.open(b.ws_url)
    visitor = visitor_id()
    moving = await Reader.open(a.ws_url, visitor=visitor)
    await watcher.wait_online(2, COUNTED)
    assert a.stop(signal.SIGTERM) == 0
    assert await moving.wait_closed(5) == 1001
    moved = await Reader.open(b.ws_url, visitor=visitor, resume=True)

    def both_counted() -> bool:
        return watcher.snapshot is not None and watcher.snapshot["online"] == 2

    # Time passes on purpose: the count must not dip while the old instance's hold ends.
    await throughout(both_counted, 3, "the watcher sees 2 online")
    await moved.close()


async def test_readyz_follows_redis_and_counts_come_back(tmp_path, make_service) -> None:
    from support.processes import RedisServer

    server = RedisServer(free_port(), tmp_path / "r")
    server.dir.mkdir()
    server.start()
    try:
        service = make_service(redis_url=server.url, allow_errors=True)
        assert service.get("/readyz").json() == {"status": "ready"}
        reader = await Reader.open(service.ws_url)
        await reader.wait_online(1, COUNTED)
        server.kill()
        response = service.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable" and response.json()["reason"]
        assert service.get("/healthz").status_code == 200
        server.start()  # the same port, empty: presence is soft state
        wait_until(lambda: service.get("/readyz").status_code == 200, 10, "ready again")
        # The live connection's own refreshes rebuild its presence.
        await reader.wait_online(1, 3 + 2)
        assert "Traceback" not in service.logs()
    finally:
        server.kill()


async def test_metrics_show_what_happens(make_service) -> None:
    service = make_service()
    readers = [await Reader.open(service.ws_url) for _ in range(2)]
    await readers[0].wait_online(2, COUNTED)
    bad = await Reader.open(service.ws_url, hello=False)
    await bad.send("nope")
    await bad.wait_closed(5)
    service.post("/api/v1/sites/demo/beats", json={"visitor": visitor_id()})

    def counted() -> str | None:
        text = service.get("/metrics").text
        return text if metric(text, "portalpulse_online_visitors", 'site="demo"') == 3 else None

    text = await until(counted, 5, "the HTTP beat's visitor in the metrics")
    assert metric(text, "portalpulse_connections", 'transport="ws"') == 2
    assert metric(text, "portalpulse_online_visitors", 'site="demo"') == 3
    assert metric(text, "portalpulse_beats_total", 'transport="ws"') >= 2
    assert metric(text, "portalpulse_beats_total", 'transport="http"') == 1
    assert metric(text, "portalpulse_messages_rejected_total", 'reason="bad_json"') == 1
    assert metric(text, "portalpulse_push_seconds_count") >= 1
    assert metric(text, "portalpulse_store_seconds_count", 'op="flush"') >= 1
    assert "portalpulse_store_errors_total" in text
    assert metric(text, "portalpulse_connections_closed_total", 'code="4400"') == 1
    assert metric(text, "portalpulse_snapshots_sent_total") >= 2
    assert metric(text, "process_open_fds") > 0
    # No label takes a value from client input.
    for line in text.splitlines():
        assert "/" not in line.split(" ")[0] or line.startswith("#"), line


async def test_embedded_counters_survive_a_restart(tmp_path, make_service) -> None:
    data = tmp_path / "counters"
    first = make_service(data_dir=data)
    reader = await Reader.open(first.ws_url)
    await reader.wait_for(lambda s: s["total_visits"] == 1, COUNTED)
    await reader.close()
    first.stop()
    second = make_service(data_dir=data)
    stats = second.stats()
    assert stats["total_visits"] == 1
    assert stats["today"]["visits"] == 1 and stats["today"]["views"] == 1
    assert stats["today"]["visitors"] == 1 and stats["today"]["peak_online"] == 1


async def test_redis_counters_survive_a_redis_restart_with_aof(tmp_path, make_service) -> None:
    from support.processes import RedisServer

    server = RedisServer(free_port(), tmp_path / "aof", appendonly=True)
    server.dir.mkdir()
    server.start()
    try:
        service = make_service(redis_url=server.url, allow_errors=True)
        reader = await Reader.open(service.ws_url)
        await reader.wait_for(lambda s: s["total_visits"] == 1, COUNTED)
        server.kill()
        server.start()
        wait_until(lambda: service.get("/readyz").status_code == 200, 10, "ready again")
        stats = wait_until(lambda: service.stats(), 5, "stats")
        assert stats["total_visits"] == 1 and stats["today"]["views"] == 1
    finally:
        server.kill()


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portalpulse.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PYTHONPATH": str(REPO / "service"), "PATH": "/usr/bin:/bin"},
    )


def test_cli_refuses_workers_without_redis_and_names_bad_keys(tmp_path) -> None:
    result = run_cli("serve", "--workers", "2", "--port", str(free_port()))
    assert result.returncode == 2
    assert "--workers above 1 needs Redis" in result.stderr
    bad = write_config(tmp_path / "bad.toml", "[server]\npresence_ttl = -1\n")
    result = run_cli("serve", "--config", str(bad))
    assert result.returncode == 2
    assert "server.presence_ttl" in result.stderr
    bad = write_config(tmp_path / "bad2.toml", '[sites.Bad_Site]\norigins = ["*"]\n')
    result = run_cli("serve", "--config", str(bad))
    assert "sites.Bad_Site" in result.stderr
    assert "Traceback" not in result.stderr


async def test_two_workers_on_redis_serve_one_count(redis, tmp_path) -> None:
    port = free_port()
    config = write_config(tmp_path / "w.toml", FAST_TIMING + '[sites.demo]\norigins = ["*"]\n')
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portalpulse.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--workers",
            "2",
            "--redis",
            redis.url,
        ],
        env={"PYTHONPATH": str(REPO / "service"), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        import httpx

        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200,
            20,
            "workers up",
        )
        readers = [await Reader.open(f"ws://127.0.0.1:{port}/ws") for _ in range(6)]
        for reader in readers:
            await reader.wait_online(6, COUNTED + 1)
        # Any worker's /metrics speaks for all of them.
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert metric(text, "portalpulse_connections", 'transport="ws"') == 6
        assert metric(text, "portalpulse_online_visitors", 'site="demo"') == 6
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read().decode()
