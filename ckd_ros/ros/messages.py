"""Tracker results -> ROS messages (TargetState, vision_msgs Detection2DArray, debug image)."""
from __future__ import annotations

import importlib
from typing import Any

import cv2
import numpy as np

from ckd_ros.tracking import TrackOutput, TrackStatus

from .images import array_to_image

# TargetState's status constants (msg/TargetState.msg), by tracker status
STATUS_CODES = {TrackStatus.UNINITIALIZED: 0, TrackStatus.TRACKING: 1, TrackStatus.LOST: 2}


def vision_msgs_module() -> Any | None:
    """vision_msgs.msg where installed (every ROS 2 distribution; the project's subset in its venv)."""
    try:
        return importlib.import_module("vision_msgs.msg")
    except ImportError:
        return None


def build_target_state(header: Any, output: TrackOutput) -> Any:
    from ckd_ros.msg import TargetState

    msg = TargetState()
    msg.header = header
    msg.status = STATUS_CODES[output.status]
    msg.id = output.track_id
    msg.init_source = output.init_source
    msg.x, msg.y, msg.width, msg.height = (float(v) for v in output.box)
    msg.score = float(output.score)
    msg.confidence = float(output.confidence)
    msg.velocity_x, msg.velocity_y = (float(v) for v in output.velocity)
    msg.time_since_confident = float(output.time_since_confident)
    msg.bearing_valid = output.bearing is not None
    if output.bearing is not None:
        msg.bearing.x, msg.bearing.y, msg.bearing.z = output.bearing
    return msg


def build_detections(vision_msgs: Any, header: Any, output: TrackOutput, class_id: str) -> Any:
    """Detection2DArray with one detection while a box exists (tracking or lost), none otherwise.

    The LOST box is still published (with its low score) so that consumers see the last estimate;
    planners that must not steer on it read the score or ~/target's status.
    """
    array = vision_msgs.Detection2DArray()
    array.header = header
    if output.status == TrackStatus.UNINITIALIZED:
        return array
    x, y, w, h = (float(v) for v in output.box)
    det = vision_msgs.Detection2D()
    det.header = header
    det.id = output.track_id
    det.bbox.center.position.x = x + w / 2.0
    det.bbox.center.position.y = y + h / 2.0
    det.bbox.center.theta = 0.0
    det.bbox.size_x, det.bbox.size_y = w, h
    hypothesis = vision_msgs.ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = class_id
    hypothesis.hypothesis.score = float(output.score)
    det.results.append(hypothesis)
    array.detections.append(det)
    return array


def compose_debug_image(rgb: np.ndarray, thermal8: np.ndarray, output: TrackOutput | None,
                        max_height: int = 480) -> np.ndarray:
    """RGB and thermal (as the tracker saw it) side by side with the box and score drawn, rgb8 order."""
    if thermal8.ndim == 2:
        thermal8 = np.repeat(thermal8[..., None], 3, axis=2)
    if thermal8.shape[:2] != rgb.shape[:2]:
        thermal8 = cv2.resize(thermal8, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    canvas = np.concatenate([np.ascontiguousarray(rgb), np.ascontiguousarray(thermal8)], axis=1)
    scale = min(1.0, max_height / canvas.shape[0])
    if scale < 1.0:
        canvas = cv2.resize(canvas, (int(canvas.shape[1] * scale), int(canvas.shape[0] * scale)),
                            interpolation=cv2.INTER_AREA)
    canvas = np.ascontiguousarray(canvas)
    width = rgb.shape[1] * scale
    if output is not None and output.status != TrackStatus.UNINITIALIZED:
        colour = (0, 255, 0) if output.status == TrackStatus.TRACKING else (255, 160, 0)
        x, y, w, h = (v * scale for v in output.box)
        for dx in (0.0, width):
            cv2.rectangle(canvas, (int(round(x + dx)), int(round(y))), (int(round(x + w + dx)), int(round(y + h))),
                          colour, 2)
        label = f"{output.status.name} {output.score:.2f}"
        cv2.putText(canvas, label, (int(x), max(12, int(y) - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                    cv2.LINE_AA)
    else:
        cv2.putText(canvas, "UNINITIALIZED", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 1, cv2.LINE_AA)
    return canvas


def build_debug_image(header: Any, canvas: np.ndarray) -> Any:
    return array_to_image(canvas, "rgb8", header)
