"""The benchmark's printed summary (no I/O)."""

from __future__ import annotations

import json
import math
from typing import Any

from measures import fmt_ms, table


def _ms_list(values: dict[str, float], names: tuple[str, ...]) -> str:
    return " / ".join(fmt_ms(values.get(name, math.nan)) for name in names)


def _histogram(h: dict[str, Any], bound: str) -> str:
    return f"{h.get('mean', math.nan) * 1000:.1f} ms / <= {h.get(bound, math.nan) * 1000:.0f} ms"


def _sched(w: dict[str, Any]) -> str:
    s = w.get("service_sched_per_second", {})
    ran, waited = s.get("ran", math.nan), s.get("waited_for_cpu", math.nan)
    switches = s.get("voluntary_ctxt_switches", 0) + s.get("nonvoluntary_ctxt_switches", 0)
    return (
        f"{ran:.0%} / {waited:.0%} / {max(0.0, 1 - ran - waited):.0%} of wall time"
        f" ({switches:.0f} switches/s)"
    )


def _machine(w: dict[str, Any]) -> str:
    m = w.get("machine_share", {})
    return (
        f"{m.get('idle', math.nan):.0%} / {m.get('steal', math.nan):.0%} of one CPU;"
        f" other processes used {w.get('others_cpu_share', math.nan):.0%}"
    )


def _redis_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    r, w = result.get("redis_keys", {}), result.get("window", {})
    online, pages = r.get("online", 0), r.get("pages", 0)
    return [
        ("Redis EVALSHA (round trips) per tick", f"{w.get('evalsha_per_tick', math.nan):.2f}"),
        (
            "Redis commands per tick, inside scripts",
            f"{w.get('redis_commands_per_tick', math.nan):.1f}",
        ),
        ("Redis calls in window", json.dumps(dict(list(w.get("redis_calls", {}).items())[:8]))),
        ("Redis online visitors / tracked pages", f"{online} / {pages}"),
        (
            "Redis used_memory delta per visitor",
            f"{w.get('redis_bytes_per_visitor', math.nan):.0f} B",
        ),
        (
            "Redis site keys per visitor",
            f"{r.get('total_bytes', 0) / online:.0f} B" if online else "n/a",
        ),
    ]


def redis_key_table(result: dict[str, Any]) -> str:
    """Per key of the site: type, elements, bytes, bytes per element and per visitor."""
    r = result.get("redis_keys", {})
    online = max(1, r.get("online", 0))
    lines = [
        f"  {'key':<18} {'type':<7} {'elements':>9} {'bytes':>10} {'B/elem':>7} {'B/visitor':>9}"
    ]
    for name, k in sorted(r.get("keys", {}).items(), key=lambda item: -item[1]["bytes"]):
        per = k["bytes"] / max(1, k["elements"])
        lines.append(
            f"  {name:<18} {k['type']:<7} {k['elements']:>9} {k['bytes']:>10}"
            f" {per:>7.0f} {k['bytes'] / online:>9.1f}"
        )
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    """The summary table printed at the end of a run."""
    c, w = result.get("clients", {}), result.get("window", {})
    cpu = w.get("cpu_share", {})
    shares = [cpu.get("service", 0), cpu.get("redis", 0)]
    shares += [v for k, v in cpu.items() if k.startswith("loadgen")]
    rows = [
        ("connections requested / held", f"{c.get('requested')} / {c.get('held')}"),
        ("failed to open", json.dumps(c.get("failures", {}))),
        ("closed during run (code)", json.dumps(c.get("closes", {}))),
        ("error frames", json.dumps(c.get("errors", {}))),
        ("held without a snapshot in window", str(c.get("starved"))),
        ("snapshot frame payload", f"{c.get('snapshot_bytes', 0)} bytes"),
        ("ramp", f"{result.get('ramp_seconds')} s"),
        ("handshake p50 / p99", _ms_list(c.get("handshake", {}), ("p50", "p99"))),
        ("snapshot latency p50 / p95 / p99", _ms_list(c.get("latency", {}), ("p50", "p95", "p99"))),
        ("snapshot latency p99.9 / max", _ms_list(c.get("latency", {}), ("p99.9", "max"))),
        (
            "latency samples (per conn-s)",
            f"{c.get('samples')} ({c.get('snapshots_per_connection_second', math.nan):.2f})",
        ),
        (
            "service RSS before -> after",
            f"{w.get('rss_kb_before', 0) / 1024:.0f} MiB"
            f" -> {w.get('rss_kb_after', 0) / 1024:.0f} MiB",
        ),
        ("service KB per connection", f"{w.get('kb_per_connection', math.nan):.1f}"),
        ("CPU share service / redis / loadgen", " / ".join(f"{v:.0%}" for v in shares)),
        ("service ran / waited for a CPU / blocked", _sched(w)),
        ("machine (2 CPUs) idle / steal", _machine(w)),
        (
            "service CPU per connection-second",
            f"{w.get('cpu_us_per_connection_second', math.nan):.1f} µs",
        ),
        ("ticks / store flushes in window", f"{w.get('ticks', 0):.0f} / {w.get('flushes', 0):.0f}"),
        ("fan-out (push) mean / p99 bucket", _histogram(w.get("push", {}), "p99_le")),
        ("tick mean / max bucket", _histogram(w.get("tick", {}), "max_le")),
        ("event-loop lag mean / max bucket", _histogram(w.get("loop_lag", {}), "max_le")),
        (
            "GC collections gen0/1/2 in window",
            "/".join(f"{v:.0f}" for v in w.get("gc_collections", {}).values()),
        ),
        *_redis_rows(result),
    ]
    text = f"Portal Pulse benchmark (service {result.get('service_commit')})\n" + table(rows)
    if result.get("redis_keys", {}).get("keys"):
        text += "\n\nRedis keys of the site:\n" + redis_key_table(result)
    profile = result.get("profile")
    if profile:
        text += (
            f"\n\npy-spy: {profile['busy_samples']} busy samples"
            f" ({profile['idle_samples']} idle in select); top self time:\n"
        )
        text += "\n".join(f"  {share:5.1f}%  {frame}" for frame, share in profile["self_percent"])
        text += "\ntop inclusive:\n"
        text += "\n".join(
            f"  {share:5.1f}%  {frame}" for frame, share in profile["inclusive_percent"]
        )
    perf = result.get("perf")
    if perf:
        text += "\n\nperf, shares of the service's CPU by library:\n"
        text += "\n".join(f"  {share:5.1f}%  {name}" for share, name in perf["by_library"])
        text += "\nand in these calls, with what they call:\n"
        text += "\n".join(
            f"  {share:5.1f}%  {name}" for name, share in perf["calls_with_children"].items()
        )
    for note in result.get("notes", []):
        text += f"\nnote: {note}"
    return text
