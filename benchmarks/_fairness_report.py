"""The table ``benchmarks/fairness.py`` prints: one row per load, its p99 over the no-load p99."""

from __future__ import annotations

from typing import Any

__all__ = ["report"]


def report(
    rows: list[tuple[str, dict[str, Any]]], base: dict[str, float], base_create: dict[str, float]
) -> None:
    print()
    print("| load | reads | p50 ms | p99 ms | p99 / no load | CPU pressure | job processes CPU s "
          "| server RSS MB (before → peak) | notes |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        ratio = r.get("p99", 0) / base["p99"] if base.get("p99") else 0
        rss = f"{r['rss_before']:.0f} → {r['rss_peak']:.0f}" if "rss_peak" in r else ""
        if "home_peak" in r and r["home_peak"] - r["home_before"] > 0.01:
            rss += f" (home {r['home_before']:.2f} → {r['home_peak']:.2f} MB)"
        errors = f", {r['non2xx']:.0f} non-2xx" if r.get("non2xx") else ""
        print(f"| {name} | {r.get('requests', 0):.0f}{errors} | {r.get('p50', 0):.2f} | {r.get('p99', 0):.2f} | "
              f"{ratio:.2f}x | {r.get('cpu_pressure', 0):.0f}% | {r.get('jobs_cpu', 0):.1f} | {rss} | "
              f"{r.get('note', '')} |")  # fmt: skip
    sub = dict(rows).get("4. subscriptions")
    if sub is None:
        return
    print()
    print(
        f"reader's 100 KB data/create: p99 {base_create.get('p99', 0):.2f} ms with no subscription, "
        f"{sub.get('create_p99', 0):.2f} ms with the 20 x 100 subscriptions of load 4 "
        f"({sub.get('create_p99', 0) / base_create['p99'] if base_create.get('p99') else 0:.2f}x)"
    )
    if sub.get("writes"):
        print(
            f"load 4's server CPU: {sub['server_cpu']:.2f} s over {sub['writes']:.0f} writes of 100 KB "
            f"and {sub.get('requests', 0):.0f} reads: {sub['server_cpu'] / sub['writes'] * 1e3:.2f} ms "
            "per write"
        )
