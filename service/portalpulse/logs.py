"""Structured logs: one JSON object per line on stderr, level from the config."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            # One line, no multi-line traceback in the log stream.
            entry["error"] = repr(record.exc_info[1])
        return json.dumps(entry, ensure_ascii=False)


class _DenialNotAnError(logging.Filter):
    """uvicorn's websockets-sansio logs an error after every refused handshake sent
    as an HTTP response (our 403/404 with a JSON body), though nothing went wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("ASGI callable returned without completing")


class _ClientFaultIsInfo(logging.Filter):
    """What a client sends wrong (bad HTTP, invalid UTF-8 in a text frame) is logged by
    uvicorn at warning or error, with a traceback; it says nothing about the service,
    so it is kept at info, on one line."""

    MESSAGES = (
        "Invalid HTTP request received.",
        "Invalid UTF-8 sequence received from client.",
        "Unsupported upgrade request.",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO and record.msg in self.MESSAGES:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
        return True


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_DenialNotAnError())
    handler.addFilter(_ClientFaultIsInfo())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # uvicorn logs every accepted WebSocket at info: one line per connection is noise.
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, root.level))
