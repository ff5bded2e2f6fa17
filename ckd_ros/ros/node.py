"""The managed (lifecycle) CKD tracker node: transitions, services and publishing.

configure: build the tracker from the parameters (:func:`ckd_ros.tracking.build_tracker`; a bad checkpoint
fails the transition, the node stays alive and unconfigured with the reason logged). activate: subscribe
(:mod:`.inputs`) and start the inference worker (:mod:`.pairs`). deactivate / cleanup: release them again.

Data path: synchronised pairs go into a one-slot mailbox (and a short history for stamped initialisation);
the worker converts the newest one, hands it to the :class:`ckd_ros.tracking.TrackSession` and publishes
its answer with the RGB header. Pairs overwritten while the worker was busy are dropped and counted, so
output latency stays about one inference time however fast the cameras are.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from ckd_ros.msg import TargetState
from ckd_ros.srv import Initialize
from ckd_ros.tracking import PendingBoxError, TrackOutput, TrackSession, TrackStatus, box_problem, build_tracker
from ckd_ros.tracking.factory import describe

from . import parameters as params
from .diagnostics import NodeStatistics, build_diagnostic_array
from .detections import DetectorAcquisition, acquisition_config
from .images import ImageConversionError, image_hw, rgb_array, thermal_array
from .inputs import THROTTLE_S, CameraInputs, InputSettings
from .messages import build_debug_image, build_detections, build_target_state, compose_debug_image, vision_msgs_module
from .pairs import ImagePair, InferenceWorker, LatestPairMailbox, PairHistory

DEFAULT_NODE_NAME = "ckd_tracker"
# ~/initialize with a stamp newer than every held frame waits this long for that frame to arrive
_INIT_FRAME_WAIT_S = 2.0


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _stamp_text(stamp_ns: int) -> str:
    """Exact seconds.nanoseconds (a float loses the last digits of an epoch stamp)."""
    return f"{stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d}"


class TrackerNode(LifecycleNode):
    """``ckd_tracker``: RGB + thermal images in; ~/target, ~/detections, ~/debug_image, /diagnostics out."""

    def __init__(self, node_name: str = DEFAULT_NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        params.declare_parameters(self)
        self._lifecycle = "unconfigured"
        self._stats = NodeStatistics()
        self._session: TrackSession | None = None
        self._device = "cpu"
        self._inputs: CameraInputs | None = None
        self._acquisition: DetectorAcquisition | None = None
        self._worker: InferenceWorker | None = None
        self._mailbox = LatestPairMailbox()
        self._history = PairHistory(int(self.get_parameter("init_history_size").value))
        self._camera_k: list[float] | None = None
        self._last_pair_ns: int | None = None
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
        spec = params.tracker_spec(values)
        if spec.uses_embedded_model:
            self.get_logger().warning(
                "running the embedded DEMONSTRATION model: it was trained on this package's synthetic scenes "
                "only and is not the paper's tracker; for real cameras pass the paper's checkpoint "
                "(checkpoint:=/path/to/CKD_ep0015.pth.tar)")
        try:
            tracker = build_tracker(spec)
        except Exception as exc:  # noqa: BLE001 - any failure must leave the node alive and unconfigured
            self.get_logger().error(f"configure failed, node stays unconfigured: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._session, self._device = TrackSession(tracker, self.get_name()), str(tracker.device)
        self.get_logger().info(f"model ready: {describe(tracker, spec)}")
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
            self._inputs = CameraInputs(self, InputSettings.from_parameters(values), self._stats, self._on_pair,
                                        self._on_camera_info)
            config = acquisition_config(values)
            if config.enabled and self._vision_msgs is None:
                raise RuntimeError("detections.* asks for the detections input, but vision_msgs is not installed")
            if config.enabled:
                self._acquisition = DetectorAcquisition(self, self._vision_msgs, config,
                                                        int(values["init_history_size"]),
                                                        float(values["detections.slop"]), self._stats)
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"activate failed: {type(exc).__name__}: {exc}")
            self._stop_inputs()
            return TransitionCallbackReturn.FAILURE
        box = params.initial_box_value(values["initial_box"])
        if box is not None and self._session is not None and self._session.status == TrackStatus.UNINITIALIZED:
            self._session.request(box)
        self.destroy_timer(self._diag_timer)
        self._diag_timer = self.create_timer(float(values["diagnostics_period"]), self._publish_diagnostics)
        self._worker = InferenceWorker(self._mailbox, self._process, self._on_processing_error,
                                       lambda: float(self.get_parameter("debug_min_step_time").value))
        self._lifecycle = "active"
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._lifecycle = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._lifecycle = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.shutdown()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error during a transition from {state.label}: releasing everything")
        self.shutdown()
        self._lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def shutdown(self) -> None:
        """Stop inputs and worker and release the model, from any state (process exit, errors)."""
        self._stop_inputs()
        self._release()
        self._lifecycle = "finalized"

    @property
    def lifecycle_state(self) -> str:
        return self._lifecycle

    def _stop_inputs(self) -> None:
        if self._inputs is not None:
            self._inputs.close()
            self._inputs = None
        if self._acquisition is not None:
            self._acquisition.close()
            self._acquisition = None
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def _release(self) -> None:
        for pub in (self._pub_target, self._pub_detections, self._pub_debug):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._pub_target = self._pub_detections = self._pub_debug = None
        for srv in (self._srv_init, self._srv_reset):
            if srv is not None:
                self.destroy_service(srv)
        self._srv_init = self._srv_reset = None
        self._session = None
        if self._device.startswith("cuda"):
            import torch
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------------------------------ data path
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_k = [float(v) for v in msg.k]

    def _on_pair(self, rgb: Image, thermal: Image) -> None:
        now = self.get_clock().now().nanoseconds
        pair = ImagePair(rgb, thermal, _stamp_ns(rgb.header.stamp), now)
        self._stats.pair_rate.tick(now)
        self._last_pair_ns = now
        self._history.add(pair)
        self._mailbox.put(pair)

    def _on_processing_error(self, exc: Exception) -> None:
        self._stats.processing_errors += 1
        self._stats.last_error = f"{type(exc).__name__}: {exc}"
        self.get_logger().error(f"processing a pair failed: {self._stats.last_error}", throttle_duration_sec=THROTTLE_S)

    def _process(self, pair: ImagePair) -> None:
        session = self._session
        if session is None:
            return
        try:
            rgb, thermal = rgb_array(pair.rgb), thermal_array(pair.thermal)
        except ImageConversionError as exc:
            self._stats.conversion_errors += 1
            self._stats.last_error = str(exc)
            self.get_logger().error(f"refusing image pair: {exc}", throttle_duration_sec=THROTTLE_S)
            return
        acquisition = self._acquisition
        if acquisition is not None:
            start = acquisition.maybe_start(session, pair, rgb, thermal, self._history, self._camera_k)
            if start is not None:
                self._log_start(start.output, start.pair)
                self._publish(start.pair, start.rgb, start.thermal, start.output, session)
                if start.pair is pair:
                    return
        try:
            output = session.process(rgb, thermal, pair.stamp_ns, self._camera_k)
        except PendingBoxError as exc:
            self._stats.last_error = f"initial_box refused: {exc}"
            self.get_logger().error(f"initial_box {exc}")
            return
        if output is None:
            return
        if output.result is not None and output.result.frame_index > 0:
            self._stats.step_time.add(output.result.timing.total_s)
        elif output.result is not None:
            self._log_start(output, pair)
        self._publish(pair, rgb, thermal, output, session)

    def _log_start(self, output: TrackOutput, pair: ImagePair) -> None:
        self.get_logger().info(f"tracking {output.track_id} from box {[round(v, 1) for v in output.box]} "
                               f"(frame stamp {pair.stamp_ns * 1e-9:.3f}, {output.init_source})")

    def _publish(self, pair: ImagePair, rgb: np.ndarray, thermal: np.ndarray, output: TrackOutput,
                 session: TrackSession) -> None:
        """Every output carries the RGB image's header."""
        header = pair.rgb.header
        if output.result is not None and output.result.frame_index == 0:
            starts = self._stats.track_starts
            starts[output.init_source] = starts.get(output.init_source, 0) + 1
        if self._acquisition is not None:
            self._acquisition.observe(output, pair.stamp_ns)
        if self._pub_target is not None:
            self._pub_target.publish(build_target_state(header, output))
        if self._pub_detections is not None:
            self._pub_detections.publish(build_detections(self._vision_msgs, header, output,
                                                          str(self.get_parameter("class_id").value)))
        now = self.get_clock().now().nanoseconds
        self._stats.processed_rate.tick(now)
        self._stats.output_latency.add((now - pair.stamp_ns) * 1e-9)
        if self._pub_debug is not None and self._pub_debug.get_subscription_count() > 0:
            try:   # the tracker's own view of the thermal frame: no second gain control or registration here
                thermal8 = session.thermal_view(thermal, rgb.shape[:2], tracked=output.result is not None)
            except Exception:  # noqa: BLE001 - the debug view must never cost a result
                thermal8 = np.zeros_like(rgb)
            canvas = compose_debug_image(rgb, thermal8, output, int(self.get_parameter("debug_image_max_height").value))
            self._pub_debug.publish(build_debug_image(header, canvas))

    # ------------------------------------------------------------------------------------------ services
    def _on_initialize(self, request: Any, response: Any) -> Any:
        box = [request.x, request.y, request.width, request.height]
        pair, problem = self._frame_for(_stamp_ns(request.header.stamp), box)
        session = self._session
        if problem is None and session is None:
            problem = "the node is not configured"
        if problem is None:
            try:
                rgb, thermal = rgb_array(pair.rgb), thermal_array(pair.thermal)
                output = session.initialize(rgb, thermal, box, pair.stamp_ns, self._camera_k)
                self._log_start(output, pair)
                self._publish(pair, rgb, thermal, output, session)
            except Exception as exc:  # noqa: BLE001
                problem = f"{type(exc).__name__}: {exc}"
        response.success = problem is None
        response.message = problem or f"tracking {session.track_id}"
        if problem:
            self.get_logger().warning(f"~/initialize refused: {problem}")
        return response

    def _frame_for(self, stamp: int, box: list[float]) -> tuple[ImagePair | None, str | None]:
        """The held pair a ~/initialize request refers to (zero stamp: the newest), or why there is none."""
        problem = box_problem(box)
        if problem:
            return None, problem
        if stamp == 0:
            pair = self._history.newest()
            if pair is None:
                return None, ("no synchronised RGB + thermal pair received yet (is the node active and are "
                              "both cameras publishing?)")
        else:
            pair = self._history.wait_for(stamp, _INIT_FRAME_WAIT_S)
            if pair is None:
                span = self._history.span()
                held = f"frames held: {_stamp_text(span[0])} .. {_stamp_text(span[1])}" if span else "no frames held"
                return None, (f"no frame with stamp {_stamp_text(stamp)} in the recent history ({held}, waited "
                              f"{_INIT_FRAME_WAIT_S:g} s for it); was the frame lost in transport (large images "
                              "need the shared-memory profile, see config/tracker.yaml)? "
                              "Send a zero stamp for the newest frame")
        return pair, box_problem(box, image_hw(pair.rgb))

    def _on_reset(self, request: Any, response: Any) -> Any:
        session = self._session
        if session is None:
            response.success, response.message = False, "the node is not configured"
            return response
        previous = session.reset()
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
        if any(change.name == "initial_box" for change in changes):
            box = params.initial_box_value(values["initial_box"])
            newest = self._history.newest()
            if box is not None and newest is not None:
                problem = box_problem(box, image_hw(newest.rgb))
                if problem:
                    return SetParametersResult(successful=False, reason=f"initial_box: {problem}")
            if self._session is not None:
                self._session.request(box)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------------ diagnostics
    def tracking_state(self) -> str:
        session = self._session
        return "NOT_CONFIGURED" if session is None else session.status.name

    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now()
        array = build_diagnostic_array(
            now.to_msg(), self.get_fully_qualified_name(), self._device, self._lifecycle, self.tracking_state(),
            self._stats, now.nanoseconds, self._mailbox.dropped, self._inputs.evicted if self._inputs else 0,
            float(self.get_parameter("stale_input_timeout").value), self._last_pair_ns)
        self._pub_diagnostics.publish(array)

    @property
    def session(self) -> TrackSession | None:
        """The current track session (None while unconfigured)."""
        return self._session

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
            node.shutdown()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
