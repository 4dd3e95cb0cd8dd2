"""A withdrawn dashboard token ends its sessions (issue 9): an instance restarted
without it refuses them at once, and instances still on the older configuration
end them, open dashboards included, within a minute (here: two checks of 1 s).
Two real instances on a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest
from dashboard_support import CONFIG, MYHAO_TOKEN, VANLAM_TOKEN
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from portalpulse.dashboard.tokens import token_hash
from support.processes import RedisServer, Service

ServiceFactory = Callable[..., Service]
CHECK = 1.0
CHECKED = CONFIG.replace("[dashboard]", f"[dashboard]\ntoken_check_seconds = {CHECK}", 1)
WITHDRAWN = CHECKED.replace(f'"{token_hash(MYHAO_TOKEN)}"', "", 1)


def sign_in(service: Service, site: str, token: str) -> str:
    reply = httpx.post(
        service.base + "/dashboard/login", data={"site": site, "token": token}, timeout=5
    )
    assert reply.status_code == 303, reply.text
    return reply.headers["set-cookie"].split(";")[0]


def whoami(service: Service, cookie: str) -> int:
    return httpx.get(
        service.base + "/dashboard/api/session", headers={"Cookie": cookie}, timeout=5
    ).status_code


async def dashboard(service: Service, site: str, cookie: str) -> ClientConnection:
    ws = await connect(
        f"ws://127.0.0.1:{service.port}/dashboard/ws?site={site}",
        additional_headers={"Cookie": cookie},
        origin=service.base,  # type: ignore[arg-type]
        open_timeout=5,
    )
    assert json.loads(await ws.recv())["type"] == "dashboard"
    return ws


async def closed_within(ws: ClientConnection, seconds: float) -> int | None:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(seconds):
            while True:
                await ws.recv()
    return ws.close_code


async def test_a_withdrawn_token_ends_its_sessions_on_every_instance(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    assert WITHDRAWN != CHECKED
    old = make_service(config=CHECKED, redis_url=redis.url)
    myhao = sign_in(old, "myhao", MYHAO_TOKEN)
    vanlam = sign_in(old, "vanlam", VANLAM_TOKEN)
    watching = await dashboard(old, "myhao", myhao)
    other = await dashboard(old, "vanlam", vanlam)
    assert whoami(old, myhao) == 200
    # The operator removes the token from the config and restarts an instance.
    # (In a thread: the open sockets keep answering the server's pings meanwhile.)
    new = await asyncio.to_thread(make_service, config=WITHDRAWN, redis_url=redis.url)
    assert whoami(new, myhao) == 401, "refused at once where the token is gone"
    with pytest.raises(InvalidStatus) as refused:
        await dashboard(new, "myhao", myhao)
    assert refused.value.response.status_code == 403
    # The instance still on the old config ends the session within two checks.
    started = time.monotonic()
    assert await closed_within(watching, 2 * CHECK + 3) == 4401
    assert whoami(old, myhao) == 401
    assert time.monotonic() - started < 2 * CHECK + 3
    # Sessions of other tokens go on, on both instances.
    assert whoami(old, vanlam) == 200 and whoami(new, vanlam) == 200
    await asyncio.sleep(CHECK + 0.5)  # time passes on purpose: one more check ends nothing
    assert other.close_code is None
    await other.close()
