"""Nothing of the dashboard answers without a session: the page, its socket, the history
API; wrong tokens are refused and rate-limited. Against the real service on a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest
from dashboard_support import (
    CONFIG,
    MYHAO_ORIGIN,
    MYHAO_TOKEN,
    MYHAO_TOKEN_IDS,
    SESSION_SECRET,
    VANLAM_TOKEN,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from portalpulse.dashboard.sessions import Session, SessionSigner
from support.client import Reader, page
from support.processes import RedisServer, Service

ServiceFactory = Callable[..., Service]


def signed_in(service: Service, site: str = "myhao", token: str = MYHAO_TOKEN) -> httpx.Client:
    client = httpx.Client(base_url=service.base, timeout=5)
    response = client.post("/dashboard/login", data={"site": site, "token": token})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/dashboard/?site={site}"
    cookie = response.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "path=/", "max-age=43"):
        assert attribute in cookie, cookie
    assert "secure" not in cookie  # plain http here
    return client


def cookie_header(client: httpx.Client) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


async def open_socket(service: Service, site: str, cookie: str = "", origin: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"Cookie": cookie} if cookie else {}
    return await connect(
        f"ws://127.0.0.1:{service.port}/dashboard/ws?site={site}",
        additional_headers=headers,
        origin=origin or service.base,  # type: ignore[arg-type]
        open_timeout=5,
    )


async def refused_status(
    service: Service, site: str, cookie: str = "", origin: str | None = None
) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(service, site, cookie, origin)
    return refused.value.response.status_code


async def test_without_a_session_nothing_answers(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    one = await Reader.open(
        service.ws_url, site="myhao", origin=MYHAO_ORIGIN, pages=[page("/tin/a.html", "Tin A")]
    )
    await one.wait_online(1, 5)
    home = service.get("/dashboard/", follow_redirects=False)
    assert home.status_code == 303
    assert home.headers["location"].startswith("/dashboard/login")
    assert "Tin A" not in home.text
    api = service.get("/api/v1/sites/myhao/history?minutes=5")
    assert api.status_code == 401 and api.json()["error"] == "unauthorized"
    assert service.get("/dashboard/api/session").status_code == 401
    assert await refused_status(service, "myhao") == 403
    # A forged cookie is no session.
    forged = "pp_dashboard=eyJzIjoiKiIsImUiOjk5OTk5OTk5OTl9.AAAA"
    assert await refused_status(service, "myhao", forged) == 403
    assert service.get("/api/v1/sites/myhao/history", headers={"Cookie": forged}).status_code == 401
    await one.close()


async def test_a_session_opens_its_own_site_only(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    client = signed_in(service)
    assert client.get("/dashboard/").status_code == 200
    session = client.get("/dashboard/api/session").json()
    assert [s["id"] for s in session["sites"]] == ["myhao"]
    assert session["sites"][0]["url"] == MYHAO_ORIGIN
    assert client.get("/api/v1/sites/vanlam/history").status_code == 403
    assert await refused_status(service, "vanlam", cookie_header(client)) == 403
    assert await refused_status(service, "nowhere", cookie_header(client)) == 404
    # Another web site cannot open the socket with the editor's cookie.
    evil = "https://evil.example"
    assert await refused_status(service, "myhao", cookie_header(client), evil) == 403

    one = await Reader.open(
        service.ws_url,
        site="myhao",
        origin=MYHAO_ORIGIN,
        pages=[page("/tin/a.html", "Tin A")],
        device="mobile",
    )
    ws = await open_socket(service, "myhao", cookie_header(client))
    frame = json.loads(await ws.recv())
    while frame["online"] != 1:
        frame = json.loads(await ws.recv())
    assert frame["type"] == "dashboard" and frame["site"] == "myhao"
    assert frame["pages"][0]["path"] == "/tin/a.html" and frame["devices"]["mobile"] == 1
    await ws.close()
    # Signing in to a second site keeps the first.
    again = client.post("/dashboard/login", data={"site": "vanlam", "token": VANLAM_TOKEN})
    assert again.status_code == 303
    sites = [s["id"] for s in client.get("/dashboard/api/session").json()["sites"]]
    assert sorted(sites) == ["myhao", "vanlam"]
    await one.close()


async def test_history_answers_signed_in_editors_with_bounded_minutes(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    one = await Reader.open(service.ws_url, site="myhao", origin=MYHAO_ORIGIN)
    await one.wait_online(1, 5)
    client = signed_in(service)
    body = client.get("/api/v1/sites/myhao/history").json()
    assert body["site"] == "myhao"
    assert 1 <= len(body["minutes"]) <= 60
    ts, online = body["minutes"][-1]
    assert ts % 60 == 0 and online >= 1
    assert [p[0] for p in body["minutes"]] == sorted(p[0] for p in body["minutes"])
    assert len(client.get("/api/v1/sites/myhao/history?minutes=11520").json()["minutes"]) >= 1
    for bad in ("0", "11521", "-1", "abc", "1.5", ""):
        response = client.get(f"/api/v1/sites/myhao/history?minutes={bad}")
        assert response.status_code == 400, bad
        assert response.json()["error"] == "bad_minutes"
        assert response.json()["message"]
    assert client.get("/api/v1/sites/nowhere/history").status_code == 404
    await one.close()


def test_wrong_tokens_are_rate_limited_per_address(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    for _ in range(5):
        wrong = service.post("/dashboard/login", data={"site": "myhao", "token": "guess"})
        assert wrong.status_code == 401
        assert "Mã truy cập không đúng" in wrong.text
        assert "set-cookie" not in wrong.headers
    blocked = service.post("/dashboard/login", data={"site": "myhao", "token": MYHAO_TOKEN})
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert "set-cookie" not in blocked.headers
    english = service.post(
        "/dashboard/login", data={"site": "myhao", "token": "guess", "lang": "en"}
    )
    assert english.status_code == 429 and "Too many failed attempts" in english.text


def test_wrong_tokens_count_across_instances_on_one_redis(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    # Behind a load balancer, a guesser's tries land on every replica in turn. The
    # load balancer is on loopback here: trusted, so its X-Forwarded-For is read.
    behind_proxy = CONFIG.replace("[server]", '[server]\ntrusted_proxies = ["127.0.0.1"]', 1)
    replicas = [make_service(config=behind_proxy, redis_url=redis.url) for _ in range(2)]
    for i in range(5):
        wrong = replicas[i % 2].post("/dashboard/login", data={"site": "myhao", "token": "guess"})
        assert wrong.status_code == 401
    for replica in replicas:  # 3 failures on one, 2 on the other: both refuse now
        blocked = replica.post("/dashboard/login", data={"site": "myhao", "token": MYHAO_TOKEN})
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
    # Another address is not held up.
    other = replicas[0].post(
        "/dashboard/login",
        data={"site": "myhao", "token": MYHAO_TOKEN},
        headers={"x-forwarded-for": "203.0.113.9"},
    )
    assert other.status_code == 303


def test_the_cookie_is_secure_behind_https(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    # X-Forwarded-Proto is read from a trusted proxy only, like X-Forwarded-For.
    proxied = CONFIG.replace("[server]", '[server]\ntrusted_proxies = ["127.0.0.1"]', 1)
    direct, service = (make_service(config=c, redis_url=redis.url) for c in (CONFIG, proxied))
    claimed, response = (
        s.post(
            "/dashboard/login",
            data={"site": "myhao", "token": MYHAO_TOKEN},
            headers={"X-Forwarded-Proto": "https"},
        )
        for s in (direct, service)
    )
    assert claimed.status_code == response.status_code == 303
    assert "secure" not in claimed.headers["set-cookie"].lower()  # the client's claim
    assert "secure" in response.headers["set-cookie"].lower()
    logout = service.post("/dashboard/logout", headers={"Cookie": response.headers["set-cookie"]})
    assert logout.status_code == 303
    assert 'pp_dashboard=""' in logout.headers["set-cookie"] or "max-age=0" in (
        logout.headers["set-cookie"].lower()
    )


async def test_an_open_socket_closes_when_the_session_expires(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    short = SessionSigner(SESSION_SECRET).sign(
        Session(frozenset({"myhao"}), time.time() + 2, MYHAO_TOKEN_IDS)
    )
    ws = await open_socket(service, "myhao", f"pp_dashboard={short}")
    assert json.loads(await ws.recv())["type"] == "dashboard"
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(6):
            while True:
                await ws.recv()
    assert ws.close_code == 4401
    # And the cookie no longer opens anything.
    assert await refused_status(service, "myhao", f"pp_dashboard={short}") == 403
    expired = service.get(
        "/dashboard/", headers={"Cookie": f"pp_dashboard={short}"}, follow_redirects=False
    )
    assert expired.status_code == 303 and "expired=1" in expired.headers["location"]
