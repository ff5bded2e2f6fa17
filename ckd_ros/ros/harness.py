"""Running the node for real: a tracker node in its own process, and a probe node (in the caller's process)
that publishes camera images and records everything the tracker publishes.

Used by the demo, the latency benchmark and the integration tests, so all three exercise the node through
DDS exactly as a robot does.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, MutableMapping

import numpy as np

from .images import array_to_compressed, array_to_image

NODE_NAME = "ckd_tracker"


LARGE_IMAGES_PROFILE = Path(__file__).with_name("fastdds_large_images.xml")
# The environment variables naming a Fast DDS XML profile: Fast DDS 3 (Kilted on) reads the first, and its
# rmw warns at every start that the second is deprecated; Fast DDS 2 (Humble, Jazzy) reads only the second
# and ignores the first without a word.
PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
LEGACY_PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
PROFILE_VARIABLES = (PROFILE_VARIABLE, LEGACY_PROFILE_VARIABLE)
_FASTDDS_2_DISTROS = ("humble", "iron", "jazzy")


def large_images_profile() -> Path:
    """The Fast DDS XML profile for full-rate camera images between processes (see the file's comment)."""
    return LARGE_IMAGES_PROFILE


def fastdds_major(env: Mapping[str, str] | None = None) -> int | None:
    """Major version of the Fast DDS that ROS processes started with ``env`` load: 2, 3, or None if unknown.

    Read from the install prefixes (the first of AMENT_PREFIX_PATH, then this interpreter's, where PyPI
    wheels put it) holding ``share/fastdds`` (3) or ``share/fastrtps`` (2, the name it had before), else
    from ROS_DISTRO.
    """
    env = os.environ if env is None else env
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    for prefix in prefixes:
        share = Path(prefix) / "share"
        if (share / "fastdds").is_dir():
            return 3
        if (share / "fastrtps").is_dir():
            return 2
    distro = env.get("ROS_DISTRO", "")
    if distro:
        return 2 if distro in _FASTDDS_2_DISTROS else 3
    return None


def set_large_images_transport(env: MutableMapping[str, str], major: int | None) -> None:
    """Give ``env`` (a dict or ``os.environ``) the large-images Fast DDS profile under the name Fast DDS
    ``major`` reads (2, 3; None: both names). A profile the caller already set, under either name, is kept and
    moved to that name; Fast DDS 3 then gets no deprecated name to warn about.
    """
    env.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")   # overridden by the profile's transports
    profile = env.get(PROFILE_VARIABLE) or env.get(LEGACY_PROFILE_VARIABLE) or str(LARGE_IMAGES_PROFILE)
    names = {2: (LEGACY_PROFILE_VARIABLE,), 3: (PROFILE_VARIABLE,)}.get(major, PROFILE_VARIABLES)
    for name in names:
        env[name] = profile
    if major == 3:
        env.pop(LEGACY_PROFILE_VARIABLE, None)


def ros_environment(domain_id: int, log_dir: str | os.PathLike | None = None,
                    base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a ROS process isolated on ``domain_id`` of this machine.

    Images go over shared memory with a segment large enough for whole 1080p frames: with Fast DDS's
    512 KiB default (also under LARGE_DATA) best-effort subscribers lose most 1920x1080 frames. A profile
    file the caller already set (under either name) is kept.
    """
    if not 0 <= domain_id <= 232:
        raise ValueError(f"ROS_DOMAIN_ID must be in [0, 232], got {domain_id}")
    env = dict(os.environ if base is None else base)
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    env.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    set_large_images_transport(env, fastdds_major(env))
    if log_dir is not None:
        env["ROS_LOG_DIR"] = str(log_dir)
    elif "HOME" not in env and "ROS_LOG_DIR" not in env:
        env["ROS_LOG_DIR"] = str(Path.cwd() / "build" / "ros_log")
    return env


def _param_arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_param_arg(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value if value else "''"
    return str(value)


class NodeProcess:
    """``python -m ckd_ros.tracker_node`` in a child process with parameters, namespace and remaps."""

    def __init__(self, domain_id: int, log_path: str | os.PathLike, parameters: dict[str, Any] | None = None,
                 namespace: str = "", remaps: dict[str, str] | None = None, node_name: str = NODE_NAME,
                 python: str = sys.executable) -> None:
        self.domain_id = domain_id
        self.log_path = Path(log_path)
        args = [python, "-m", "ckd_ros.tracker_node", "--ros-args", "-r", f"__node:={node_name}"]
        if namespace:
            args += ["-r", f"__ns:={namespace}"]
        for src, dst in (remaps or {}).items():
            args += ["-r", f"{src}:={dst}"]
        for name, value in (parameters or {}).items():
            args += ["-p", f"{name}:={_param_arg(value)}"]
        self.args = args
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self) -> "NodeProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        env = ros_environment(self.domain_id, log_dir=self.log_path.parent / "ros_log")
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if not self.alive():
                return text in self.log()
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (clean shutdown), then SIGKILL if it does not exit in ``timeout`` s."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGINT)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class Received:
    msg: Any
    receipt_ns: int          # probe's clock when the callback ran


@dataclass
class Recording:
    target: list[Received] = field(default_factory=list)
    detections: list[Received] = field(default_factory=list)
    debug_image: list[Received] = field(default_factory=list)
    diagnostics: list[Received] = field(default_factory=list)


class Probe:
    """A node in this process: camera publishers, output subscribers and service clients for one tracker.

    Runs its own rclpy context on ``domain_id`` and spins it in a background thread.
    """

    def __init__(self, domain_id: int, tracker: str = f"/{NODE_NAME}", namespace: str = "",
                 debug_image: bool = False, name: str = "ckd_probe", reliable_cameras: bool = True,
                 rgb_topic: str | None = None, thermal_topic: str | None = None,
                 compressed: tuple[bool, bool] = (False, False), detections_topic: str | None = None) -> None:
        """``namespace``: the tracker's; camera topics default to ``<namespace>/rgb/image`` etc.
        ``compressed``: (rgb, thermal) cameras publish CompressedImage on ``<topic>/compressed`` instead;
        ``detections_topic``: publish vision_msgs/Detection2DArray there (``publish_detections``)."""
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        from ckd_ros.msg import TargetState

        from .messages import vision_msgs_module

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        self.tracker = tracker
        self.recording = Recording()
        self._cond = threading.Condition()
        camera_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable_cameras
                                else ReliabilityPolicy.BEST_EFFORT)
        ns = namespace.rstrip("/")
        self.rgb_pub = self.node.create_publisher(Image, rgb_topic or f"{ns}/rgb/image", camera_qos)
        self.thermal_pub = self.node.create_publisher(Image, thermal_topic or f"{ns}/thermal/image", camera_qos)
        self.info_pub = self.node.create_publisher(CameraInfo, f"{ns}/rgb/camera_info", camera_qos)
        from sensor_msgs.msg import CompressedImage
        self.compressed = tuple(bool(c) for c in compressed)
        self.rgb_compressed_pub = self.node.create_publisher(
            CompressedImage, f"{rgb_topic or f'{ns}/rgb/image'}/compressed", camera_qos) if self.compressed[0] else None
        self.thermal_compressed_pub = self.node.create_publisher(
            CompressedImage, f"{thermal_topic or f'{ns}/thermal/image'}/compressed",
            camera_qos) if self.compressed[1] else None
        self.detections_pub = None
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(TargetState, f"{tracker}/target", self._recorder("target"), reliable)
        vision = vision_msgs_module()
        self._vision = vision
        if vision is not None and detections_topic is not None:
            self.detections_pub = self.node.create_publisher(vision.Detection2DArray, detections_topic, reliable)
        if vision is not None:
            self.node.create_subscription(vision.Detection2DArray, f"{tracker}/detections",
                                          self._recorder("detections"), reliable)
        if debug_image:
            self.node.create_subscription(Image, f"{tracker}/debug_image", self._recorder("debug_image"), reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._recorder("diagnostics"), reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - context shut down under the executor
            pass

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(msg: Any) -> None:
            item = Received(msg, self.now_ns())
            with self._cond:
                getattr(self.recording, name).append(item)
                self._cond.notify_all()
        return record

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    # -------------------------------------------------------------------------------- publishing
    def publish_pair(self, rgb: np.ndarray, thermal: np.ndarray, stamp_ns: int | None = None,
                     rgb_encoding: str = "rgb8", thermal_encoding: str | None = None,
                     frame_id: str = "camera_rgb_optical_frame",
                     thermal_stamp_ns: int | None = None) -> int:
        """Publish one RGB + thermal pair (arrays already in the layout of the encodings); returns the stamp."""
        stamp_ns = self.now_ns() if stamp_ns is None else int(stamp_ns)
        if thermal_encoding is None:
            thermal_encoding = {np.dtype(np.uint16): "mono16", np.dtype(np.float32): "32FC1"}.get(
                thermal.dtype, "mono8" if thermal.ndim == 2 else "rgb8")
        self.rgb_pub.publish(array_to_image(rgb, rgb_encoding, _header(stamp_ns, frame_id)))
        self.thermal_pub.publish(array_to_image(
            thermal, thermal_encoding,
            _header(stamp_ns if thermal_stamp_ns is None else int(thermal_stamp_ns), "camera_thermal_optical_frame")))
        return stamp_ns

    def publish_compressed_pair(self, rgb: np.ndarray, thermal: np.ndarray, stamp_ns: int | None = None,
                                rgb_codec: str = "jpeg", thermal_codec: str = "png", quality: int = 90,
                                frame_id: str = "camera_rgb_optical_frame") -> int:
        """Publish one pair as CompressedImage on the cameras set ``compressed`` (raw Image on the others)."""
        stamp_ns = self.now_ns() if stamp_ns is None else int(stamp_ns)
        if self.rgb_compressed_pub is not None:
            self.rgb_compressed_pub.publish(array_to_compressed(rgb, rgb_codec, _header(stamp_ns, frame_id),
                                                                quality=quality))
        else:
            self.rgb_pub.publish(array_to_image(rgb, "rgb8", _header(stamp_ns, frame_id)))
        header = _header(stamp_ns, "camera_thermal_optical_frame")
        if self.thermal_compressed_pub is not None:
            self.thermal_compressed_pub.publish(array_to_compressed(thermal, thermal_codec, header, quality=quality))
        else:
            encoding = {np.dtype(np.uint16): "mono16", np.dtype(np.float32): "32FC1"}.get(
                thermal.dtype, "mono8" if thermal.ndim == 2 else "rgb8")
            self.thermal_pub.publish(array_to_image(thermal, encoding, header))
        return stamp_ns

    def publish_detections(self, stamp_ns: int, detections: Iterable[tuple[Iterable[float], str, float]],
                           frame_id: str = "camera_rgb_optical_frame") -> None:
        """A Detection2DArray for the image stamped ``stamp_ns``: (box x, y, w, h; class_id; score) each."""
        if self.detections_pub is None:
            raise RuntimeError("this probe was made without a detections_topic (or vision_msgs is missing)")
        self.detections_pub.publish(build_detection_array(self._vision, _header(stamp_ns, frame_id), detections))

    def publish_thermal_only(self, thermal: np.ndarray, stamp_ns: int, encoding: str = "rgb8") -> None:
        self.thermal_pub.publish(array_to_image(thermal, encoding, _header(stamp_ns, "thermal")))

    def publish_rgb_only(self, rgb: np.ndarray, stamp_ns: int, encoding: str = "rgb8") -> None:
        self.rgb_pub.publish(array_to_image(rgb, encoding, _header(stamp_ns, "camera_rgb_optical_frame")))

    def warm_up(self, timeout: float = 30.0) -> bool:
        """Publishes a small valid RGB image and a thermal one until the node has received both.

        Right after discovery Fast DDS may still be connecting its transports (the LARGE_DATA TCP channel)
        and best-effort samples published in that window are lost or delayed by a second or more; a test
        that publishes each message once cannot tell that from a bug. The two stamps are 2 s apart, far
        beyond any sync slop, so the warm-up never forms a pair and leaves the tracker untouched."""
        rgb = np.zeros((32, 32, 3), np.uint8)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.rgb_compressed_pub is not None:
                self.rgb_compressed_pub.publish(array_to_compressed(rgb, "png", _header(1_000_000_000, "rgb")))
            else:
                self.publish_rgb_only(rgb, 1_000_000_000)
            if self.thermal_compressed_pub is not None:
                self.thermal_compressed_pub.publish(array_to_compressed(rgb[..., 0], "png",
                                                                        _header(3_000_000_000, "thermal")))
            else:
                self.publish_thermal_only(rgb, 3_000_000_000)
            values = self.diagnostics_values(timeout=2.0)
            if int(values.get("rgb_received", 0)) > 0 and int(values.get("thermal_received", 0)) > 0:
                return True
        return False

    # -------------------------------------------------------------------------------- waiting
    def wait_until(self, predicate: Callable[[Recording], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.recording):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def wait_for_target(self, stamp_ns: int, timeout: float, status: int | None = None) -> Received | None:
        """The ~/target message computed from the image with ``stamp_ns`` (and with ``status``, if given)."""
        found: list[Received] = []

        def has(rec: Recording) -> bool:
            found[:] = [r for r in rec.target if _ns(r.msg.header.stamp) == stamp_ns
                        and (status is None or r.msg.status == status)]
            return bool(found)
        return found[0] if self.wait_until(has, timeout) else None

    def wait_for_subscribers(self, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rgb = self.rgb_compressed_pub or self.rgb_pub
            thermal = self.thermal_compressed_pub or self.thermal_pub
            if rgb.get_subscription_count() > 0 and thermal.get_subscription_count() > 0:
                return True
            time.sleep(0.05)
        return False

    # -------------------------------------------------------------------------------- services
    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 20.0) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} is not available after {timeout} s")
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"service {name} did not answer in {timeout} s")
                time.sleep(0.01)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def initialize(self, box: Iterable[float], stamp_ns: int = 0, timeout: float = 20.0) -> Any:
        from builtin_interfaces.msg import Time

        from ckd_ros.srv import Initialize
        x, y, w, h = (float(v) for v in box)
        request = Initialize.Request(x=x, y=y, width=w, height=h)
        request.header.stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
        return self.call(Initialize, f"{self.tracker}/initialize", request, timeout)

    def reset(self, timeout: float = 20.0) -> Any:
        from std_srvs.srv import Trigger
        return self.call(Trigger, f"{self.tracker}/reset", Trigger.Request(), timeout)

    def lifecycle_state(self, timeout: float = 20.0) -> str:
        from lifecycle_msgs.srv import GetState
        return self.call(GetState, f"{self.tracker}/get_state", GetState.Request(), timeout).current_state.label

    def change_state(self, transition: str, timeout: float = 60.0) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        request = ChangeState.Request(transition=Transition(label=transition))
        return bool(self.call(ChangeState, f"{self.tracker}/change_state", request, timeout).success)

    def set_parameters(self, values: dict[str, Any], timeout: float = 20.0) -> list[Any]:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        from .parameters import SPECS

        def message(name: str, value: Any) -> Any:
            if isinstance(value, list):
                # the declared element type decides (an empty list carries none); unknown names: the values
                spec = SPECS.get(name)
                sample = spec.default if spec is not None and isinstance(spec.default, list) else value
                if sample and all(isinstance(v, int) and not isinstance(v, bool) for v in sample):
                    return Parameter(name, Parameter.Type.INTEGER_ARRAY, [int(v) for v in value]).to_parameter_msg()
                return Parameter(name, Parameter.Type.DOUBLE_ARRAY, [float(v) for v in value]).to_parameter_msg()
            return Parameter(name, value=value).to_parameter_msg()
        request = SetParameters.Request(parameters=[message(n, v) for n, v in values.items()])
        return list(self.call(SetParameters, f"{self.tracker}/set_parameters", request, timeout).results)

    def diagnostics_values(self, timeout: float = 10.0) -> dict[str, str]:
        """Key/values of the tracker's newest /diagnostics status (waits for a fresh one)."""
        start = len(self.recording.diagnostics)
        self.wait_until(lambda rec: any(_is_tracker_status(r.msg, self.tracker) for r in rec.diagnostics[start:]),
                        timeout)
        for item in reversed(self.recording.diagnostics):
            for status in item.msg.status:
                if status.name.startswith(self.tracker):
                    return {kv.key: kv.value for kv in status.values} | {"_message": status.message,
                                                                          "_level": str(status.level)}
        return {}

    def close(self) -> None:
        import rclpy
        try:
            self.executor.shutdown(timeout_sec=1.0)
        except Exception:  # noqa: BLE001
            pass
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def build_detection_array(vision_msgs: Any, header: Any,
                          detections: Iterable[tuple[Iterable[float], str, float]]) -> Any:
    """vision_msgs/Detection2DArray of (box x, y, w, h; class_id; score), as a detector publishes it."""
    array = vision_msgs.Detection2DArray()
    array.header = header
    for box, class_id, score in detections:
        x, y, w, h = (float(v) for v in box)
        det = vision_msgs.Detection2D()
        det.header = header
        det.bbox.center.position.x, det.bbox.center.position.y = x + w / 2.0, y + h / 2.0
        det.bbox.size_x, det.bbox.size_y = w, h
        hypothesis = vision_msgs.ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = str(class_id)
        hypothesis.hypothesis.score = float(score)
        det.results.append(hypothesis)
        array.detections.append(det)
    return array


def _header(stamp_ns: int, frame_id: str) -> Any:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header
    return Header(stamp=Time(sec=int(stamp_ns) // 10**9, nanosec=int(stamp_ns) % 10**9), frame_id=frame_id)


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


def _is_tracker_status(msg: Any, tracker: str) -> bool:
    return any(s.name.startswith(tracker) for s in msg.status)
