"""The node's data path, from a synchronised pair to published outputs.

:class:`PairIntake` runs in the synchroniser callback and must stay cheap: it applies the stamp rules
(:mod:`.stamps`) and hands accepted pairs to the one-slot mailbox and the stamped history.
:class:`FrameProcessor` runs in the inference worker: it converts the images, lets a detector start or
restart the track (:mod:`.detections`), asks the :class:`ckd_ros.tracking.TrackSession` for its answer and
publishes it with the RGB header.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ckd_ros.tracking import PendingBoxError, TrackOutput, TrackSession

from .detections import DetectorAcquisition
from .diagnostics import NodeStatistics
from .images import ImageConversionError, rgb_array, thermal_array
from .outputs import TrackPublishers
from .pairs import ImagePair, LatestPairMailbox, PairHistory, stamp_ns
from .stamps import StampGuard
from .throttle import KeyedThrottle, problem_kind

Log = Callable[[str, str], None]   # (level "error" | "warning", message), throttled per kind of problem


def throttled_logger(logger: Any, throttle: KeyedThrottle) -> Log:
    def log(level: str, message: str) -> None:
        if not throttle.allow(level + problem_kind(message)):
            return
        # one call site per severity: rclpy refuses a site whose severity changes between calls
        if level == "error":
            logger.error(message)
        else:
            logger.warning(message)
    return log


class PairIntake:
    """Synchroniser callback: stamp rules, then the mailbox and the history. Never raises (an exception in
    a subscription callback would end ``executor.spin``, and with it the node)."""

    def __init__(self, node: Any, stats: NodeStatistics, history: PairHistory, mailbox: LatestPairMailbox,
                 session: Callable[[], TrackSession | None], log: Log) -> None:
        self._node, self._stats, self._history, self._mailbox = node, stats, history, mailbox
        self._session, self._log = session, log
        self._guard = StampGuard()
        self.last_pair_ns: int | None = None     # last accepted pair (node clock)
        self.last_formed_ns: int | None = None   # last pair formed, accepted or not (stall report)

    def __call__(self, rgb: Any, thermal: Any) -> None:
        try:
            self._accept(rgb, thermal)
        except Exception as exc:  # noqa: BLE001
            self._stats.processing_errors += 1
            self._stats.last_error = f"{type(exc).__name__}: {exc}"
            self._log("error", f"processing a pair failed: {self._stats.last_error}")

    def _accept(self, rgb: Any, thermal: Any) -> None:
        now = self._node.get_clock().now().nanoseconds
        pair = ImagePair(rgb, thermal, stamp_ns(rgb.header.stamp), now)
        self.last_formed_ns = now
        check = self._guard.check(pair.stamp_ns, now, float(self._node.get_parameter("max_stamp_lead").value))
        if not check.accepted:
            self._stats.count(f"pairs_refused_{check.kind}_stamp")
            self._stats.last_error = check.message
            self._log("error", f"refusing image pair: {check.message}")
            return
        if check.kind == "restart":
            self._stats.count("stamp_timeline_restarts")
            self._history.clear()   # frames of the old timeline cannot be the ones a new ~/initialize means
            session = self._session()
            ended = session.reset() if session is not None else ""
            self._node.get_logger().warning(f"{check.message}; " + (f"track {ended} ended, call ~/initialize "
                                                                    "again" if ended else "nothing was tracked"))
        self._stats.pair_rate.tick(now)
        self.last_pair_ns = now
        self._history.add(pair)
        self._mailbox.put(pair)


class FrameProcessor:
    """Inference worker step: one pair in, the session's answer published (or the reason it was not)."""

    def __init__(self, node: Any, stats: NodeStatistics, session: TrackSession, outputs: TrackPublishers,
                 history: PairHistory, acquisition: DetectorAcquisition | None,
                 intrinsics: Callable[[], list[float] | None], log: Log) -> None:
        self._node, self._stats, self._session, self._outputs = node, stats, session, outputs
        self._history, self._acquisition, self._intrinsics, self._log = history, acquisition, intrinsics, log

    def __call__(self, pair: ImagePair) -> None:
        session = self._session
        try:
            rgb, thermal = rgb_array(pair.rgb), thermal_array(pair.thermal)
        except ImageConversionError as exc:
            self._stats.conversion_errors += 1
            self._stats.last_error = str(exc)
            self._log("error", f"refusing image pair: {exc}")
            return
        k = self._intrinsics()
        if self._acquisition is not None:
            start = self._acquisition.maybe_start(session, pair, rgb, thermal, self._history, k)
            if start is not None:
                self.log_start(start.output, start.pair)
                self.publish(start.pair, start.rgb, start.thermal, start.output)
                if start.pair is pair:
                    return
        try:
            output = session.process(rgb, thermal, pair.stamp_ns, k)
        except PendingBoxError as exc:
            self._stats.last_error = f"initial_box refused: {exc}"
            self._node.get_logger().error(f"initial_box {exc}")
            return
        if output is None:
            return
        if output.result is not None and output.result.frame_index > 0:
            self._stats.step_time.add(output.result.timing.total_s)
        elif output.result is not None:
            self.log_start(output, pair)
        self.publish(pair, rgb, thermal, output)

    def log_start(self, output: TrackOutput, pair: ImagePair) -> None:
        self._node.get_logger().info(f"tracking {output.track_id} from box {[round(v, 1) for v in output.box]} "
                                     f"(frame stamp {pair.stamp_ns * 1e-9:.3f}, {output.init_source})")

    def publish(self, pair: ImagePair, rgb: np.ndarray, thermal: np.ndarray, output: TrackOutput) -> None:
        stats = self._stats
        if output.result is not None and output.result.frame_index == 0:
            stats.track_starts[output.init_source] = stats.track_starts.get(output.init_source, 0) + 1
        if self._acquisition is not None:
            self._acquisition.observe(output, pair.stamp_ns)
        self._outputs.publish(pair.rgb.header, output, str(self._node.get_parameter("class_id").value))
        now = self._node.get_clock().now().nanoseconds
        stats.processed_rate.tick(now)
        stats.output_latency.add((now - pair.stamp_ns) * 1e-9)
        self._outputs.publish_debug(pair.rgb.header, rgb, thermal, output, self._session,
                                    int(self._node.get_parameter("debug_image_max_height").value))
