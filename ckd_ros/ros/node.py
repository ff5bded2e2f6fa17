"""The managed (lifecycle) CKD tracker node.

configure: load the model and build the tracker (a bad checkpoint fails the transition; the node stays
alive, unconfigured, with the reason logged). activate: subscribe and start the inference worker.
deactivate / cleanup: release them again.

Data path: two image subscriptions -> approximate-time synchroniser -> the newest pair goes into a
one-slot mailbox (and a short history for stamped initialisation) -> an inference worker thread converts
it to numpy, calls :class:`ckd_ros.tracking.CKDTracker`, and publishes results with the RGB header.
Pairs overwritten in the mailbox while the worker was busy are dropped and counted, so output latency is
about one inference time however fast the cameras are.
"""
from __future__ import annotations

import importlib
import threading
import time
from typing import Any

import numpy as np
import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data)
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from ckd_ros.msg import TargetState
from ckd_ros.srv import Initialize

from . import parameters as params
from .diagnostics import NodeStatistics, build_diagnostic_array
from .images import (RGB_ENCODINGS, THERMAL_ENCODINGS, ImageConversionError, UnsupportedEncodingError,
                     rgb_to_array, thermal_to_array)
from .messages import (TrackOutput, VelocityEstimator, bearing_from_camera_info, build_debug_image,
                       build_detections, build_target_state, compose_debug_image, vision_msgs_module)
from .pairs import ImagePair, LatestPairMailbox, PairHistory
from .sync import ApproximateTimeSync

DEFAULT_NODE_NAME = "ckd_tracker"
STATUS_CODES = {"uninitialized": TargetState.UNINITIALIZED, "tracking": TargetState.TRACKING,
                "lost": TargetState.LOST}
_THROTTLE_S = 5.0
# ~/initialize with a stamp newer than every held frame waits this long for that frame to arrive
_INIT_FRAME_WAIT_S = 2.0


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _stamp_text(stamp_ns: int) -> str:
    """Exact seconds.nanoseconds (a float loses the last digits of an epoch stamp)."""
    return f"{stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d}"


def _message_filters() -> Any | None:
    try:
        return importlib.import_module("message_filters")
    except ImportError:
        return None


