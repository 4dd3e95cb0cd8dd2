"""`GET /api/v1/openapi.json` is a valid OpenAPI 3.1 document, and it tells the truth:
every answer it documents (each status of each endpoint, each error code) is produced
by a real service on a real Redis, and each body matches its documented schema."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import jsonschema
from openapi_spec_validator import validate

from portalpulse.dashboard.tokens import token_hash
from support.client import page, visitor_id
from support.processes import FAST_TIMING, RedisServer, Service
from support.waiting import until

TOKEN = "openapi-editor-token-for-tests-00000000000"
API_TOKEN = "openapi-program-token-for-tests-0000000000"
OTHER_API_TOKEN = "openapi-other-program-token-for-tests-0000"
ORIGIN = "http://localhost:8000"
CONFIG = (
    FAST_TIMING.replace("[server]", "[server]\nmax_http_beats_per_ip = 20")
    + f"""
[dashboard]
session_secret = "openapi-test-secret-0123456789ab"

[sites.demo]
origins = ["http://localhost:*"]
dashboard_tokens = ["{token_hash(TOKEN)}"]
api_tokens = ["{token_hash(API_TOKEN)}"]

[sites.other]
origins = ["https://other.example"]
api_tokens = ["{token_hash(OTHER_API_TOKEN)}"]
"""
)
BEATS = "/api/v1/sites/demo/beats"
STATS = "/api/v1/sites/demo/stats"
BADGE = "/api/v1/sites/demo/badge.svg"
HISTORY = "/api/v1/sites/demo/history"

ServiceFactory = Callable[..., Service]
Seen = dict[tuple[str, str, str], set[str]]  # (path, method, status) -> error codes seen


class Checker:
    """Validates each answer against the document and notes which answers were seen."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.seen: Seen = {}

    def answer_schema(self, path: str, method: str, status: int) -> dict[str, Any]:
        operation = self.document["paths"][path][method]
        assert str(status) in operation["responses"], f"{method} {path}: {status} undocumented"
        return operation["responses"][str(status)]  # type: ignore[no-any-return]

    def check(self, path: str, method: str, response: httpx.Response) -> None:
        documented = self.answer_schema(path, method, response.status_code)
        key = (path, method, str(response.status_code))
        codes = self.seen.setdefault(key, set())
        content = documented.get("content", {})
        if not content:
            return
        media = response.headers["content-type"].split(";")[0]
        assert media in content, f"{key}: {media} not among {list(content)}"
        schema = content[media]["schema"]
        if media != "application/json":
            return
        body = response.json()
        # The document's components travel with the schema, so "#/components/..." resolves.
        jsonschema.Draft202012Validator(
            {**schema, "components": self.document["components"]}
        ).validate(body)
        if "error" in body:
            codes.add(body["error"])

    def documented(self) -> Seen:
        out: Seen = {}
        for path, methods in self.document["paths"].items():
            for method, operation in methods.items():
                for status, answer in operation["responses"].items():
                    schema = answer.get("content", {}).get("application/json", {}).get("schema")
                    codes: set[str] = set()
                    if schema and "allOf" in schema:
                        codes = set(schema["allOf"][1]["properties"]["error"]["enum"])
                    out[(path, method, status)] = codes
        return out


def long_history_calls(
    bearer: dict[str, str], other: dict[str, str]
) -> list[tuple[str, str, dict[str, str], int]]:
    """(path, documented path, headers, status) for the long history's endpoints."""
    site = "/api/v1/sites/{site}"
    calls: list[tuple[str, str, dict[str, str], int]] = []
    for name in ("history", "history.csv"):
        doc = f"{site}/{name}"
        real = f"/api/v1/sites/demo/{name}"
        calls += [
            (f"{real}?days=7", doc, bearer, 200),
            (f"{real}?days=0", doc, bearer, 400),
            (f"{real}?from=2026-13-01", doc, bearer, 400),
            (f"{real}?days=7", doc, {}, 401),
            (f"{real}?days=7", doc, other, 403),
            (f"/api/v1/sites/nope/{name}?days=7", doc, bearer, 404),
        ]
    calls.append((f"{HISTORY}?minutes=0", f"{site}/history", bearer, 400))
    for name in ("top", "top.csv"):
        doc = f"{site}/{name}"
        real = f"/api/v1/sites/demo/{name}"
        calls += [
            (real, doc, bearer, 200),
            (f"{real}?date=someday", doc, bearer, 400),
            (real, doc, {}, 401),
            (real, doc, other, 403),
            (f"/api/v1/sites/nope/{name}", doc, bearer, 404),
        ]
    return calls


def beat(**fields: Any) -> dict[str, Any]:
    return {"visitor": visitor_id(), "pages": [page("/a")], "engaged": True, **fields}


