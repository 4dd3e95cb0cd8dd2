"""Writing to a connection without waiting on it.

The fan-out is a plain loop over connections. An ASGI `send` on a connection
whose socket buffer has room completes without suspending, so it is run
eagerly, inline; only a connection whose send does suspend (its peer reads
too slowly) gets a task that finishes the send, and meanwhile keeps just the
newest snapshot (see `websocket.WsConnection.offer`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run_eagerly(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[None] | None:
    """Run `coro` until it first suspends.

    Returns None when it finished at once; otherwise a task that drives it to the
    end. An exception raised before the first suspension propagates to the caller.
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    except BaseException:
        coro.close()
        raise
    return asyncio.ensure_future(_resume(coro, yielded))


async def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
    while True:
        try:
            if isinstance(yielded, asyncio.Future):
                # Wait without consuming its outcome: the coroutine reads it on resume.
                await asyncio.wait({yielded})
            else:
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            coro.close()
            raise
        try:
            yielded = coro.send(None)
        except StopIteration:
            return


def uvicorn_transport(receive: Any) -> asyncio.Transport | None:
    """The socket transport behind an ASGI `receive`, when the server is uvicorn.

    Used only to abort a connection that can no longer be closed politely (its peer
    stopped reading, so a close frame would wait forever); None elsewhere.
    """
    protocol = getattr(receive, "__self__", None)
    transport = getattr(protocol, "transport", None)
    if isinstance(transport, asyncio.Transport):
        return transport
    return None
