"""What a reader's tab costs in bytes per minute, per page kind (CONTRACT §3a `want`).

Starts one `portalpulse serve` (embedded store; production timing but for
`leave_grace = 0.5`, so that a reader who leaves shows within the second, as
one who arrives does) and fills a site's trending list: 30 readers on 12
articles with real-length Vietnamese titles (a whole snapshot is then about
2.2 KB, as on the portal we measured). Then one observer connection per page
kind listens while readers come and go, one event a second, alternately an
arrival and a departure, so that the online count changes every second:

- `returning`: the readers who come back are known visitors reconnecting
  (`"resume": true`): only the count and the trending list move;
- `new`: each arrival is a new visitor (a visit and a view): `today` and
  `total` move too.

Page kinds (what the widget sends as `want`):
- numbers: a portal article whose footer shows online, today and total;
- numbers+trending: the demo page (footer numbers and a trending list in view);
- box, phone: the widget's own box, unopened on a phone (online only);
- v1: a client without `want` (what every tab got before).

Bytes are WebSocket bytes from server to client: each frame's payload plus its
2- or 4-byte header, uncompressed (pings, every `beat_interval`, left out); and
the wire bytes the observer's socket read, with permessage-deflate as the
service negotiates it with a client that offers it (websockets does, as
browsers do; pings included).

    python tests/bench/page_bytes.py --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.processes import Service, free_port, write_config  # noqa: E402

SITE = "bench"
CONFIG = f"""
[server]
beat_interval = 15
presence_ttl = 45
leave_grace = 0.5
push_interval = 1.0
log_level = "warning"

