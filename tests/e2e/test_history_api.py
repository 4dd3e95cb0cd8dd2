"""Programs read a site's history with a bearer token: days as JSON and CSV, this
month and this year, a day's top articles; 401/403 JSON errors otherwise."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from portalpulse.dashboard.tokens import token_hash
from support.client import Reader, page
from support.history_seed import seed_days
from support.processes import FAST_TIMING, offset_to_local_noon

MYHAO_API = "myhao-program-token-0000000000000000000000"
VANLAM_API = "vanlam-program-token-000000000000000000000"
PROVINCE_API = "province-program-token-00000000000000000000"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
CONFIG = (
    FAST_TIMING
    + f"""
[api]
tokens = ["{token_hash(PROVINCE_API)}"]

[sites.myhao]
name = "Cổng thông tin điện tử thị xã Mỹ Hào"
origins = ["*"]
api_tokens = ["{token_hash(MYHAO_API)}"]

[sites.vanlam]
origins = ["*"]
api_tokens = ["{token_hash(VANLAM_API)}"]
"""
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_days_month_year_and_top_articles_with_a_bearer_token(
    make_service, tmp_path: Path
) -> None:
    today = dt.datetime.fromtimestamp(time.time() + offset_to_local_noon(), ZONE).date()
    seeded = seed_days(tmp_path / "data", today, 45)
    service = make_service(CONFIG, data_dir=tmp_path / "data")
    title = "Kế hoạch chuyển đổi số - Cổng thông tin điện tử thị xã Mỹ Hào"
    readers = [
        await Reader.open(service.ws_url, site="myhao", pages=[page("/a.html", title)]),
        await Reader.open(service.ws_url, site="myhao", pages=[page("/a.html", title)]),
        await Reader.open(service.ws_url, site="myhao", pages=[page("/b.html", "=SUM(A1:A9)")]),
    ]
    await readers[0].wait_for(lambda s: s["today"]["views"] == 3, 3)
    base = f"{service.base}/api/v1/sites/myhao"
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"{base}/history?days=31", headers=bearer(MYHAO_API))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["from"] == (today - dt.timedelta(days=30)).isoformat()
        assert body["to"] == today.isoformat()
        assert len(body["days"]) == 31 and "minutes" not in body
        assert body["days"][-1]["visits"] == 3 and body["days"][-1]["views"] == 3
        yesterday = seeded[(today - dt.timedelta(days=1)).strftime("%Y%m%d")]
        assert body["days"][-2] == {
            "date": (today - dt.timedelta(days=1)).isoformat(),
            "visits": 101,
            "views": 301,
            "visitors": 81,
            "peak_online": 11,
            "peak_at": round(yesterday["peak_at"], 3),  # type: ignore[call-overload]
        }
        in_month = [
            key for key in seeded if key[:6] == today.strftime("%Y%m")
        ]  # the seeded days of this month, plus today
        month_visits = 3 + sum(int(seeded[k]["visits"]) for k in in_month)  # type: ignore[call-overload]
        assert body["month"]["visits"] == month_visits
        assert body["month"]["visitors"] == 3  # visitors counted since the store has a sketch
        assert body["year"]["visits"] >= month_visits

        first, last = today - dt.timedelta(days=44), today - dt.timedelta(days=40)
        span = await http.get(
            f"{base}/history?from={first}&to={last}", headers=bearer(PROVINCE_API)
        )
        assert [d["visits"] for d in span.json()["days"]] == [144, 143, 142, 141, 140]

        sheet = await http.get(f"{base}/history.csv?days=30", headers=bearer(PROVINCE_API))
        assert sheet.status_code == 200
        assert sheet.headers["content-type"].startswith("text/csv")
        assert "attachment" in sheet.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(sheet.text.lstrip("\ufeff"))))
        assert rows[0] == ["date", "visits", "views", "visitors", "peak_online", "peak_at"]
        assert len(rows) == 31
        assert rows[-2][:5] == [
            (today - dt.timedelta(days=1)).isoformat(),
            "101",
            "301",
            "81",
            "11",
        ]
        assert rows[-2][5].endswith("+07:00")
        assert rows[-1][:3] == [today.isoformat(), "3", "3"]

        top = (await http.get(f"{base}/top", headers=bearer(MYHAO_API))).json()
        assert top["date"] == today.isoformat()
        assert top["pages"][0] == {"path": "/a.html", "title": "Kế hoạch chuyển đổi số", "views": 2}
        top_csv = await http.get(f"{base}/top.csv?date={today}", headers=bearer(MYHAO_API))
        rows = list(csv.reader(io.StringIO(top_csv.text.lstrip("\ufeff"))))
        assert rows[0] == ["rank", "path", "title", "views"]
        assert rows[1] == ["1", "/a.html", "Kế hoạch chuyển đổi số", "2"]
        assert rows[2] == ["2", "/b.html", "'=SUM(A1:A9)", "1"]  # never a live formula

        nope = f"{service.base}/api/v1/sites/nope"
        refusals = [
            (f"{base}/history?days=7", {}, 401, "unauthorized"),
            (f"{base}/history?days=7", bearer("not-a-token"), 401, "unauthorized"),
            (f"{base}/history?days=7", {"Authorization": "Basic eDp5"}, 401, "unauthorized"),
            (f"{base}/history.csv?days=7", bearer(VANLAM_API), 403, "forbidden_site"),
            (f"{base}/top.csv", bearer(VANLAM_API), 403, "forbidden_site"),
            (f"{base}/history?days=0", bearer(MYHAO_API), 400, "bad_days"),
            (f"{base}/history?days=401", bearer(MYHAO_API), 400, "bad_days"),
            (f"{base}/history?from=2026-02-30", bearer(MYHAO_API), 400, "bad_range"),
            (f"{base}/history?from=2026-12-03&to=2026-12-01", bearer(MYHAO_API), 400, "bad_range"),
            (f"{base}/history.csv?from=2024-01-01&to=2026-01-01", bearer(MYHAO_API), 400,
             "bad_range"),
            (f"{base}/top?date=yesterday", bearer(MYHAO_API), 400, "bad_range"),
            (f"{nope}/history?days=7", bearer(PROVINCE_API), 404, "unknown_site"),
        ]  # fmt: skip
        for url, headers, status, code in refusals:
            answer = await http.get(url, headers=headers)
            assert (answer.status_code, answer.json()["error"]) == (status, code), url
        assert "Bearer" in (await http.get(f"{base}/history")).headers["www-authenticate"]
        vanlam = await http.get(
            f"{service.base}/api/v1/sites/vanlam/history?days=2", headers=bearer(VANLAM_API)
        )
        assert vanlam.status_code == 200 and [d["visits"] for d in vanlam.json()["days"]] == [0, 0]
    for reader in readers:
        await reader.close()
