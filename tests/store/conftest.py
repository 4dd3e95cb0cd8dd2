"""Fixtures of the store tests that need several instances on one Redis or on a
real 3-master Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from portalpulse.store.redis import RedisStore
from support.processes import RedisServer, offset_to_local_noon


@pytest.fixture(params=["redis", "cluster"])
async def nodes(request: pytest.FixtureRequest) -> list[RedisServer]:
    if request.param == "redis":
        return [request.getfixturevalue("redis")]
    cluster: list[RedisServer] = request.getfixturevalue("cluster")
    for node in cluster:
        node.cli("flushall")
    return cluster


@pytest.fixture
async def stores(nodes: list[RedisServer]) -> AsyncIterator[Callable[..., object]]:
    made: list[RedisStore] = []
    offset = offset_to_local_noon()

    async def make(follow: bool = True, announces: bool = True) -> RedisStore:
        store = RedisStore(f"redis://127.0.0.1:{nodes[0].port}/0", follow=follow)
        store.clock_offset = offset
        if not announces:  # as a version from before the feed: no '+', no publish
            store.instance_id = store.flusher.instance_id = "0ld0ld01"
        await store.open()
        if not announces:
            store.flusher.publish = None
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


def calls(nodes: list[RedisServer], *commands: str) -> int:
    """How many times every node ran any of `commands` (INFO commandstats)."""
    total = 0
    for node in nodes:
        for line in node.cli("info", "commandstats").splitlines():
            name, _, rest = line.partition(":")
            if name.removeprefix("cmdstat_") in commands:
                total += int(rest.split("calls=")[1].split(",")[0])
    return total
