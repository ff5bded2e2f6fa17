"""The node's outputs: ~/target, ~/detections and ~/debug_image, created and released together."""
from __future__ import annotations

from typing import Any

import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ckd_ros.tracking import TrackOutput, TrackSession

from .messages import build_debug_image, build_detections, build_target_state, compose_debug_image, vision_msgs_module


class TrackPublishers:
    """Lifecycle publishers of one configured node. Every output carries the RGB image's header."""

    def __init__(self, node: Any) -> None:
        from ckd_ros.msg import TargetState

        self._node = node
        self._vision_msgs = vision_msgs_module()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        self._target = node.create_lifecycle_publisher(TargetState, "~/target", reliable)
        self._detections = None
        if self._vision_msgs is not None:
            self._detections = node.create_lifecycle_publisher(self._vision_msgs.Detection2DArray,
                                                               "~/detections", reliable)
        else:
            node.get_logger().warning("vision_msgs is not installed: ~/detections is not published "
                                      "(~/target carries the same box)")
        # a viewer that cannot keep up must not queue frames in the node
        self._debug = node.create_lifecycle_publisher(
            Image, "~/debug_image", QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))

    def publish(self, header: Any, output: TrackOutput, class_id: str) -> None:
        self._target.publish(build_target_state(header, output))
        if self._detections is not None:
            self._detections.publish(build_detections(self._vision_msgs, header, output, class_id))

    def publish_debug(self, header: Any, rgb: np.ndarray, thermal: np.ndarray, output: TrackOutput,
                      session: TrackSession, max_height: int) -> None:
        """The debug view, composed only while somebody subscribes (it costs a resize and a copy)."""
        if self._debug.get_subscription_count() == 0:
            return
        try:   # the tracker's own view of the thermal frame: no second gain control or registration here
            thermal8 = session.thermal_view(thermal, rgb.shape[:2], tracked=output.result is not None)
        except Exception:  # noqa: BLE001 - the debug view must never cost a result
            thermal8 = np.zeros_like(rgb)
        self._debug.publish(build_debug_image(header, compose_debug_image(rgb, thermal8, output, max_height)))

    def destroy(self) -> None:
        for pub in (self._target, self._detections, self._debug):
            if pub is not None:
                self._node.destroy_lifecycle_publisher(pub)
        self._target = self._detections = self._debug = None
