"""Verdicts of the stress run: one row per case, the soak's figures, written as JSON and a table."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np


@dataclass
class CaseResult:
    """What one hostile case showed. ``passed`` only when every check held."""

    name: str
    description: str
    alive: bool = False
    log_lines: int = 0                 # lines matching the case's refusal, within the case
    log_limit: int = 0                 # the most a throttled log may print in that time (0: none expected)
    log_example: str = ""
    counter: str = ""                  # the diagnostics value that counts it
    counter_delta: int = 0
    tracked_after: bool = False
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    def check(self, condition: bool, failure: str) -> bool:
        if not condition:
            self.failures.append(failure)
        return condition


@dataclass(frozen=True)
class SoakCriteria:
    warmup_s: float                    # excluded from every comparison (model warm-up, allocator growth)
    window_s: float                    # latency p95 compared window by window
    max_rss_growth: float = 0.05       # last window's RSS over the first window after warm-up, minus one
    max_latency_ratio: float = 1.5     # any window's latency p95 over the first window's
    max_thread_growth: int = 2
    max_fd_growth: int = 4

    @classmethod
    def for_duration(cls, soak_s: float) -> "SoakCriteria":
        """A minute of warm-up and one-minute windows for long soaks; scaled down for short ones."""
        warmup = min(60.0, soak_s / 5.0)
        return cls(warmup_s=warmup, window_s=min(60.0, (soak_s - warmup) / 3.0))


def soak_verdict(times_s: Sequence[float], rss: Sequence[int], threads: Sequence[int], fds: Sequence[int],
                 latency_times_s: Sequence[float], latencies_s: Sequence[float],
                 criteria: SoakCriteria, rss_parts: dict[str, Sequence[int]] | None = None) -> dict[str, Any]:
    """Figures and pass / fail of a soak from its samples (seconds since the soak started).

    ``rss_parts`` (name -> samples, e.g. the kernel's anon / shmem / file split) are reported over the same
    windows as the RSS, so that a growth can be placed; the verdict judges the whole RSS."""
    t, lt, lat = np.asarray(times_s, float), np.asarray(latency_times_s, float), np.asarray(latencies_s, float)
    rss_a, thr, fd = np.asarray(rss, float), np.asarray(threads, float), np.asarray(fds, float)
    failures: list[str] = []
    after = t >= criteria.warmup_s
    if after.sum() < 2:
        return {"passed": False, "failures": ["too few resource samples after warm-up"]}
    first = after & (t < criteria.warmup_s + criteria.window_s)
    last = t > t.max() - criteria.window_s
    rss_start, rss_end = float(np.median(rss_a[first])), float(np.median(rss_a[last]))
    growth = rss_end / rss_start - 1.0
    if not growth < criteria.max_rss_growth:
        failures.append(f"RSS grew {100 * growth:.1f} % after warm-up (limit {100 * criteria.max_rss_growth:g} %)")
    thread_growth = int(thr[last].max() - thr[first].min())
    fd_growth = int(fd[last].max() - fd[first].min())
    if thread_growth > criteria.max_thread_growth:
        failures.append(f"thread count grew by {thread_growth}")
    if fd_growth > criteria.max_fd_growth:
        failures.append(f"open file descriptors grew by {fd_growth}")
    windows = []
    start = criteria.warmup_s
    while start + criteria.window_s / 2 <= lt.max(initial=0.0):   # a last window at least half full counts
        inside = lat[(lt >= start) & (lt < start + criteria.window_s)]
        if inside.size:
            windows.append({"start_s": round(start, 1), "count": int(inside.size),
                            "median_ms": 1e3 * float(np.median(inside)), "p95_ms": 1e3 * float(np.percentile(inside, 95))})
        start += criteria.window_s
    if not windows:
        failures.append("no latency window after warm-up")
        ratio = float("nan")
    else:
        ratio = max(w["p95_ms"] for w in windows) / windows[0]["p95_ms"]
        if not ratio <= criteria.max_latency_ratio:
            failures.append(f"latency p95 reached {ratio:.2f}x its first window (limit {criteria.max_latency_ratio:g}x)")
    parts = {name: {"mib_after_warmup": float(np.median(np.asarray(v, float)[first])) / 2**20,
                    "mib_end": float(np.median(np.asarray(v, float)[last])) / 2**20}
             for name, v in (rss_parts or {}).items() if len(v) == len(t)}
    return {
        "passed": not failures, "failures": failures, "criteria": asdict(criteria), "rss_parts": parts,
        "rss_mib_after_warmup": rss_start / 2**20, "rss_mib_end": rss_end / 2**20, "rss_growth": growth,
        "threads_after_warmup": int(thr[first].min()), "threads_end": int(thr[last].max()),
        "fds_after_warmup": int(fd[first].min()), "fds_end": int(fd[last].max()),
        "latency_windows": windows, "latency_p95_ratio": ratio,
    }


def case_table(cases: Sequence[CaseResult]) -> str:
    """Markdown table, a row per case."""
    rows = ["| case | result | alive | log lines (limit) | counter (+delta) | tracked after | s |",
            "|---|---|---|---|---|---|---|"]
    for c in cases:
        verdict = "pass" if c.passed else "FAIL: " + "; ".join(c.failures)
        counter = f"{c.counter} (+{c.counter_delta})" if c.counter else "-"
        rows.append(f"| {c.name} | {verdict} | {'yes' if c.alive else 'NO'} | {c.log_lines} ({c.log_limit}) | "
                    f"{counter} | {'yes' if c.tracked_after else 'no'} | {c.seconds:.1f} |")
    return "\n".join(rows)


def soak_table(soak: dict[str, Any]) -> str:
    if "rss_mib_end" not in soak:
        return "soak: " + "; ".join(soak.get("failures", []))
    lines = [f"soak {soak.get('seconds', 0):.0f} s, {soak.get('fps', 0):g} Hz {soak.get('size', '')}: "
             f"{'pass' if soak['passed'] else 'FAIL: ' + '; '.join(soak['failures'])}",
             f"RSS {soak['rss_mib_after_warmup']:.1f} -> {soak['rss_mib_end']:.1f} MiB "
             f"({100 * soak['rss_growth']:+.2f} %), threads {soak['threads_after_warmup']} -> {soak['threads_end']}, "
             f"fds {soak['fds_after_warmup']} -> {soak['fds_end']}, latency p95 max/first {soak['latency_p95_ratio']:.2f}x",
             *(["RSS parts: " + ", ".join(f"{name} {v['mib_after_warmup']:.1f} -> {v['mib_end']:.1f} MiB"
                          for name, v in soak["rss_parts"].items())] if soak.get("rss_parts") else []),
             "| window start s | outputs | latency median ms | p95 ms |", "|---|---|---|---|"]
    lines += [f"| {w['start_s']:g} | {w['count']} | {w['median_ms']:.1f} | {w['p95_ms']:.1f} |"
              for w in soak["latency_windows"]]
    return "\n".join(lines)


def write_report(path: Path, cases: Sequence[CaseResult], soak: dict[str, Any] | None,
                 meta: dict[str, Any]) -> str:
    """``path`` (.json) and its table beside it (.md); returns the table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"meta": meta, "passed": all(c.passed for c in cases) and (soak is None or soak["passed"]),
            "cases": [asdict(c) | {"passed": c.passed} for c in cases], "soak": soak}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
    table = case_table(cases) + ("\n\n" + soak_table(soak) if soak is not None else "")
    path.with_suffix(".md").write_text(table + "\n")
    return table
