"""Turning raw readings into the benchmark's figures (no I/O)."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (nan when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def merge_samples(reports: Iterable[Mapping[str, Any]], key: str) -> list[float]:
    values = array("d")
    for report in reports:
        values.frombytes(report.get(key, b""))
    return sorted(values)


def merge_counters(reports: Iterable[Mapping[str, Any]], key: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for report in reports:
        total.update(report.get(key, {}))
    return dict(total)


def delta(after: Mapping[str, float], before: Mapping[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def histogram_delta(
    after: Mapping[str, float], before: Mapping[str, float], name: str, labels: str = ""
) -> dict[str, Any]:
    """A Prometheus histogram's growth between two scrapes: count, mean, and how
    many observations fell above each bucket bound."""
    prefix = f"{name}_bucket{{"
    buckets: list[tuple[float, float]] = []
    for sample, value in after.items():
        if not sample.startswith(prefix) or (labels and labels not in sample):
            continue
        le = sample.split('le="', 1)[1].split('"', 1)[0]
        bound = math.inf if le == "+Inf" else float(le)
        buckets.append((bound, value - before.get(sample, 0.0)))
    buckets.sort()
    suffix = "{" + labels + "}" if labels else ""
    count = delta(after, before, f"{name}_count{suffix}")
    total = delta(after, before, f"{name}_sum{suffix}")
    above = {bound: count - n for bound, n in buckets if bound != math.inf}
    # The smallest bound that holds every observation: an upper bound on the max.
    max_bound = next((bound for bound, n in buckets if n >= count), math.inf)
    p99_bound = next((bound for bound, n in buckets if count and n >= 0.99 * count), math.inf)
    return {
        "count": count,
        "mean": total / count if count else math.nan,
        "above": above,
        "max_le": max_bound,
        "p99_le": p99_bound,
    }


def commandstats_delta(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, int]:
    """Calls per Redis command between two `INFO commandstats` readings."""
    calls = {}
    for key, value in after.items():
        if key.startswith("cmdstat_") and isinstance(value, dict):
            old = before.get(key, {})
            n = int(value.get("calls", 0)) - int(old.get("calls", 0) if old else 0)
            if n:
                calls[key.removeprefix("cmdstat_")] = n
    return dict(sorted(calls.items(), key=lambda item: -item[1]))


def fmt_ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def table(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name.ljust(width)}  {value}" for name, value in rows)
