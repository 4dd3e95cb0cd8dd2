"""Debian's Chromium as the tests launch it (Playwright's own browser download fails here)."""

CHROMIUM = "/usr/bin/chromium"
# The background-networking flags matter: this machine refuses outside connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