class TrackerNode(LifecycleNode):
    """``ckd_tracker``: RGB + thermal images in; ~/target, ~/detections, ~/debug_image, /diagnostics out."""

    def __init__(self, node_name: str = DEFAULT_NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        params.declare_parameters(self)
        self._lifecycle = "unconfigured"
        self._stats = NodeStatistics()
        self._refusal_logged: dict[tuple[str, str], float] = {}
        self._lock = threading.RLock()          # tracker, track id, init state
        self._tracker: Any = None
        self._device = "cpu"
        self._track_id = ""
        self._track_count = 0
        self._init_stamp_ns: int | None = None
        self._pending_box: list[float] | None = None
        self._last_confident_ns: int | None = None
        self._last_pair_ns: int | None = None
        self._velocity = VelocityEstimator()
        self._camera_k: list[float] | None = None
        self._mailbox = LatestPairMailbox()
        self._history = PairHistory(int(self.get_parameter("init_history_size").value))
        self._sync: Any = None
        self._subscriptions_io: list[Any] = []
        self._mf_subscribers: list[Any] = []
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._pub_target = self._pub_detections = self._pub_debug = None
        self._srv_init = self._srv_reset = None
        self._vision_msgs = vision_msgs_module()
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(float(self.get_parameter("diagnostics_period").value),
                                             self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ------------------------------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = params.read_parameters(self)
        problems = [p for p in (params.validate_value(n, v) for n, v in values.items()) if p]
        problems += [p for p in [params.validate_together(values)] if p]
        if problems:
            self.get_logger().error("configure failed: invalid parameters: " + "; ".join(problems))
            return TransitionCallbackReturn.FAILURE
        try:
            self._build_tracker(values)
        except Exception as exc:  # noqa: BLE001 - any failure must leave the node alive and unconfigured
            self._tracker = None
            self.get_logger().error(f"configure failed, node stays unconfigured: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        self._pub_target = self.create_lifecycle_publisher(TargetState, "~/target", reliable)
        if self._vision_msgs is not None:
            self._pub_detections = self.create_lifecycle_publisher(self._vision_msgs.Detection2DArray,
                                                                   "~/detections", reliable)
        else:
            self.get_logger().warning("vision_msgs is not installed: ~/detections is not published "
                                      "(~/target carries the same box)")
        self._pub_debug = self.create_lifecycle_publisher(
            Image, "~/debug_image", QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
        self._srv_init = self.create_service(Initialize, "~/initialize", self._on_initialize,
                                             callback_group=self._service_group)
        self._srv_reset = self.create_service(Trigger, "~/reset", self._on_reset, callback_group=self._service_group)
        self._lifecycle = "inactive"
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = params.read_parameters(self)
        self._history = PairHistory(int(values["init_history_size"]))
        self._mailbox = LatestPairMailbox()
        try:
            self._subscribe(values)
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"activate failed: {type(exc).__name__}: {exc}")
            self._unsubscribe()
            return TransitionCallbackReturn.FAILURE
        box = params.initial_box_value(values["initial_box"])
        with self._lock:
            if box is not None and (self._tracker is None or not self._tracker.initialized):
                self._pending_box = box
        self._restart_diagnostics_timer(float(values["diagnostics_period"]))
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="ckd_inference", daemon=True)
        self._worker.start()
        self._lifecycle = "active"
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._stop_worker()
        self._lifecycle = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._lifecycle = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._stop_worker()
        self._release()
        self._lifecycle = "finalized"
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error during a transition from {state.label}: releasing everything")
        self._unsubscribe()
        self._stop_worker()
        self._release()
        self._lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    @property
    def lifecycle_state(self) -> str:
        return self._lifecycle

    # ------------------------------------------------------------------------------------------ model
    def _build_tracker(self, values: dict[str, Any]) -> None:
        import torch

        from ckd_ros import model as ckd_model
        from ckd_ros import tracking

        device = values["device"]
        if device == "auto":
            device = "cuda:0" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available to torch "
                               f"(torch {torch.__version__}); use device:=cpu or auto")
        precision = values["precision"]
        if precision == "fp16" and not device.startswith("cuda"):
            raise RuntimeError("precision fp16 needs a CUDA device; use exact, fp32, int8 or bf16 on the CPU")
        if precision == "int8" and device.startswith("cuda"):
            raise RuntimeError("precision int8 (dynamic quantisation) runs on the CPU; use fp16 or bf16 on CUDA")

        checkpoint = values["checkpoint"] or str(ckd_model.default_checkpoint_path())
        self.get_logger().info(f"loading {'the embedded default model ' if not values['checkpoint'] else ''}"
                               f"{checkpoint} on {device}")
        net = ckd_model.load_checkpoint(checkpoint, device="cpu")
        mode = values["candidate_elimination.mode"]
        if mode == "off":
            net.set_ce((), ())
        elif mode == "on":
            layers = tuple(values["candidate_elimination.layers"]) or net.config.mce_layers()
            try:  # ModelConfig validates the schedule against this network's depth
                net.set_ce(layers, float(values["candidate_elimination.keep_ratio"]))
            except ValueError as exc:
                raise RuntimeError(f"candidate_elimination.layers {list(layers)}: {exc}") from None
        homography = values["thermal.homography"]
        gain = tracking.ThermalGainConfig(
            mode=values["thermal.gain_mode"], low_percentile=values["thermal.low_percentile"],
            high_percentile=values["thermal.high_percentile"],
            window_min=values["thermal.window_min"] if values["thermal.gain_mode"] == "fixed" else None,
            window_max=values["thermal.window_max"] if values["thermal.gain_mode"] == "fixed" else None,
            smoothing=values["thermal.smoothing"])
        registration = tracking.RegistrationConfig(
            homography=np.asarray(homography, dtype=np.float64).reshape(3, 3) if homography else None,
            on_size_mismatch=values["thermal.on_size_mismatch"])
        status = tracking.StatusConfig(
            lost_threshold=values["status.lost_threshold"], recover_threshold=values["status.recover_threshold"],
            lost_patience=values["status.lost_patience"], recover_patience=values["status.recover_patience"])
        config = tracking.TrackerConfig(thermal_gain=gain, registration=registration, status=status,
                                        exact_crop_limit=values["exact_crop_limit"] or None)
        tracker = tracking.CKDTracker(ckd_model.optimize(net.to(device), precision), config, device=device)
        self._warm_up(tracker)
        with self._lock:
            self._tracker = tracker
            self._device = device
            self._init_stamp_ns = None
            self._track_id = ""
        cfg = net.config
        self.get_logger().info(
            f"model ready: embed {cfg.embed_dim}, depth {cfg.depth}, candidate elimination at {list(cfg.ce_loc)}, "
            f"{device}, {precision}")

    def _warm_up(self, tracker: Any) -> None:
        """One initialise + track on a blank frame, so the first real frame does not pay for lazy setup."""
        rgb = np.zeros((tracker.search_size, tracker.search_size, 3), np.uint8)
        tracker.initialize(rgb, rgb, (96.0, 96.0, 64.0, 64.0))
        tracker.track(rgb, rgb)
        tracker.reset()

    def _release(self) -> None:
        for pub in (self._pub_target, self._pub_detections, self._pub_debug):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._pub_target = self._pub_detections = self._pub_debug = None
        for srv in (self._srv_init, self._srv_reset):
            if srv is not None:
                self.destroy_service(srv)
        self._srv_init = self._srv_reset = None
        with self._lock:
            self._tracker = None
            self._pending_box = None
        if self._device.startswith("cuda"):
            import torch
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------------------------------ inputs
    def _subscribe(self, values: dict[str, Any]) -> None:
        if values["qos.reliable"]:
            qos = QoSProfile(depth=int(values["qos.depth"]), reliability=ReliabilityPolicy.RELIABLE)
        else:
            qos = QoSProfile(depth=int(values["qos.depth"]), reliability=qos_profile_sensor_data.reliability,
                             durability=qos_profile_sensor_data.durability)
        queue_size, slop = int(values["sync.queue_size"]), float(values["sync.slop"])
        rgb_filter = self._encoding_filter("RGB", RGB_ENCODINGS, self._stats.rgb_rate)
        thermal_filter = self._encoding_filter("thermal", THERMAL_ENCODINGS, self._stats.thermal_rate)
        event_callbacks = self._qos_event_callbacks()
        mf = _message_filters()
        if mf is not None:
            subs = [mf.Subscriber(self, Image, "rgb/image", qos_profile=qos, event_callbacks=event_callbacks),
                    mf.Subscriber(self, Image, "thermal/image", qos_profile=qos, event_callbacks=event_callbacks)]

            class _Gate(mf.SimpleFilter):
                """Counts and refuses bad encodings before they reach the synchroniser."""

                def __init__(self, source: Any, accept: Any) -> None:
                    super().__init__()
                    self._accept = accept
                    source.registerCallback(self._feed)

                def _feed(self, msg: Any) -> None:
                    if self._accept(msg):
                        self.signalMessage(msg)

            gates = [_Gate(subs[0], rgb_filter), _Gate(subs[1], thermal_filter)]
            self._sync = mf.ApproximateTimeSynchronizer(gates, queue_size, slop)
            self._sync.registerCallback(self._on_pair)
            self._mf_subscribers = subs
            implementation = "message_filters.ApproximateTimeSynchronizer"
        else:
            self._sync = ApproximateTimeSync(2, queue_size, slop, self._on_pair)
            feeds = [self._sync.input(0), self._sync.input(1)]

            def gate(accept: Any, feed: Any) -> Any:
                return lambda msg: feed(msg) if accept(msg) else None

            self._subscriptions_io = [
                self.create_subscription(Image, "rgb/image", gate(rgb_filter, feeds[0]), qos,
                                         event_callbacks=event_callbacks),
                self.create_subscription(Image, "thermal/image", gate(thermal_filter, feeds[1]), qos,
                                         event_callbacks=event_callbacks)]
            implementation = "ckd_ros.ros.sync.ApproximateTimeSync (message_filters is not installed)"
        if values["use_camera_info"]:
            self._subscriptions_io.append(self.create_subscription(CameraInfo, "rgb/camera_info",
                                                                   self._on_camera_info, qos))
        self.get_logger().info(
            f"subscribed to {self.resolve_topic_name('rgb/image')} and {self.resolve_topic_name('thermal/image')} "
            f"({'reliable' if values['qos.reliable'] else 'best effort (sensor data)'}, depth {values['qos.depth']}); "
            f"pairing with {implementation}, queue {queue_size}, slop {slop:g} s")

    def _qos_event_callbacks(self) -> Any:
        from rclpy.event_handler import SubscriptionEventCallbacks

        def incompatible(event: Any) -> None:
            self.get_logger().error(
                f"an image publisher has an incompatible QoS ({event.last_policy_kind}): no images arrive from it. "
                "Reliable-only subscribers miss best-effort cameras; set qos.reliable to match the camera",
                throttle_duration_sec=_THROTTLE_S)
        return SubscriptionEventCallbacks(incompatible_qos=incompatible)

    def _unsubscribe(self) -> None:
        for sub in self._subscriptions_io:
            self.destroy_subscription(sub)
        for sub in self._mf_subscribers:
            self.destroy_subscription(sub.sub)
        self._subscriptions_io, self._mf_subscribers, self._sync = [], [], None

    def _encoding_filter(self, role: str, accepted: tuple[str, ...], meter: Any) -> Any:
        def accept(msg: Image) -> bool:
            meter.tick(self.get_clock().now().nanoseconds)
            if msg.encoding in accepted:
                return True
            self._stats.refuse(role, msg.encoding)
            self._stats.last_error = str(UnsupportedEncodingError(msg.encoding, accepted, role))
            # throttled per encoding, so that a second bad encoding is not hidden behind the first
            key, now = (role, msg.encoding), time.monotonic()
            if now - self._refusal_logged.get(key, -_THROTTLE_S) >= _THROTTLE_S:
                self._refusal_logged[key] = now
                self.get_logger().error(f"refusing {role} image: {self._stats.last_error}")
            return False
        return accept

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_k = [float(v) for v in msg.k]

    def _on_pair(self, rgb: Image, thermal: Image) -> None:
        now = self.get_clock().now().nanoseconds
        pair = ImagePair(rgb, thermal, _stamp_ns(rgb.header.stamp), now)
        self._stats.pair_rate.tick(now)
        self._last_pair_ns = now
        self._history.add(pair)
        self._mailbox.put(pair)

    # ------------------------------------------------------------------------------------------ worker
    def _stop_worker(self) -> None:
        self._stop.set()
        self._mailbox.close()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
        self._worker = None

    def _work(self) -> None:
        while not self._stop.is_set():
            pair = self._mailbox.take(timeout=0.2)
            if pair is None:
                continue
            started = time.perf_counter()
            try:
                self._process(pair)
            except Exception as exc:  # noqa: BLE001 - one bad pair must not stop the node
                self._stats.processing_errors += 1
                self._stats.last_error = f"{type(exc).__name__}: {exc}"
                self.get_logger().error(f"processing a pair failed: {self._stats.last_error}",
                                        throttle_duration_sec=_THROTTLE_S)
            pad = float(self.get_parameter("debug_min_step_time").value) - (time.perf_counter() - started)
            if pad > 0:
                self._stop.wait(pad)

    def _process(self, pair: ImagePair) -> None:
        try:
            rgb = rgb_to_array(pair.rgb)
            thermal = thermal_to_array(pair.thermal)
        except ImageConversionError as exc:
            self._stats.conversion_errors += 1
            self._stats.last_error = str(exc)
            self.get_logger().error(f"refusing image pair: {exc}", throttle_duration_sec=_THROTTLE_S)
            return
        with self._lock:
            tracker = self._tracker
            if tracker is None:
                return
            pending, self._pending_box = self._pending_box, None
            if pending is not None:
                try:
                    result = self._initialize_on(tracker, pair, rgb, thermal, pending)
                except Exception as exc:  # noqa: BLE001
                    self.get_logger().error(f"initial_box {pending} refused: {exc}")
                    self._stats.last_error = f"initial_box refused: {exc}"
                    return
            elif tracker.initialized and (self._init_stamp_ns is None or pair.stamp_ns > self._init_stamp_ns):
                result = tracker.track(rgb, thermal)
                self._stats.step_time.add(result.timing.total_s)
            else:
                result = None
            self._publish(pair, rgb, thermal, result)

    def _initialize_on(self, tracker: Any, pair: ImagePair, rgb: np.ndarray, thermal: np.ndarray,
                       box: list[float]) -> Any:
        """Caller holds the lock."""
        result = tracker.initialize(rgb, thermal, box)
        self._track_count += 1
        self._track_id = f"{self.get_name()}-{self._track_count}"
        self._init_stamp_ns = pair.stamp_ns
        self._velocity.reset()
        self._last_confident_ns = pair.stamp_ns
        self.get_logger().info(f"tracking {self._track_id} from box {[round(v, 1) for v in box]} "
                               f"(frame stamp {pair.stamp_ns * 1e-9:.3f})")
        return result

    def _publish(self, pair: ImagePair, rgb: np.ndarray, thermal: np.ndarray, result: Any) -> None:
        """Caller holds the lock. Every output carries the RGB image's header."""
        header = pair.rgb.header
        if result is None:
            output = TrackOutput(TargetState.UNINITIALIZED, (0.0, 0.0, 0.0, 0.0), 0.0)
        else:
            status = STATUS_CODES[getattr(result.status, "value", str(result.status)).lower()]
            if status == TargetState.TRACKING:
                self._last_confident_ns = pair.stamp_ns
            velocity = self._velocity.update(result.box, pair.stamp_ns)
            since = 0.0 if self._last_confident_ns is None else (pair.stamp_ns - self._last_confident_ns) * 1e-9
            bearing = None
            if self._camera_k is not None:
                x, y, w, h = result.box
                bearing = bearing_from_camera_info(self._camera_k, x + w / 2.0, y + h / 2.0)
            output = TrackOutput(status, tuple(float(v) for v in result.box), float(result.score), velocity,
                                 max(0.0, since), bearing)
        if self._pub_target is not None:
            self._pub_target.publish(build_target_state(header, output, self._track_id))
        if self._pub_detections is not None:
            class_id = str(self.get_parameter("class_id").value)
            self._pub_detections.publish(build_detections(self._vision_msgs, header, output, self._track_id,
                                                          class_id))
        now = self.get_clock().now().nanoseconds
        self._stats.processed_rate.tick(now)
        self._stats.output_latency.add((now - pair.stamp_ns) * 1e-9)
        if self._pub_debug is not None and self._pub_debug.get_subscription_count() > 0:
            try:
                # the tracker's own view of the thermal frame: no second gain control or registration here
                tracker = self._tracker
                thermal8 = tracker.last_thermal if result is not None else tracker.thermal_view(thermal, rgb.shape[:2])
            except Exception:  # noqa: BLE001 - the debug view must never cost a result
                thermal8 = np.zeros_like(rgb)
            canvas = compose_debug_image(rgb, thermal8, output,
                                         int(self.get_parameter("debug_image_max_height").value))
            self._pub_debug.publish(build_debug_image(header, canvas))

    # ------------------------------------------------------------------------------------------ services
    def _on_initialize(self, request: Any, response: Any) -> Any:
        box = [request.x, request.y, request.width, request.height]
        problem = params.box_error(box)
        stamp = _stamp_ns(request.header.stamp)
        pair = None
        if problem is None:
            if stamp == 0:
                pair = self._history.newest()
                if pair is None:
                    problem = "no synchronised RGB + thermal pair received yet (is the node active and are both cameras publishing?)"
            else:
                pair = self._history.wait_for(stamp, _INIT_FRAME_WAIT_S)
                if pair is None:
                    span = self._history.span()
                    held = (f"frames held: {_stamp_text(span[0])} .. {_stamp_text(span[1])}" if span
                            else "no frames held")
                    problem = (f"no frame with stamp {_stamp_text(stamp)} in the recent history ({held}, waited "
                               f"{_INIT_FRAME_WAIT_S:g} s for it); was the frame lost in transport (large images "
                               "need the shared-memory profile, see config/tracker.yaml)? "
                               "Send a zero stamp for the newest frame")
        if problem is None:
            problem = params.box_image_error(box, int(pair.rgb.width), int(pair.rgb.height))
        if problem is None:
            try:
                rgb = rgb_to_array(pair.rgb)
                thermal = thermal_to_array(pair.thermal)
                with self._lock:
                    if self._tracker is None:
                        raise RuntimeError("the node is not configured")
                    self._pending_box = None
                    result = self._initialize_on(self._tracker, pair, rgb, thermal, box)
                    self._publish(pair, rgb, thermal, result)
            except Exception as exc:  # noqa: BLE001
                problem = f"{type(exc).__name__}: {exc}"
        response.success = problem is None
        response.message = problem or f"tracking {self._track_id}"
        if problem:
            self.get_logger().warning(f"~/initialize refused: {problem}")
        return response

    def _on_reset(self, request: Any, response: Any) -> Any:
        with self._lock:
            if self._tracker is None:
                response.success, response.message = False, "the node is not configured"
                return response
            self._tracker.reset()
            self._pending_box = None
            self._init_stamp_ns = None
            self._velocity.reset()
            previous, self._track_id = self._track_id, ""
        response.success = True
        response.message = f"forgot {previous}; waiting for ~/initialize" if previous else "nothing was tracked"
        self.get_logger().info(f"~/reset: {response.message}")
        return response

    # ------------------------------------------------------------------------------------------ parameters
    def _on_set_parameters(self, changes: list[Any]) -> SetParametersResult:
        values = params.read_parameters(self)
        for change in changes:
            problem = params.stage_error(change.name, self._lifecycle) or params.validate_value(change.name,
                                                                                                 change.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            values[change.name] = list(change.value) if isinstance(change.value, (list, tuple)) or (
                hasattr(change.value, "tolist")) else change.value
        problem = params.validate_together(values)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        for change in changes:
            if change.name == "initial_box":
                box = params.initial_box_value(values["initial_box"])
                newest = self._history.newest()
                if box is not None and newest is not None:
                    problem = params.box_image_error(box, int(newest.rgb.width), int(newest.rgb.height))
                    if problem:
                        return SetParametersResult(successful=False, reason=problem)
                with self._lock:
                    self._pending_box = box
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------------ diagnostics
    def _restart_diagnostics_timer(self, period: float) -> None:
        self.destroy_timer(self._diag_timer)
        self._diag_timer = self.create_timer(period, self._publish_diagnostics)

    def tracking_state(self) -> str:
        with self._lock:
            tracker = self._tracker
            if tracker is None:
                return "NOT_CONFIGURED"
            status = tracker.status
        return getattr(status, "value", str(status)).upper()

    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now()
        evicted = self._sync.counters.evicted if isinstance(self._sync, ApproximateTimeSync) else 0
        array = build_diagnostic_array(
            now.to_msg(), self.get_fully_qualified_name(), self._device, self._lifecycle, self.tracking_state(),
            self._stats, now.nanoseconds, self._mailbox.dropped, evicted,
            float(self.get_parameter("stale_input_timeout").value), self._last_pair_ns)
        self._pub_diagnostics.publish(array)

    @property
    def statistics(self) -> NodeStatistics:
        return self._stats

    @property
    def dropped_pairs(self) -> int:
        return self._mailbox.dropped


def spin_node(args: list[str] | None = None, node_name: str = DEFAULT_NODE_NAME) -> int:
    """Create the node, bring it up if ``autostart``, spin until shutdown. Returns a process exit code."""
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    rclpy.init(args=args)
    node = None
    try:
        node = TrackerNode(node_name)
        if node.get_parameter("autostart").value:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
            else:
                node.get_logger().error("autostart: configure failed; the node stays unconfigured and alive "
                                        "(fix the parameters, then configure it through its lifecycle services)")
        executor = MultiThreadedExecutor(num_threads=3)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node._unsubscribe()
            node._stop_worker()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
