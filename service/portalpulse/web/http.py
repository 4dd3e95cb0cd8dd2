"""What every HTTP endpoint shares: the contract's JSON error body, and a request
body read within a bound."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from ..protocol import ProtocolError

log = logging.getLogger("portalpulse.web")


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The contract's error answer: `{"error": CODE, "message": ...}` with `status`."""
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, at most `limit` bytes.

    Raises `ProtocolError` "too_big" past the limit (by Content-Length or as it
    arrives), and "incomplete_body" when the client abandons the upload half-way.
    """
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise ProtocolError("too_big", f"body larger than {limit} bytes")
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ProtocolError("too_big", f"body larger than {limit} bytes")
    except ClientDisconnect as exc:
        # An upload abandoned half-way: the client's doing, not ours (no one reads the answer).
        log.debug("request body abandoned after %d bytes", len(body))
        raise ProtocolError("incomplete_body", "the body ended before Content-Length") from exc
    return body
