"""The optional ``detections`` input: an object detector's boxes start the track and bring it back.

Detection arrays (vision_msgs/Detection2DArray) refer to an image by its stamp. The callback only
converts and stores them (:class:`ckd_ros.tracking.acquisition.DetectionBuffer`); the inference worker,
before each pair, asks :class:`DetectorAcquisition` whether the track state wants a start and, if a held
pair has usable detections, starts the track on that pair. A detector is slower than the cameras, so its
answer usually arrives after the pair it describes has been processed: the pair is taken from the
history and the track started there, and the current pair is then tracked from it as usual.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from rclpy.qos import qos_profile_sensor_data

from ckd_ros.tracking import TrackOutput, TrackSession
from ckd_ros.tracking.acquisition import (SOURCE_REACQUIRED, AcquisitionConfig, Detection, DetectionBuffer,
                                          TrackMemory, pick_initial, pick_reacquire)

from .diagnostics import NodeStatistics
from .images import rgb_array, thermal_array
from .pairs import ImagePair, PairHistory, stamp_ns

THROTTLE_S = 5.0


def detections_from_message(msg: Any) -> list[Detection]:
    """One :class:`Detection` per (box, hypothesis) of a Detection2DArray: class filtering picks among a
    box's hypotheses later. vision_msgs 3.x/4.x (``results[i].hypothesis``) and 2.x (``results[i]``)."""
    out = []
    for det in msg.detections:
        w, h = float(det.bbox.size_x), float(det.bbox.size_y)
        centre = det.bbox.center.position if hasattr(det.bbox.center, "position") else det.bbox.center
        box = (float(centre.x) - w / 2.0, float(centre.y) - h / 2.0, w, h)
        for result in det.results:
            hyp = getattr(result, "hypothesis", result)
            out.append(Detection(box, str(hyp.class_id), float(hyp.score)))
    return out


@dataclass(frozen=True)
class Start:
    """A track started from a detection on a held pair (its converted images and the session's output)."""

    pair: ImagePair
    rgb: np.ndarray
    thermal: np.ndarray
    output: TrackOutput
    detection: Detection


class DetectorAcquisition:
    """Subscription to ``detections`` and the decision to start a track from them."""

    def __init__(self, node: Any, vision_msgs: Any, config: AcquisitionConfig, history_size: int,
                 slop_s: float, stats: NodeStatistics) -> None:
        self.config = config
        self.memory = TrackMemory()
        self.buffer = DetectionBuffer(history_size)
        self._node, self._stats = node, stats
        self._slop_ns = int(slop_s * 1e9)
        self._subscription = node.create_subscription(vision_msgs.Detection2DArray, "detections",
                                                      self._on_detections, qos_profile_sensor_data)
        what = [w for w, on in (("start when uninitialised", config.init_from_detections),
                                (f"re-acquire after {config.reacquire_after_s:g} s lost",
                                 config.reacquire_after_s > 0)) if on]
        node.get_logger().info(
            f"detections from {node.resolve_topic_name('detections')}: {', '.join(what)}; classes "
            f"{list(config.class_ids) or 'any'}, min score {config.min_score:g}, pick {config.pick}, "
            f"max distance {config.max_distance:g} box diagonals")

    def close(self) -> None:
        if self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
            self._subscription = None

    def _on_detections(self, msg: Any) -> None:
        self._stats.detections_rate.tick(self._node.get_clock().now().nanoseconds)
        self.buffer.add(stamp_ns(msg.header.stamp), detections_from_message(msg))

    def observe(self, output: TrackOutput, stamp_ns: int) -> None:
        started = output.result is not None and output.result.frame_index == 0
        self.memory.observe(output.status, output.box, stamp_ns, started)
        if started:
            self.buffer.discard_through(stamp_ns)

    def maybe_start(self, session: TrackSession, current: ImagePair, rgb: np.ndarray, thermal: np.ndarray,
                    history: PairHistory, intrinsics: Any,
                    convert: Callable[[ImagePair], tuple[np.ndarray, np.ndarray]] | None = None) -> Start | None:
        """Start a track from the newest usable detections when the track state asks for one, else None.
        ``rgb`` / ``thermal``: ``current``'s converted images (reused when the detections are of it)."""
        need = self.memory.need(self.config, session.status, session.pending_box is not None)
        if need is None:
            return None
        convert = convert or (lambda p: (rgb_array(p.rgb), thermal_array(p.thermal)))
        for stamp, detections in self.buffer.newest_first(need.after_ns):
            pair = current if abs(current.stamp_ns - stamp) <= self._slop_ns else \
                history.nearest(stamp, self._slop_ns)
            if pair is None:
                continue          # its images are not here (yet, or any more)
            images = (rgb, thermal) if pair is current else convert(pair)
            if need.source == SOURCE_REACQUIRED:
                chosen, why = pick_reacquire(detections, self.config, need.last_confident_box)
            else:
                chosen = pick_initial(detections, self.config, images[0].shape[:2], self.memory.last_confident_box)
                why = "no detection of an accepted class and score"
            self.buffer.discard_through(stamp)   # looked at: never counted or used twice
            if chosen is None:
                if detections:
                    self._stats.detections_ignored += 1
                    self._node.get_logger().info(f"detections of frame {stamp * 1e-9:.3f} not used: {why}",
                                                 throttle_duration_sec=THROTTLE_S)
                continue
            output = session.initialize(images[0], images[1], chosen.box, pair.stamp_ns, intrinsics, need.source)
            return Start(pair, images[0], images[1], output, chosen)
        return None


def acquisition_config(values: dict[str, Any]) -> AcquisitionConfig:
    """The detection rules the ``detections.*`` parameters ask for (``values``: read_parameters)."""
    point = [float(v) for v in values["detections.point"]]
    return AcquisitionConfig(
        class_ids=tuple(str(v) for v in values["detections.class_ids"] if str(v)),
        min_score=float(values["detections.min_score"]), pick=str(values["detections.pick"]),
        point=(point[0], point[1]) if len(point) == 2 else None,
        init_from_detections=bool(values["detections.init_from_detections"]),
        reacquire_after_s=float(values["detections.reacquire_after"]),
        max_distance=float(values["detections.max_distance"]))