[sites.{SITE}]
name = "Cổng thông tin (benchmark)"
origins = ["*"]
"""
KINDS: dict[str, list[str] | None] = {
    "numbers": ["online", "today", "total"],
    "numbers+trending": ["online", "today", "total", "trending"],
    "box, phone": ["online"],
    "v1": None,
}
TITLES = [
    "Hội nghị trực tuyến triển khai kế hoạch chuyển đổi số năm 2026 của thị xã",
    "Thông báo lịch tiếp công dân định kỳ tháng 12/2026 của Chủ tịch UBND",
    "Kết quả kỳ thi tuyển công chức cấp xã năm 2026: danh sách trúng tuyển",
    "Hướng dẫn nộp hồ sơ trực tuyến trên Cổng dịch vụ công quốc gia",
    "Khởi công xây dựng tuyến đường liên xã nối quốc lộ 5 với khu công nghiệp",
    "Tăng cường công tác phòng cháy, chữa cháy trong mùa hanh khô",
    "Công khai dự toán ngân sách nhà nước năm 2027 của thị xã",
    "Kế hoạch tổ chức các hoạt động chào mừng năm mới và Tết Nguyên đán",
    "Quyết định phê duyệt quy hoạch chi tiết khu dân cư mới phường Bần Yên Nhân",
    "Thông báo tuyển sinh lớp 10 trung học phổ thông năm học 2027-2028",
    "Tuyên truyền phòng, chống dịch bệnh mùa đông xuân trên địa bàn",
    "Lấy ý kiến nhân dân về dự thảo nghị quyết phát triển đô thị bền vững",
]


def page(i: int) -> dict[str, str]:
    return {"path": f"/tin-tuc/bai-{i}.html", "title": TITLES[i % len(TITLES)]}


def hello(visitor: str, pages: list[dict[str, str]], **extra: Any) -> str:
    return json.dumps({"type": "hello", "visitor": visitor, "pages": pages, **extra})


async def open_reader(url: str, visitor: str, pages: list[dict[str, str]], **extra: Any):  # type: ignore[no-untyped-def]
    ws = await connect(url, origin="http://localhost", ping_interval=None, max_size=None)  # type: ignore[arg-type]
    await ws.send(hello(visitor, pages, **extra))
    return ws


@dataclass
class Observer:
    kind: str
    ws: ClientConnection
    counting: bool = False
    frames: int = 0
    online_changes: int = 0
    wire_bytes: int = 0
    read_bytes: int = 0  # what the socket read, compressed frames and pings included
    sizes: list[int] = field(default_factory=list)
    online = -1

    def count_reads(self) -> None:
        """Count the bytes the connection reads from its socket while counting."""
        received = self.ws.data_received  # type: ignore[attr-defined]

        def data_received(data: bytes) -> None:
            if self.counting:
                self.read_bytes += len(data)
            received(data)

        self.ws.data_received = data_received  # type: ignore[attr-defined]

    async def listen(self) -> None:
        with contextlib.suppress(Exception):
            async for message in self.ws:
                size = len(message.encode() if isinstance(message, str) else message)
                frame = json.loads(message)
                if "online" in frame:
                    self.online_changes += self.counting and frame["online"] != self.online
                    self.online = frame["online"]
                if self.counting and frame.get("type") == "snapshot":
                    self.frames += 1
                    self.wire_bytes += size + (2 if size < 126 else 4)
                    self.sizes.append(size)


async def drain(ws: ClientConnection) -> None:
    """Read and drop: a reader that does not read is closed as too slow."""
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def churn(url: str, scenario: str, seconds: float) -> int:
    """One arrival or departure a second, five of a kind in a row (so that they do
    not cancel out within one push): the count moves every second."""
    pool = [secrets.token_urlsafe(16) for _ in range(20)]
    if scenario == "returning":  # known visitors: they were here once already
        for visitor in pool:
            ws = await open_reader(url, visitor, [page(0)])
            await ws.recv()
            await ws.close()
        await asyncio.sleep(2)
    here: list[Any] = []
    drains = []
    events = arrivals = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if (events // 5) % 2 == 0:
            if scenario == "returning":
                visitor, extra = pool[arrivals % len(pool)], {"resume": True}
            else:
                visitor, extra = secrets.token_urlsafe(16), {}
            arrivals += 1
            ws = await open_reader(url, visitor, [page(events % 12)], **extra)
            drains.append(asyncio.create_task(drain(ws)))
            here.append(ws)
        elif here:
            await here.pop(0).close()
        events += 1
        await asyncio.sleep(max(0.0, started + events - time.monotonic()))
    for ws in here:
        await ws.close()
    await asyncio.gather(*drains)
    return events


async def measure(service: Service, scenario: str, seconds: float) -> list[Observer]:
    url = f"{service.ws_url}?site={SITE}"
    seated = [await open_reader(url, secrets.token_urlsafe(16), [page(i % 12)]) for i in range(30)]
    drains = [asyncio.create_task(drain(ws)) for ws in seated]
    observers = []
    for kind, want in KINDS.items():
        extra = {"want": want} if want else {}
        ws = await open_reader(url, secrets.token_urlsafe(16), [page(0)], **extra)
        observers.append(Observer(kind, ws))
        observers[-1].count_reads()
    tasks = [asyncio.create_task(o.listen()) for o in observers]
    await asyncio.sleep(3)  # the first snapshots are not what a minute costs
    for observer in observers:
        observer.counting = True
    await churn(url, scenario, seconds)
    for observer in observers:
        observer.counting = False
        await observer.ws.close()
    for ws in seated:
        await ws.close()
    await asyncio.gather(*tasks, *drains)
    return observers


def report(scenario: str, observers: list[Observer], seconds: float) -> None:
    changes = next(o.online_changes for o in observers if o.kind == "v1") * 60 / seconds
    print(
        f"\n{scenario}: readers come and go every second, {seconds:.0f} s measured; "
        f"the online count changed {changes:.0f} times a minute"
    )
    print(
        f"{'page kind':18} {'frames/min':>10} {'bytes/frame':>11} {'KB/min':>8} "
        f"{'deflated bytes/frame':>20} {'wire KB/min':>11}"
    )
    for o in observers:
        per_min = 60 / seconds
        mean = o.wire_bytes / o.frames if o.frames else 0
        kb = o.wire_bytes * per_min / 1000
        packed = o.read_bytes / o.frames if o.frames else 0
        print(
            f"{o.kind:18} {o.frames * per_min:10.1f} {mean:11.0f} {kb:8.1f} "
            f"{packed:20.0f} {o.read_bytes * per_min / 1000:11.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for scenario in ("returning", "new"):
            service = Service(
                port=free_port(),
                config=write_config(Path(work) / f"{scenario}.toml", CONFIG),
                data_dir=Path(work) / scenario,
            )
            service.start()
            try:
                observers = asyncio.run(measure(service, scenario, args.seconds))
            finally:
                service.stop()
            report(scenario, observers, args.seconds)


if __name__ == "__main__":
    main()
