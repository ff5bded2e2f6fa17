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

from typing import Any, Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from std_srvs.srv import Trigger

from ckd_ros.srv import Initialize
from ckd_ros.tracking import TrackSession, TrackStatus, box_problem, build_tracker
from ckd_ros.tracking.factory import describe

from . import parameters as params
from .allocator import pin_mmap_threshold
from .detections import DetectorAcquisition, acquisition_config
from .diagnostics import NodeStatistics, build_diagnostic_array
from .frames import FrameProcessor, PairIntake, throttled_logger
from .images import image_hw, rgb_array, thermal_array
from .inputs import THROTTLE_S, CameraInputs, InputSettings
from .messages import vision_msgs_module
from .outputs import TrackPublishers
from .pairs import InferenceWorker, LatestPairMailbox, PairHistory, stamp_ns
from .stall import stall_problem
from .throttle import KeyedThrottle

DEFAULT_NODE_NAME = "ckd_tracker"
# ~/initialize with a stamp newer than every held frame waits this long for that frame to arrive
_INIT_FRAME_WAIT_S = 2.0
# Requests a service holds while the node is busy: with the default 10, a client's burst of calls (a
# ground station retrying, a script) loses all but the last 10 in DDS, unanswered and unlogged.
_SERVICE_QUEUE = 256


