"""What the node reports on /diagnostics: input and pair rates, drops, latency, tracking state."""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class RateMeter:
    """Events per second over a sliding window of the clock the caller passes (node clock: sim time works)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self._times: deque[int] = deque()
        self.total = 0
        self._lock = threading.Lock()

    def tick(self, now_ns: int) -> None:
        with self._lock:
            self.total += 1
            self._times.append(now_ns)
            self._trim(now_ns)

    def rate(self, now_ns: int) -> float:
        with self._lock:
            self._trim(now_ns)
            if len(self._times) < 2:
                return 0.0
            span = max(now_ns, self._times[-1]) - self._times[0]
            return (len(self._times) - 1) / (span * 1e-9) if span > 0 else 0.0

    def _trim(self, now_ns: int) -> None:
        while self._times and now_ns - self._times[0] > self.window_ns:
            self._times.popleft()


class LatencyStats:
    """Recent latency samples in seconds (median / p95 / max over the last ``size``)."""

    def __init__(self, size: int = 200) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(float(seconds))

    def summary(self) -> dict[str, float]:
        with self._lock:
            values = np.array(self._samples, dtype=float)
        if values.size == 0:
            return {"median": float("nan"), "p95": float("nan"), "max": float("nan"), "count": 0}
        return {"median": float(np.median(values)), "p95": float(np.percentile(values, 95)),
                "max": float(values.max()), "count": int(values.size)}


# Counters published as diagnostics values of their own name (always present, from 0).
EVENTS: tuple[str, ...] = (
    "pairs_refused_future_stamp",    # stamped beyond max_stamp_lead ahead of the node clock
    "pairs_refused_duplicate_stamp",  # same stamp as the previous pair
    "pairs_refused_older_stamp",     # older than the last accepted pair
    "stamp_timeline_restarts",       # stamps went back and stayed back: accepted as a new timeline
    "input_stalls",                  # cameras deliver but no pair forms (a stream silent, or stamps apart)
    "initialize_calls", "initialize_refused", "reset_calls",
    "parameters_refused", "configure_failed",
    "executor_destruction_races",    # a wait set met a subscription being destroyed (retried, see node.py)
)


@dataclass
class NodeStatistics:
    """Counters the node updates from its callbacks and worker; read when publishing diagnostics."""

    rgb_rate: RateMeter = field(default_factory=RateMeter)
    thermal_rate: RateMeter = field(default_factory=RateMeter)
    pair_rate: RateMeter = field(default_factory=RateMeter)
    processed_rate: RateMeter = field(default_factory=RateMeter)
    step_time: LatencyStats = field(default_factory=LatencyStats)      # tracker step (compute) time
    output_latency: LatencyStats = field(default_factory=LatencyStats)  # image stamp -> publish, node clock
    refused_encodings: dict[str, int] = field(default_factory=dict)
    detections_rate: RateMeter = field(default_factory=RateMeter)       # detection arrays received
    track_starts: dict[str, int] = field(default_factory=dict)         # by init source
    detections_ignored: int = 0     # arrays looked at for a start whose detections were all refused
    conversion_errors: int = 0
    processing_errors: int = 0
    last_error: str = ""
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENTS, 0))
    last_stamp_ns: dict[str, int] = field(default_factory=dict)     # by role: newest accepted image stamp
    last_receipt_ns: dict[str, int] = field(default_factory=dict)   # by role: node clock at its arrival

    def refuse(self, role: str, encoding: str) -> None:
        key = f"{role}:{encoding}"
        self.refused_encodings[key] = self.refused_encodings.get(key, 0) + 1

    def count(self, event: str) -> None:
        self.events[event] = self.events.get(event, 0) + 1


def _fmt(value: float) -> str:
    return "nan" if value != value else f"{value:.4f}"


def build_diagnostic_array(header_stamp: Any, node_name: str, hardware_id: str, lifecycle_state: str,
                           tracking_state: str, stats: NodeStatistics, now_ns: int,
                           pairs_dropped: int, sync_evicted: int, stale_after_s: float,
                           last_pair_ns: int | None) -> Any:
    """diagnostic_msgs/DiagnosticArray with one status for the node."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    step = stats.step_time.summary()
    latency = stats.output_latency.summary()
    values = {
        "lifecycle_state": lifecycle_state,
        "tracking_state": tracking_state,
        "rgb_rate_hz": f"{stats.rgb_rate.rate(now_ns):.2f}",
        "thermal_rate_hz": f"{stats.thermal_rate.rate(now_ns):.2f}",
        "pair_rate_hz": f"{stats.pair_rate.rate(now_ns):.2f}",
        "processed_rate_hz": f"{stats.processed_rate.rate(now_ns):.2f}",
        "rgb_received": str(stats.rgb_rate.total),
        "thermal_received": str(stats.thermal_rate.total),
        "pairs_synchronised": str(stats.pair_rate.total),
        "pairs_processed": str(stats.processed_rate.total),
        "pairs_dropped": str(pairs_dropped),
        "unmatched_evicted": str(sync_evicted),
        "refused_encodings": ", ".join(f"{k}={v}" for k, v in sorted(stats.refused_encodings.items())),
        "refused_images": str(sum(stats.refused_encodings.values()) + stats.conversion_errors),
        "processing_errors": str(stats.processing_errors),
        **{name: str(count) for name, count in stats.events.items()},
        "step_time_median_s": _fmt(step["median"]),
        "step_time_p95_s": _fmt(step["p95"]),
        "latency_median_s": _fmt(latency["median"]),
        "latency_p95_s": _fmt(latency["p95"]),
        "detections_received": str(stats.detections_rate.total),
        "detections_ignored": str(stats.detections_ignored),
        "track_starts": ", ".join(f"{k}={v}" for k, v in sorted(stats.track_starts.items())),
        "last_error": stats.last_error,
    }
    level, message = DiagnosticStatus.OK, "tracking" if tracking_state == "TRACKING" else tracking_state.lower()
    if lifecycle_state != "active":
        level, message = DiagnosticStatus.WARN, f"node {lifecycle_state}"
    elif last_pair_ns is None or (now_ns - last_pair_ns) * 1e-9 > stale_after_s:
        level, message = DiagnosticStatus.WARN, "no synchronised RGB + thermal pair recently"
    elif stats.refused_encodings or stats.processing_errors:
        level, message = DiagnosticStatus.WARN, f"{message}; images refused or failed (see values)"
    status = DiagnosticStatus(level=level, name=f"{node_name}: CKD tracker", message=message,
                              hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = header_stamp
    return array
