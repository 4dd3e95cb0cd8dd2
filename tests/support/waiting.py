"""Waiting in async tests, never with a bare sleep for something that can be checked.

- `until`: a condition, polled until it holds, with a deadline (the sync
  sibling for threads and plain tests is `processes.wait_until`).
- `throughout`: a span of time during which a condition must keep holding:
  time passes on purpose, to show that something does not happen in a window.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

Check = Callable[[], T | Awaitable[T]]


async def _result(check: Check[T]) -> T:
    result = check()
    if inspect.isawaitable(result):
        return await result
    return result


async def until(check: Check[T], timeout: float, what: str, every: float = 0.05) -> T:
    """The first true result of `check` (a function, sync or async), tried every
    `every` s; AssertionError naming `what` and the last result after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = await _result(check)
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {result!r})")
        await asyncio.sleep(every)


async def throughout(check: Check[object], seconds: float, what: str, every: float = 0.05) -> None:
    """Check `check` every `every` s for `seconds`: AssertionError naming `what` the
    first time it does not hold."""
    end = time.monotonic() + seconds
    while True:
        result = await _result(check)
        assert result, f"{what}: no longer so (got {result!r})"
        if time.monotonic() >= end:
            return
        await asyncio.sleep(every)