class TrackerNode(LifecycleNode):
    """``ckd_tracker``: RGB + thermal images in; ~/target, ~/detections, ~/debug_image, /diagnostics out."""

    def __init__(self, node_name: str = DEFAULT_NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        params.declare_parameters(self)
        self._lifecycle = "unconfigured"
        self._stats = NodeStatistics()
        # one line per kind of refusal per period, not per message
        self._log_throttled = throttled_logger(self.get_logger(), KeyedThrottle(THROTTLE_S))
        self._stalled = False
        self._session: TrackSession | None = None
        self._device = "cpu"
        self._inputs: CameraInputs | None = None
        self._acquisition: DetectorAcquisition | None = None
        self._worker: InferenceWorker | None = None
        self._processor: FrameProcessor | None = None
        self._mailbox = LatestPairMailbox()
        self._history = PairHistory(int(self.get_parameter("init_history_size").value))
        self._camera_k: list[float] | None = None
        self._intake: PairIntake | None = None
        self._outputs: TrackPublishers | None = None
        self._srv_init = self._srv_reset = None
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
            self._stats.count("configure_failed")
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
            self._stats.count("configure_failed")
            self.get_logger().error(f"configure failed, node stays unconfigured: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._session, self._device = TrackSession(tracker, self.get_name()), str(tracker.device)
        self.get_logger().info(f"model ready: {describe(tracker, spec)}")
        self._outputs = TrackPublishers(self)
        service_qos = QoSProfile(depth=_SERVICE_QUEUE, reliability=ReliabilityPolicy.RELIABLE)
        self._srv_init = self.create_service(Initialize, "~/initialize", self._on_initialize, qos_profile=service_qos,
                                             callback_group=self._service_group)
        self._srv_reset = self.create_service(Trigger, "~/reset", self._on_reset, qos_profile=service_qos,
                                              callback_group=self._service_group)
        self._lifecycle = "inactive"
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = params.read_parameters(self)
        self._history = PairHistory(int(values["init_history_size"]))
        self._mailbox = LatestPairMailbox()
        self._intake = PairIntake(self, self._stats, self._history, self._mailbox, lambda: self._session,
                                  self._log_throttled)
        try:
            self._inputs = CameraInputs(self, InputSettings.from_parameters(values), self._stats, self._intake,
                                        self._on_camera_info)
            config = acquisition_config(values)
            vision_msgs = vision_msgs_module()
            if config.enabled and vision_msgs is None:
                raise RuntimeError("detections.* asks for the detections input, but vision_msgs is not installed")
            if config.enabled:
                self._acquisition = DetectorAcquisition(self, vision_msgs, config,
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
        self._processor = FrameProcessor(self, self._stats, self._session, self._outputs, self._history,
                                         self._acquisition, lambda: self._camera_k, self._log_throttled)
        self._worker = InferenceWorker(self._mailbox, self._processor, self._on_processing_error,
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
        self._processor = None

    def _release(self) -> None:
        if self._outputs is not None:
            self._outputs.destroy()
            self._outputs = None
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

    def _on_processing_error(self, exc: Exception) -> None:
        if not self.context.ok():
            return   # SIGINT shut the context down under a publish in flight: the process is exiting
        self._stats.processing_errors += 1
        self._stats.last_error = f"{type(exc).__name__}: {exc}"
        self._log_throttled("error", f"processing a pair failed: {self._stats.last_error}")

    # ------------------------------------------------------------------------------------------ services
    def _on_initialize(self, request: Any, response: Any) -> Any:
        self._stats.count("initialize_calls")
        box = [request.x, request.y, request.width, request.height]
        pair, problem = None, box_problem(box)
        if problem is None:
            lead_s = max(_INIT_FRAME_WAIT_S, float(self.get_parameter("max_stamp_lead").value))
            pair, problem = self._history.lookup(stamp_ns(request.header.stamp), _INIT_FRAME_WAIT_S,
                                                 self.get_clock().now().nanoseconds, lead_s)
        if problem is None:
            problem = box_problem(box, (int(pair.rgb.height), int(pair.rgb.width)))
        session = self._session
        if problem is None and session is None:
            problem = "the node is not configured"
        if problem is None:
            try:
                rgb, thermal = rgb_array(pair.rgb), thermal_array(pair.thermal)
                output = session.initialize(rgb, thermal, box, pair.stamp_ns, self._camera_k)
                processor = self._processor
                if processor is not None:
                    processor.log_start(output, pair)
                    processor.publish(pair, rgb, thermal, output)
            except Exception as exc:  # noqa: BLE001
                problem = f"{type(exc).__name__}: {exc}"
        response.success = problem is None
        response.message = problem or f"tracking {session.track_id}"
        if problem:
            self._stats.count("initialize_refused")
            self._log_throttled("warning", f"~/initialize refused: {problem}")
        return response

    def _on_reset(self, request: Any, response: Any) -> Any:
        self._stats.count("reset_calls")
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
    def set_parameters_atomically(self, parameter_list: list[Any]) -> SetParametersResult:
        """Every refusal is counted and logged, including rclpy's own (type, range, read-only, undeclared),
        which are decided before the node's callback sees the change."""
        names = ", ".join(p.name for p in parameter_list)
        try:
            result = super().set_parameters_atomically(parameter_list)
        except Exception as exc:  # noqa: BLE001 - undeclared names raise; reported, then raised as before
            self._stats.count("parameters_refused")
            self._log_throttled("warning", f"parameter change refused ({names}): {exc}")
            raise
        if not result.successful:
            self._stats.count("parameters_refused")
            self._log_throttled("warning", f"parameter change refused ({names}): {result.reason}")
        return result

    def _on_set_parameters(self, changes: list[Any]) -> SetParametersResult:
        values = params.read_parameters(self)
        problem = params.review_changes(values, changes, self._lifecycle)
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
        if not self.context.ok():
            return
        now = self.get_clock().now()
        self._report_stall(now.nanoseconds)
        array = build_diagnostic_array(
            now.to_msg(), self.get_fully_qualified_name(), self._device, self._lifecycle, self.tracking_state(),
            self._stats, now.nanoseconds, self._mailbox.dropped, self._inputs.evicted if self._inputs else 0,
            float(self.get_parameter("stale_input_timeout").value),
            self._intake.last_pair_ns if self._intake else None)
        self._pub_diagnostics.publish(array)

    def _report_stall(self, now_ns: int) -> None:
        if self._inputs is None:
            return
        stats = self._stats
        # pairs that form but are refused (stamps) are reported by their refusal, not as a stall
        problem = stall_problem(now_ns, self._intake.last_formed_ns if self._intake else None, float(self.get_parameter("stale_input_timeout").value),
                                dict(stats.last_receipt_ns), dict(stats.last_stamp_ns),
                                {"RGB": stats.rgb_rate.rate(now_ns), "thermal": stats.thermal_rate.rate(now_ns)},
                                float(self.get_parameter("sync.slop").value))
        if problem is not None and not self._stalled:
            stats.count("input_stalls")
        self._stalled = problem is not None
        if problem is not None:
            self._log_throttled("warning", problem)

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

    def count_destruction_race(self, exc: Exception) -> None:
        self._stats.count("executor_destruction_races")
        self._log_throttled("warning", f"executor: an input was destroyed while a wait set held it "
                            f"(ros2/rclpy#1206); that wait is retried ({exc})")


def spin_through_destruction_races(executor: Any, on_race: Callable[[Exception], None]) -> None:
    """``executor.spin()``, except that one lost race ends one wait, not the process.

    A lifecycle transition (a service callback on one executor thread) destroys the input subscriptions
    while another thread may be adding their event handlers to a wait set; rclpy then raises InvalidHandle
    out of ``spin`` (ros2/rclpy#1206, open; seen in ``make stress``'s lifecycle-during-inference case). The
    next wait set is built without the destroyed entity, so spinning simply goes on; ``spin`` itself still
    decides when to stop (context shut down, executor shut down).

    The other race is shutdown's: rclpy's deferred signal handler shuts the context down on its own thread,
    and a SIGINT that lands between ``spin``'s ``context.ok()`` check and the next wait set makes the wait
    set's construction raise RCLError (seen in ``make stress``'s SIGINT-during-flood case; ros2cli#854,
    rqt#357). With the context gone that is the stop that was asked for, so it ends the loop like one."""
    from rclpy.exceptions import InvalidHandle
    from rclpy.impl.implementation_singleton import rclpy_implementation

    while True:
        try:
            executor.spin()
            return
        except InvalidHandle as exc:
            if not executor.context.ok():
                return
            on_race(exc)
        except rclpy_implementation.RCLError:
            if executor.context.ok():
                raise
            return


def spin_node(args: list[str] | None = None, node_name: str = DEFAULT_NODE_NAME) -> int:
    """Create the node, bring it up if ``autostart``, spin until shutdown. Returns a process exit code."""
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    heap_policy = pin_mmap_threshold()     # before the weights load: see allocator.py
    rclpy.init(args=args)
    node = None
    try:
        node = TrackerNode(node_name)
        node.get_logger().info(heap_policy)
        if node.get_parameter("autostart").value:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
            else:
                node.get_logger().error("autostart: configure failed; the node stays unconfigured and alive "
                                        "(fix the parameters, then configure it through its lifecycle services)")
        executor = MultiThreadedExecutor(num_threads=3)
        executor.add_node(node)
        spin_through_destruction_races(executor, node.count_destruction_race)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
