"""The node's camera inputs: image subscriptions, encoding gates and the RGB / thermal synchroniser.

message_filters' ApproximateTimeSynchronizer is used where it is installed (every ROS 2 distribution);
elsewhere (ROS 2 from PyPI) :class:`ckd_ros.ros.sync.ApproximateTimeSync`, the same policy, tested against
it. Images with an encoding an input does not accept are counted and refused before they reach the
synchroniser, with one log line per encoding per throttle period.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any, Callable

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from .diagnostics import NodeStatistics, RateMeter
from .images import RGB_ENCODINGS, THERMAL_ENCODINGS, UnsupportedEncodingError, compressed_format_problem
from .sync import ApproximateTimeSync

THROTTLE_S = 5.0


def message_filters_module() -> Any | None:
    try:
        return importlib.import_module("message_filters")
    except ImportError:
        return None


@dataclass(frozen=True)
class InputSettings:
    reliable: bool = False
    depth: int = 5
    queue_size: int = 10
    slop: float = 0.02
    use_camera_info: bool = True
    rgb_transport: str = "raw"         # raw | compressed (<topic>/compressed, image_transport's name)
    thermal_transport: str = "raw"

    @classmethod
    def from_parameters(cls, values: dict[str, Any]) -> "InputSettings":
        return cls(bool(values["qos.reliable"]), int(values["qos.depth"]), int(values["sync.queue_size"]),
                   float(values["sync.slop"]), bool(values["use_camera_info"]),
                   str(values.get("rgb.transport", "raw")), str(values.get("thermal.transport", "raw")))

    def qos(self) -> QoSProfile:
        if self.reliable:
            return QoSProfile(depth=self.depth, reliability=ReliabilityPolicy.RELIABLE)
        return QoSProfile(depth=self.depth, reliability=qos_profile_sensor_data.reliability,
                          durability=qos_profile_sensor_data.durability)


class EncodingGate:
    """Counts every message of one input and lets through only the encodings it accepts."""

    def __init__(self, node: Any, role: str, accepted: tuple[str, ...], meter: RateMeter,
                 stats: NodeStatistics) -> None:
        self._node, self._role, self._accepted, self._meter, self._stats = node, role, accepted, meter, stats
        self._logged: dict[str, float] = {}

    def __call__(self, msg: Image) -> bool:
        now = self._node.get_clock().now().nanoseconds
        self._meter.tick(now)
        problem = self._problem(msg)
        if problem is None:
            # what the stall report needs: which stream went silent, how far apart the stamps are
            self._stats.last_receipt_ns[self._role] = now
            self._stats.last_stamp_ns[self._role] = int(msg.header.stamp.sec) * 1_000_000_000 + int(
                msg.header.stamp.nanosec)
            return True
        kind = self._kind(msg)
        self._stats.refuse(self._role, kind)
        self._stats.last_error = problem
        # throttled per encoding, so that a second bad encoding is not hidden behind the first
        now = time.monotonic()
        if now - self._logged.get(kind, -THROTTLE_S) >= THROTTLE_S:
            self._logged[kind] = now
            self._node.get_logger().error(f"refusing {self._role} image: {self._stats.last_error}")
        return False

    @staticmethod
    def _kind(msg: Any) -> str:
        return msg.encoding if hasattr(msg, "encoding") else msg.format

    def _problem(self, msg: Any) -> str | None:
        if hasattr(msg, "encoding"):
            ok = msg.encoding in self._accepted
            return None if ok else str(UnsupportedEncodingError(msg.encoding, self._accepted, self._role))
        # CompressedImage: only the format string is checked here; decoding is the worker's job
        return compressed_format_problem(msg.format, self._role)


class CameraInputs:
    """Subscriptions to ``rgb/image``, ``thermal/image`` (and ``rgb/camera_info``) feeding ``on_pair(rgb,
    thermal)`` with approximately synchronised pairs; ``close`` removes them again."""

    def __init__(self, node: Any, settings: InputSettings, stats: NodeStatistics,
                 on_pair: Callable[[Image, Image], None], on_camera_info: Callable[[CameraInfo], None]) -> None:
        self._node = node
        self._subscriptions: list[Any] = []
        self._filter_subscribers: list[Any] = []
        self._own_sync: ApproximateTimeSync | None = None
        qos, events = settings.qos(), SubscriptionEventCallbacks(incompatible_qos=self._incompatible_qos)
        gates = (EncodingGate(node, "RGB", RGB_ENCODINGS, stats.rgb_rate, stats),
                 EncodingGate(node, "thermal", THERMAL_ENCODINGS, stats.thermal_rate, stats))
        topics, types = _camera_topics(node, settings)
        mf = message_filters_module()
        try:
            if mf is not None:
                self._subscribe_message_filters(mf, topics, types, gates, qos, events, settings, on_pair)
                self.implementation = "message_filters.ApproximateTimeSynchronizer"
            else:
                self._own_sync = ApproximateTimeSync(2, settings.queue_size, settings.slop, on_pair)
                feeds = (self._own_sync.input(0), self._own_sync.input(1))
                for topic, msg_type, gate, feed in zip(topics, types, gates, feeds):
                    self._subscriptions.append(node.create_subscription(
                        msg_type, topic, _gated(gate, feed), qos, event_callbacks=events))
                self.implementation = "ckd_ros.ros.sync.ApproximateTimeSync (message_filters is not installed)"
            if settings.use_camera_info:
                self._subscriptions.append(node.create_subscription(CameraInfo, "rgb/camera_info",
                                                                    on_camera_info, qos))
        except Exception:
            self.close()
            raise
        node.get_logger().info(
            f"subscribed to {node.resolve_topic_name(topics[0])} and {node.resolve_topic_name(topics[1])} "
            f"({'reliable' if settings.reliable else 'best effort (sensor data)'}, depth {settings.depth}); "
            f"pairing with {self.implementation}, queue {settings.queue_size}, slop {settings.slop:g} s")

    @property
    def evicted(self) -> int:
        """Messages the synchroniser discarded unpaired (counted by our synchroniser only)."""
        return self._own_sync.counters.evicted if self._own_sync is not None else 0

    def close(self) -> None:
        for sub in self._subscriptions:
            self._node.destroy_subscription(sub)
        for sub in self._filter_subscribers:
            self._node.destroy_subscription(sub.sub)
        self._subscriptions, self._filter_subscribers, self._own_sync = [], [], None

    def _subscribe_message_filters(self, mf: Any, topics: tuple[str, str], types: tuple[Any, Any],
                                   gates: tuple[EncodingGate, ...], qos: QoSProfile, events: Any,
                                   settings: InputSettings, on_pair: Callable[[Image, Image], None]) -> None:
        subscribers = [mf.Subscriber(self._node, msg_type, topic, qos_profile=qos, event_callbacks=events)
                       for topic, msg_type in zip(topics, types)]
        self._filter_subscribers = subscribers
        filters = [_gate_filter(mf, subscriber, gate) for subscriber, gate in zip(subscribers, gates)]
        sync = mf.ApproximateTimeSynchronizer(filters, settings.queue_size, settings.slop)
        sync.registerCallback(on_pair)
        self._filters = (filters, sync)   # message_filters holds callbacks weakly in places: keep them alive

    def _incompatible_qos(self, event: Any) -> None:
        self._node.get_logger().error(
            f"an image publisher has an incompatible QoS ({event.last_policy_kind}): no images arrive from it. "
            "Reliable-only subscribers miss best-effort cameras; set qos.reliable to match the camera",
            throttle_duration_sec=THROTTLE_S)


TRANSPORTS = ("raw", "compressed")


def _camera_topics(node: Any, settings: InputSettings) -> tuple[tuple[str, str], tuple[Any, Any]]:
    """Topic names and message types of the two cameras. A compressed camera is ``<base>/compressed`` of
    the base topic after remapping (as image_transport names it), so ``rgb/image:=/cam/color`` also moves
    the compressed topic to ``/cam/color/compressed``."""
    topics, types = [], []
    for base, transport in (("rgb/image", settings.rgb_transport), ("thermal/image", settings.thermal_transport)):
        if transport not in TRANSPORTS:
            raise ValueError(f"transport {transport!r} for {base} is not one of {', '.join(TRANSPORTS)}")
        if transport == "compressed":
            topics.append(node.resolve_topic_name(base) + "/compressed")
            types.append(CompressedImage)
        else:
            topics.append(base)
            types.append(Image)
    return (topics[0], topics[1]), (types[0], types[1])


def _gated(gate: EncodingGate, feed: Callable[[Image], None]) -> Callable[[Image], None]:
    def callback(msg: Image) -> None:
        if gate(msg):
            feed(msg)
    return callback


def _gate_filter(mf: Any, source: Any, gate: EncodingGate) -> Any:
    """A message_filters stage that passes on what ``gate`` accepts."""
    stage = mf.SimpleFilter()
    source.registerCallback(lambda msg: stage.signalMessage(msg) if gate(msg) else None)
    return stage