async def test_the_openapi_document_is_valid_and_matches_live_answers(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(CONFIG, redis_url=redis.url, allow_errors=True)
    document = service.get("/api/v1/openapi.json").json()
    validate(document)  # OpenAPI 3.1, by openapi-spec-validator
    checker = Checker(document)
    doc_beats, doc_stats = "/api/v1/sites/{site}/beats", "/api/v1/sites/{site}/stats"
    doc_badge, doc_history = "/api/v1/sites/{site}/badge.svg", "/api/v1/sites/{site}/history"

    async with httpx.AsyncClient(base_url=service.base, timeout=10) as http:

        async def post(body: Any, status: int, **kw: Any) -> None:
            if isinstance(body, dict):
                kw["json"] = body
            else:
                kw["content"] = body
            response = await http.post(kw.pop("path", BEATS), **kw)
            assert response.status_code == status, response.text
            checker.check(doc_beats, "post", response)

        json_type = {"Content-Type": "application/json"}
        text_type = {"Content-Type": "text/plain;charset=UTF-8"}
        answer = await http.post(BEATS, json=beat(), headers={"Origin": ORIGIN})
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == ORIGIN
        checker.check(doc_beats, "post", answer)
        await post(json.dumps(beat()).encode(), 200, headers=text_type)
        await post(b"{not json", 400, headers=json_type)
        await post(b"[1, 2]", 400, headers=json_type)
        await post({"visitor": "short"}, 400)
        await post(beat(pages=[{"path": "no-slash"}]), 400)
        await post(beat(pages=[page(f"/{i}") for i in range(21)]), 400)
        await post(beat(), 403, headers={"Origin": "https://evil.example"})
        await post(beat(), 404, path="/api/v1/sites/nope/beats")
        await post(b"x" * 20_000, 413, headers=text_type)
        await post(b"a=1", 415, headers={"Content-Type": "application/x-www-form-urlencoded"})

        ask = {"Access-Control-Request-Method": "POST", "Origin": ORIGIN}
        for path, origin, status in (
            (BEATS, ORIGIN, 204),
            (BEATS, "https://evil.example", 403),
            ("/api/v1/sites/nope/beats", ORIGIN, 404),
        ):
            response = await http.options(path, headers={**ask, "Origin": origin})
            assert response.status_code == status, response.text
            checker.check(doc_beats, "options", response)

        for path, doc_path, status in (
            (STATS, doc_stats, 200),
            ("/api/v1/sites/nope/stats", doc_stats, 404),
            (BADGE, doc_badge, 200),
            (BADGE + "?lang=en", doc_badge, 200),
            (BADGE + "?lang=fr", doc_badge, 400),
            ("/api/v1/sites/nope/badge.svg", doc_badge, 404),
            (HISTORY, doc_history, 401),
            ("/api/v1/openapi.json", "/api/v1/openapi.json", 200),
        ):
            response = await http.get(path)
            assert response.status_code == status, response.text
            checker.check(doc_path, "get", response)

        # The long history, for programs with a bearer token (dashboard/history.py), before
        # signing in: the 401s are of a client with no session.
        bearer = {"Authorization": f"Bearer {API_TOKEN}"}
        other = {"Authorization": f"Bearer {OTHER_API_TOKEN}"}
        for path, doc_path, headers, status in long_history_calls(bearer, other):
            response = await http.get(path, headers=headers)
            assert response.status_code == status, (path, response.text)
            checker.check(doc_path, "get", response)

        signed = await http.post("/dashboard/login", data={"site": "demo", "token": TOKEN})
        assert signed.status_code == 303, signed.text
        for path, status in (
            (HISTORY + "?minutes=5", 200),
            (HISTORY + "?minutes=0", 400),
            ("/api/v1/sites/other/history", 403),
            ("/api/v1/sites/nope/history", 404),
        ):
            response = await http.get(path)
            assert response.status_code == status, response.text
            checker.check(doc_history, "get", response)

        # Over the per-address beat rate (20 a second, bursts of 40).
        burst = await asyncio.gather(*(http.post(BEATS, json=beat()) for _ in range(80)))
        assert 429 in {r.status_code for r in burst}
        for response in burst:
            checker.check(doc_beats, "post", response)

        # The store goes away: reads answer 503, a beat is kept (202).
        redis.kill()
        for path, doc_path in ((STATS, doc_stats), (BADGE, doc_badge), (HISTORY, doc_history)):
            response = await wait_for_status(http, "GET", path, 503)
            checker.check(doc_path, "get", response)
        for path, doc_path, _, status in long_history_calls(bearer, other):
            if status == 200:
                response = await wait_for_status(http, "GET", path, 503, headers=bearer)
                checker.check(doc_path, "get", response)
        # Once the beat rate's bucket refills (refused beats take nothing from it).
        response = await wait_for_status(http, "POST", BEATS, 202, json=beat())
        checker.check(doc_beats, "post", response)
        redis.start()

        # An instance that keeps as many visitors on HTTP beats as it may (here one).
        full = make_service(FAST_TIMING.replace("[server]", "[server]\nmax_http_visitors = 1"))
        for status in (200, 503):
            response = await http.post(full.base + BEATS, json=beat())
            assert response.status_code == status, response.text
            checker.check(doc_beats, "post", response)

        # Shutting down: with Redis stalled (SIGSTOP), the drain's last flush waits for
        # the store's timeout (5 s), and meanwhile beats are refused with 503.
        assert redis.proc is not None and service.proc is not None
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            service.proc.send_signal(signal.SIGTERM)
            # Beats are refused from the moment the drain begins, which /readyz tells.
            await until(partial(draining, http), 10, "/readyz says shutting down")
            response = await wait_for_status(http, "POST", BEATS, 503, json=beat())
            checker.check(doc_beats, "post", response)
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)

    missing = {key for key in checker.documented() if key not in checker.seen}
    assert not missing, f"documented answers never produced: {sorted(missing)}"
    for key, codes in checker.documented().items():
        assert codes <= checker.seen[key], (
            f"{key}: codes never produced: {codes - checker.seen[key]}"
        )
    assert "Traceback" not in service.logs()


async def draining(http: httpx.AsyncClient) -> bool:
    answer = await http.get("/readyz")
    return answer.status_code == 503 and answer.json()["reason"] == "shutting down"


async def wait_for_status(
    http: httpx.AsyncClient, method: str, path: str, status: int, **kw: Any
) -> httpx.Response:
    async def answer() -> httpx.Response | None:
        try:
            response = await http.request(method, path, **kw)
        except httpx.TransportError:
            return None
        return response if response.status_code == status else None

    return await until(answer, 10, f"{method} {path} answers {status}")
