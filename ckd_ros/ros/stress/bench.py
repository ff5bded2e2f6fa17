"""One tracker node process and one probe, with what every stress case checks: the node is alive, logged
its refusal a bounded number of times, counted it in /diagnostics, and tracks valid frames afterwards."""
from __future__ import annotations

import math
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..harness import NodeProcess, Probe
from ..images import array_to_image
from ..inputs import THROTTLE_S
from .hostile import set_stamp
from .report import CaseResult

SEC = 1_000_000_000
TRACKING = 1


class StressBench:
    """``node`` (a :class:`NodeProcess`) and ``probe``; valid frames from a synthetic sequence, played
    forwards and backwards so that the target never jumps."""

    def __init__(self, domain_id: int, workdir: Path, parameters: dict[str, Any], size: tuple[int, int] = (320, 256),
                 startup_s: float = 120.0) -> None:
        from ckd_ros.data.synthetic import generate_sequence

        seq = generate_sequence(3, "normal", num_frames=30, size=size)
        order = list(range(len(seq))) + list(range(len(seq) - 2, 0, -1))
        self.frames = [(seq.rgb[i], seq.thermal[i], [float(v) for v in seq.boxes[i]]) for i in order]
        self._messages = [(array_to_image(r, "rgb8"), array_to_image(t, "mono8" if t.ndim == 2 else "rgb8"))
                          for r, t, _ in self.frames]
        self.workdir = workdir
        self.node = NodeProcess(domain_id, workdir / "node.log", parameters).start()
        try:
            self.probe = Probe(domain_id)
        except Exception:
            self.node.stop()
            raise
        self._k = 0
        self._previous_case_log = ""
        self._last_stamp = 0
        self._lock = threading.Lock()
        if not (self.node.wait_for_log("subscribed to", startup_s) and self.probe.wait_for_subscribers(60.0)
                and self.probe.warm_up(60.0)):
            self.close()
            raise RuntimeError(f"the node did not come up:\n{self.node.log()[-4000:]}")

    # ------------------------------------------------------------------------------------ publishing
    def stamp(self) -> int:
        """A stamp from the probe clock, later than every stamp handed out before."""
        with self._lock:
            self._last_stamp = max(self.probe.now_ns(), self._last_stamp + 1_000_000)
            return self._last_stamp

    def reserve(self, stamp_ns: int) -> None:
        """Stamps handed out later are after ``stamp_ns`` (a case stamped frames itself)."""
        with self._lock:
            self._last_stamp = max(self._last_stamp, int(stamp_ns))

    def next_frame(self) -> tuple[int, Any, Any, list[float]]:
        """(index, rgb msg, thermal msg, box) of the next valid frame (messages shared: stamp before use)."""
        with self._lock:
            i = self._k % len(self.frames)
            self._k += 1
        rgb, thermal = self._messages[i]
        return i, rgb, thermal, self.frames[i][2]

    def publish(self, rgb: Any, thermal: Any, stamp_ns: int | None = None, thermal_stamp_ns: int | None = None) -> int:
        stamp = self.stamp() if stamp_ns is None else stamp_ns
        self.probe.rgb_pub.publish(set_stamp(rgb, stamp))
        self.probe.thermal_pub.publish(set_stamp(thermal, stamp if thermal_stamp_ns is None else thermal_stamp_ns))
        return stamp

    def publish_valid(self, count: int, rate_hz: float = 20.0) -> list[tuple[int, list[float]]]:
        """``count`` valid pairs at ``rate_hz``; (stamp, box) of each."""
        sent = []
        for _ in range(count):
            _, rgb, thermal, box = self.next_frame()
            sent.append((self.publish(rgb, thermal), box))
            time.sleep(1.0 / rate_hz)
        return sent

    @contextmanager
    def streaming(self, rate_hz: float = 20.0) -> Iterator[list[int]]:
        """Valid pairs in a background thread while the block runs; yields the stamps sent so far."""
        stamps: list[int] = []
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                _, rgb, thermal, _ = self.next_frame()
                stamps.append(self.publish(rgb, thermal))
                stop.wait(1.0 / rate_hz)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield stamps
        finally:
            stop.set()
            thread.join(5.0)

    # ------------------------------------------------------------------------------------ checks
    def diagnostics(self, timeout: float = 5.0) -> dict[str, str]:
        return self.probe.diagnostics_values(timeout=timeout)

    def log_mark(self) -> int:
        return len(self.node.log())

    def log_since(self, mark: int) -> str:
        return self.node.log()[mark:]

    def wait_log(self, mark: int, pattern: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log_since(mark)):
                return True
            time.sleep(0.1)
        return bool(re.search(pattern, self.log_since(mark)))

    def tracks(self, timeout: float = 30.0) -> bool:
        """True when valid frames sent now come back TRACKING; re-initialises on one of them if needed
        (after a reset or a reconfiguration the node rightly waits for a box)."""
        sent = self.publish_valid(10)
        if self._tracked(sent, 8.0):
            return True
        stamp, box = sent[-1]
        answer = self.probe.initialize(box, stamp_ns=stamp, timeout=timeout)
        if not answer.success:
            stamp, box = self.publish_valid(1)[0]
            time.sleep(0.5)
            answer = self.probe.initialize(box, stamp_ns=stamp, timeout=timeout)
        return bool(answer.success) and self._tracked(self.publish_valid(15), timeout)

    def _tracked(self, sent: list[tuple[int, list[float]]], timeout: float) -> bool:
        stamps = {s for s, _ in sent}
        return self.probe.wait_until(lambda rec: any(
            r.msg.status == TRACKING and r.msg.header.stamp.sec * SEC + r.msg.header.stamp.nanosec in stamps
            for r in rec.target), timeout)

    def run_case(self, name: str, description: str, body: Callable[["StressBench", CaseResult], None],
                 pattern: str | None = None, counter: str | None = None, expect_tracking: bool = True,
                 log_wait_s: float = 6.0, min_log_lines: int = 1) -> CaseResult:
        """Runs ``body`` and the common checks. ``pattern``: the refusal's log line (None: the input is
        valid and nothing may be refused); ``counter``: the diagnostics value that must grow."""
        result = CaseResult(name, description)
        if pattern is not None and re.search(pattern, self._previous_case_log):
            time.sleep(THROTTLE_S)   # the previous case logged this kind: its throttle would hide this one
        before = self.diagnostics() if counter else {}
        mark, start = self.log_mark(), time.monotonic()
        try:
            body(self, result)
            if pattern is not None:
                self.wait_log(mark, pattern, log_wait_s)
        except Exception as exc:  # noqa: BLE001 - a case that raised is a failed row, not a stopped run
            result.failures.append(f"{type(exc).__name__}: {exc}")
        result.alive = self.node.alive()
        result.check(result.alive, "the node process died")
        if result.alive and counter:
            after = before
            deadline = time.monotonic() + 6.0
            while time.monotonic() < deadline:
                after = self.diagnostics()
                result.counter_delta = _count(after, counter) - _count(before, counter)
                if result.counter_delta > 0:
                    break
            result.counter = counter
            result.check(result.counter_delta > 0, f"diagnostics {counter} did not grow")
        if result.alive and expect_tracking:
            result.tracked_after = self.tracks()
            result.check(result.tracked_after, "valid frames were not tracked afterwards")
        elapsed = time.monotonic() - start
        text = self.log_since(mark)
        if pattern is not None:
            lines = [line for line in text.splitlines() if re.search(pattern, line)]
            result.log_lines, result.log_example = len(lines), (lines[0][-300:] if lines else "")
            # throttled: one line per kind of problem per THROTTLE_S
            result.log_limit = max(min_log_lines, result.details.get("kinds", 1) * (math.ceil(elapsed / THROTTLE_S) + 1))
            result.check(min_log_lines <= len(lines) <= result.log_limit,
                         f"{len(lines)} log lines matching {pattern!r} (expected {min_log_lines}..{result.log_limit})")
        else:
            refusals = [line for line in text.splitlines() if "refusing" in line or "failed" in line]
            result.check(not refusals, f"valid input was refused: {refusals[:2]}")
        result.check("Traceback" not in text, "a traceback in the node's log: " + _traceback(text))
        result.seconds = elapsed
        self._previous_case_log = text
        return result

    def pid(self) -> int:
        assert self.node.process is not None
        return self.node.process.pid

    def close(self) -> None:
        self.probe.close()
        self.node.stop()


def _count(values: dict[str, str], key: str) -> int:
    if key.startswith("refused_encodings:"):
        wanted = key.split(":", 1)[1]
        items = dict(i.split("=", 1) for i in values.get("refused_encodings", "").split(", ") if "=" in i)
        return int(items.get(wanted, 0))
    try:
        return int(float(values.get(key, "0")))
    except ValueError:
        return 0


def _traceback(text: str) -> str:
    at = text.find("Traceback")
    return text[at:at + 600] if at >= 0 else ""


def frame_pixels(bench: StressBench, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rgb, thermal, _ = bench.frames[index % len(bench.frames)]
    return rgb, thermal
