"""The soak: valid 640x512 pairs at 30 Hz for a long time, sampling the node's memory, threads, open files
and output latency (image stamp -> ~/target receipt in the probe, both on this machine's clock)."""
from __future__ import annotations

import time
from typing import Any

from .bench import SEC, StressBench
from .procfs import sample_process
from .report import SoakCriteria, soak_verdict


def run_soak(bench: StressBench, seconds: float, fps: float = 30.0, sample_every_s: float = 1.0) -> dict[str, Any]:
    # right after discovery the first images can be lost or seconds late (README): try a few times
    if not any(bench.tracks() for _ in range(3)):
        return {"passed": False, "failures": ["not tracking at the start of the soak"]}
    pid = bench.pid()
    received_before = len(bench.probe.recording.target)
    times, rss, threads, fds = [], [], [], []
    parts: dict[str, list[int]] = {"anon": [], "shmem": [], "file": []}
    start = time.monotonic()
    start_ns = bench.probe.now_ns()
    sent, next_sample = 0, 0.0
    while (elapsed := time.monotonic() - start) < seconds and bench.node.alive():
        _, rgb, thermal, _ = bench.next_frame()
        bench.publish(rgb, thermal)
        sent += 1
        if elapsed >= next_sample:
            sample = sample_process(pid)
            times.append(elapsed)
            rss.append(sample.rss_bytes)
            threads.append(sample.threads)
            fds.append(sample.open_fds)
            for name, values in parts.items():
                values.append(getattr(sample, f"rss_{name}_bytes"))
            next_sample += sample_every_s
        time.sleep(max(0.0, start + sent / fps - time.monotonic()))
    time.sleep(1.0)
    outputs = list(bench.probe.recording.target)[received_before:]
    stamps = [(r.msg.header.stamp.sec * SEC + r.msg.header.stamp.nanosec, r.receipt_ns) for r in outputs]
    latency_t = [(s - start_ns) / SEC for s, _ in stamps]
    latencies = [(receipt - s) / SEC for s, receipt in stamps]
    diagnostics = bench.diagnostics()
    verdict = soak_verdict(times, rss, threads, fds, latency_t, latencies, SoakCriteria.for_duration(seconds),
                           rss_parts=parts)
    if not bench.node.alive():
        verdict["passed"] = False
        verdict.setdefault("failures", []).append("the node died during the soak")
    tracking = sum(r.msg.status == 1 for r in outputs)
    verdict.update(seconds=seconds, fps=fps, size="x".join(map(str, bench.frames[0][0].shape[1::-1])),
                   pairs_sent=sent, outputs=len(outputs), tracking_outputs=tracking,
                   pairs_dropped=diagnostics.get("pairs_dropped"), step_time_median_s=diagnostics.get("step_time_median_s"),
                   samples={"t_s": [round(t, 2) for t in times], "rss_bytes": rss, "threads": threads, "fds": fds,
                            **{f"rss_{name}_bytes": values for name, values in parts.items()}})
    return verdict
