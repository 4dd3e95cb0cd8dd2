"""The editors' live dashboard: sign-in with tokens, the page, its socket, history.

The app adds `routes()` to its own; the CLI adds `portalpulse token` with
`add_token_command` and runs it with `run_token_command`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route, WebSocketRoute

from . import assets, drill, feed, history, pages
from .access import access_state
from .tokens import add_token_command, run_token_command

__all__ = ["add_token_command", "routes", "run_token_command", "start"]


async def start(app: Starlette) -> None:
    """At start-up: this instance's dashboard tokens become the newest list in the
    store, so instances still on an older configuration end withdrawn ones."""
    await access_state(app).grants.publish(app.state.pulse.store)


def routes() -> list[BaseRoute]:
    """Every dashboard endpoint; nothing here answers with data without a session."""
    return [
        Route("/dashboard", pages.home_without_slash, methods=["GET"]),
        Route("/dashboard/", pages.home, methods=["GET"]),
        Route("/dashboard/login", pages.get_login, methods=["GET"]),
        Route("/dashboard/login", pages.post_login, methods=["POST"]),
        Route("/dashboard/logout", pages.logout, methods=["GET", "POST"]),
        Route("/dashboard/api/session", pages.whoami, methods=["GET"]),
        Route("/dashboard/static/{path:path}", assets.static_file, methods=["GET"]),
        WebSocketRoute("/dashboard/ws", feed.dashboard_socket),
        Route("/api/v1/sites/{site}/history", history.get_history, methods=["GET"]),
        Route("/api/v1/sites/{site}/history.csv", history.get_history_csv, methods=["GET"]),
        Route("/api/v1/sites/{site}/top", history.get_top, methods=["GET"]),
        Route("/api/v1/sites/{site}/top.csv", history.get_top_csv, methods=["GET"]),
        Route("/dashboard/{site}/history", history.history_page, methods=["GET"]),
        Route("/dashboard/api/sites/{site}/pages", drill.get_page, methods=["GET"]),
    ]
