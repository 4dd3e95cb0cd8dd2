"""Fixtures for the dashboard's tests: the service's config with editor tokens, Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from support.chromium import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's headless Chromium, driven by Playwright's async API (the simulated
    readers share the test's event loop)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
