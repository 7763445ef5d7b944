"""The report of bench/serving.py: a line per measurement as it comes, the ratios, and the
Markdown table and JSON written at the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# What the endpoint should reach (the table's ratio line states them).
TARGETS = (
    "endpoint_vs_naive ≥ 20, endpoint_vs_fastapi ≥ 1.0, batched_vs_limit ≥ 0.5, "
    "p99 ≤ 50 ms at half load"
)


def fmt(value: Any, digits: int = 1) -> str:
    """A figure for the table ("—" when there is none)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def top_cpu(by_process: dict[str, float], limit: int = 4) -> str:
    """The processes that used the most CPU seconds, most first."""
    ranked = sorted(by_process.items(), key=lambda kv: -kv[1])[:limit]
    return ", ".join(f"{name} {cpu:.2f}" for name, cpu in ranked)


def row_line(row: dict[str, Any]) -> str:
    """One measurement on one line, printed as the run goes."""
    return (
        f"{row['case']:<42} {row['complaints_per_request']:>3}/req "
        f"c={row.get('concurrency') or '-'} rate={row.get('rate') or '-'}: "
        f"{row['complaints_per_s']:>9,.0f} complaints/s {row['requests_per_s']:>8,.0f} req/s "
        f"p50 {fmt(row['p50_ms'], 2)} ms p99 {fmt(row['p99_ms'], 2)} ms "
        f"client {row['client_cpu_s']:.2f} s server {row['server_cpu_s']:.2f} s "
        f"other {fmt(row.get('other_cpu_s'), 2)} s "
        f"[{top_cpu(row.get('server_cpu_by_process', {}))}] errors {row['errors']}"
    )


def ratios(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """(2)/(4), (2)/(5), (3)/(1) and the p99 of (2) at half load (None: a case was skipped)."""

    def best(prefix: str) -> float | None:
        found = [r for r in rows if r["key"].startswith(prefix) and r["mode"] == "closed"]
        return max((r["complaints_per_s"] for r in found), default=None)

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    limit = next((r["complaints_per_s"] for r in rows if r["key"] == "1_b64"), None)
    half = next((r for r in rows if r["key"] == "2_half"), None)
    return {
        "endpoint_vs_naive": ratio(best("2_"), best("4_")),
        "endpoint_vs_fastapi": ratio(best("2_"), best("5_")),
        "batched_vs_limit": ratio(best("3_"), limit),
        "p99_ms_at_half_load": half["p99_ms"] if half else None,
    }


def ratios_line(values: dict[str, float | None]) -> str:
    """The run's last line."""
    return "serving ratios: " + " ".join(
        f"{k}={'n/a' if v is None else f'{v:.2f}'}" for k, v in values.items()
    )


def load_text(row: dict[str, Any]) -> str:
    if row["mode"] == "open":
        return f"open loop {row['rate']:.0f} req/s"
    if row["mode"] == "in-process":
        return "calls back to back"
    return f"{row['concurrency']} concurrent"


def header(report: dict[str, Any]) -> list[str]:
    """The title and what the columns mean."""
    settings = report["settings"]
    return [
        f"# Serving benchmark — {report['model']['name']} v{report['model']['version']}",
        "",
        f"{report['machine']['cpus']} CPUs, {report['machine']['python']}, ray "
        f"{report['versions']['ray']}, tensorflow {report['versions']['tensorflow']}; "
        f"{settings['seconds']:g} s per measurement after a {settings['warmup_s']:g} s warm-up "
        f"({settings['warmup_first_s']:g} s before a server's first); client: "
        "aiohttp + uvloop in its own process, keep-alive, on the same machine. CPU columns: "
        "seconds used during the measured window by the client process, by the server's "
        "processes (all processes of the Ray cluster for Ray Serve), and by anything else on the "
        "machine (other CPU: other sessions, kernel threads). Before each measurement the run "
        f"waited for the machine to be quiet (< {settings['quiet_threshold_cores']} busy cores; "
        f"{settings['quiet_wait_s']:.0f} s waited in all, budget "
        f"{settings['quiet_wait_budget_s']:.0f} s).",
        "",
        "| case | load | complaints/req | complaints/s | req/s | p50 ms | p99 ms | client CPU s "
        "| server CPU s | server CPU ms/req | other CPU s | errors | server CPU by process (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]


def markdown(report: dict[str, Any]) -> str:
    """The report as bench/results/serving.md has it."""
    lines = header(report)
    for row in report["results"]:
        lines.append(
            f"| {row['case']} | {load_text(row)} | {row['complaints_per_request']} "
            f"| {fmt(row['complaints_per_s'], 0)} | {fmt(row['requests_per_s'], 0)} "
            f"| {fmt(row['p50_ms'], 2)} | {fmt(row['p99_ms'], 2)} | {fmt(row['client_cpu_s'], 2)} "
            f"| {fmt(row['server_cpu_s'], 2)} | {fmt(row['server_cpu_ms_per_request'], 2)} "
            f"| {fmt(row.get('other_cpu_s'), 2)} | {row['errors']} "
            f"| {top_cpu(row.get('server_cpu_by_process', {}))} |"
        )
    lines += [
        "",
        f"Ratios (targets: {TARGETS}):",
        "",
        *(f"- {k}: {fmt(v, 2)}" for k, v in report["ratios"].items()),
    ]
    ray = report["settings"]["ray"]
    idle = ray.get("idle")
    if idle:
        lines += [
            "",
            f"Ray cluster with no requests: {idle['cores']:.3f} cores over {idle['seconds']:.0f} s "
            f"({top_cpu(idle['by_process'], 6)}).",
        ]
    lines += [
        "",
        "Ray settings: " + json.dumps(ray, sort_keys=True),
        "",
        "Answers checked against offline predictions before each server was measured: "
        + ", ".join(f"{k} max |Δp| {v:.1e}" for k, v in report["checks"].items()),
    ]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], prefix: Path) -> str:
    """PREFIX.json and PREFIX.md; the Markdown."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    prefix.with_suffix(".json").write_text(json.dumps(report, indent=1))
    prefix.with_suffix(".md").write_text(text)
    return text
