"""The package's shape, as issue 10 checks it: no import circle, a core
(protocol first) that knows nothing of stores or the web, no module over
`MAX_LINES` lines, no private attribute of Starlette or uvicorn read from the
service's code, and at least five unit-test modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "service" / "portalpulse"
MAX_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (also under TYPE_CHECKING).
    `from . import x` names module x, not the package that holds it."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                names = subs if len(subs) == len(node.names) else [target, *subs]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            deps.update(n for n in names if n in mods and n != name)
        graph[name] = deps
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


def test_no_module_imports_itself_through_others() -> None:
    graph = import_graph()
    circles = sorted(name for name in graph if name in reachable(graph, name))
    assert circles == []


def test_the_core_imports_no_store_web_dashboard_hub_or_app() -> None:
    graph = import_graph()
    outer = ("portalpulse.store", "portalpulse.web", "portalpulse.dashboard", "portalpulse.hub")
    outer += ("portalpulse.app", "portalpulse.runtime", "portalpulse.cli")
    for core in ("portalpulse.domain", "portalpulse.protocol", "portalpulse.ledger"):
        assert not {d for d in reachable(graph, core) if d.startswith(outer)}, core
    assert reachable(graph, "portalpulse.domain") == set()


def test_the_runtime_lies_below_the_web_and_the_dashboard() -> None:
    below = reachable(import_graph(), "portalpulse.runtime")
    assert not {d for d in below if d.startswith(("portalpulse.web", "portalpulse.dashboard."))}


def test_no_module_reads_private_attributes_of_other_objects() -> None:
    """Starlette's and uvicorn's insides stay theirs: the direct path and the abort
    come through the ASGI scope's extensions (fanout.py, web/uvicorn_ws.py)."""
    private = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                continue
            owner = node.value.id if isinstance(node.value, ast.Name) else ""
            if owner not in ("self", "cls") and not node.attr.startswith("__"):
                private.append(f"{name}:{node.lineno} .{node.attr}")
    assert private == []


def test_only_the_server_protocol_modules_know_uvicorns_protocols() -> None:
    """Each subclasses one of uvicorn's protocols, on the range pyproject.toml pins."""
    knows = {
        name
        for name, path in modules().items()
        if "uvicorn.protocols" in path.read_text() or "WebSocketsSansIOProtocol" in path.read_text()
    }
    assert knows == {"portalpulse.web.uvicorn_ws", "portalpulse.web.slowclients"}


def test_no_module_is_longer_than_max_lines() -> None:
    lines = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {name: n for name, n in lines.items() if n > MAX_LINES} == {}


def test_the_core_has_unit_tests_of_its_own() -> None:
    """At least five unit-test modules, among them one per core module."""
    here = {path.stem for path in Path(__file__).parent.glob("test_*.py")}
    core = ("protocol", "ledger", "sources", "config", "limiter", "sessions")
    assert len(here) >= 5
    assert {f"test_{name}" for name in core} <= here
