"""Time to the first count in Chromium: the embed's `/widget.js` (a loader that
loads `/widget.HASH.js`) against embedding the versioned widget directly (one
script request, as before the loader), on a cold cache and on the next page
of the site (warm cache).

One `portalpulse serve` (embedded store), a portal page whose footer shows the
online count, and a fresh Chromium profile per sample; the network throttled by
the DevTools protocol to a phone's (`--latency` ms added to each request,
`--kbps` down and up). Time: from the navigation's start to the moment the
count is written (a MutationObserver in the page), alternating the two embeds.

    python tests/bench/first_count.py --samples 10 --latency 150 --kbps 1600
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "bench"))

from browser_bytes import portal_server  # noqa: E402

from support.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from support.processes import Service, free_port, write_config  # noqa: E402

SITE = "bench"
CONFIG = f"""
[server]
log_level = "warning"

[sites.{SITE}]
name = "Cổng thông tin (benchmark)"
origins = ["*"]
"""
# Records when the widget first writes the count, relative to the navigation's start.
WATCH = """
new MutationObserver((_, observer) => {
  const node = document.querySelector('[data-portalpulse="online"]');
  if (node && node.textContent) {
    window.__firstCount = performance.now();
    observer.disconnect();
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def page_html(src: str, n: int) -> str:
    return (
        "<!doctype html><html lang=vi><head><meta charset=utf-8><title>Tin</title>"
        f'<script src="{src}" data-site="{SITE}" async></script></head>'
        f"<body><h1>Bài {n}</h1><p>" + "Nội dung bài viết. " * 200 + "</p>"
        '<footer><span data-portalpulse="online"></span> người đang online</footer>'
        "</body></html>"
    )


def sample(browser: Browser, base: str, embed: str, latency: float, kbps: float) -> list[float]:
    """[cold, warm]: ms to the first count on a fresh profile, then on its next page."""
    context = browser.new_context()
    times = []
    for n in (1, 2):
        tab = context.new_page()
        cdp = context.new_cdp_session(tab)
        cdp.send("Network.enable")
        throughput = kbps * 1000 / 8
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": latency,
                "downloadThroughput": throughput,
                "uploadThroughput": throughput,
            },
        )
        tab.add_init_script(WATCH)
        tab.goto(f"{base}/{embed}/{n}.html")
        tab.wait_for_function("window.__firstCount !== undefined", timeout=30000)
        times.append(float(tab.evaluate("window.__firstCount")))
        tab.close()
    context.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--latency", type=float, default=150, help="ms added to each request")
    parser.add_argument("--kbps", type=float, default=1600, help="throughput, each way")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        service = Service(
            port=free_port(),
            config=write_config(Path(work) / "c.toml", CONFIG),
            data_dir=Path(work) / "data",
        )
        service.start()
        try:
            import urllib.request

            loader = urllib.request.urlopen(f"{service.base}/widget.js").read().decode()
            match = re.search(r"widget\.[0-9a-f]{12}\.js", loader)
            assert match, loader
            embeds = {"loader": "widget.js", "versioned": match.group()}
            pages = {
                f"/{name}/{n}.html": page_html(f"{service.base}/{file}", n)
                for name, file in embeds.items()
                for n in (1, 2)
            }
            server = portal_server(pages)
            base = f"http://127.0.0.1:{server.server_address[1]}"
            results: dict[str, list[list[float]]] = {name: [] for name in embeds}
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for _ in range(args.samples):
                    for name in embeds:  # alternating
                        results[name].append(sample(browser, base, name, args.latency, args.kbps))
                browser.close()
            server.shutdown()
        finally:
            service.stop()
    print(
        f"time to the first count, ms ({args.samples} samples each, "
        f"+{args.latency:.0f} ms a request, {args.kbps:.0f} kbit/s)"
    )
    print(f"{'embed':10} {'cold median':>11} {'cold p90':>9} {'warm median':>11} {'warm p90':>9}")
    for name, runs in results.items():
        cold = sorted(r[0] for r in runs)
        warm = sorted(r[1] for r in runs)

        def p90(values: list[float]) -> float:
            return values[min(len(values) - 1, int(len(values) * 0.9))]

        print(
            f"{name:10} {statistics.median(cold):11.0f} {p90(cold):9.0f} "
            f"{statistics.median(warm):11.0f} {p90(warm):9.0f}"
        )


if __name__ == "__main__":
    main()
