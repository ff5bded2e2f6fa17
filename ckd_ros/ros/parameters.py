"""The node's parameters: one table with type, default, range, description and when a change applies.

Stages say when a value is read, and so when it may change:

* ``startup``: read once when the node is created (read-only).
* ``configure``: read by the configure transition (model, tracker). Refused while the node is configured
  (inactive or active): clean the node up (lifecycle ``cleanup``), set it, configure again.
* ``activate``: read by the activate transition (subscriptions, QoS, synchroniser). Refused while active:
  deactivate, set, activate.
* ``live``: applied immediately.

config/tracker.yaml documents every entry of :data:`PARAMETERS` (a test keeps the two equal).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ckd_ros.model import PRECISIONS, device_error
from ckd_ros.model.backends import BACKENDS
from ckd_ros.tracking import (CandidateElimination, RegistrationConfig, StatusConfig, ThermalGainConfig,
                              TrackerConfig, TrackerSpec, box_problem)
from ckd_ros.tracking.registration import validate_homography

Validator = Callable[[Any], str | None]  # returns an error message, or None when the value is fine


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    description: str
    stage: str                                        # startup | configure | activate | live
    range: tuple[float, float] | None = None         # inclusive, numbers only
    choices: tuple[str, ...] | None = None
    validator: Validator | None = None

    @property
    def type_name(self) -> str:
        return type(self.default).__name__ if not isinstance(self.default, list) else "double[]"


def _box(value: Any) -> str | None:
    values = list(value)
    if not values or all(float(v) == 0.0 for v in values):
        return None
    if len(values) != 4:
        return f"initial_box needs 4 numbers [x, y, width, height] or none, got {len(values)}"
    problem = box_problem(values)
    return None if problem is None else f"initial_box: {problem}"


def _homography(value: Any) -> str | None:
    values = list(value)
    if not values:
        return None
    try:
        validate_homography(values)
    except ValueError as exc:
        return f"thermal.homography: {exc}"
    return None


def _point(value: Any) -> str | None:
    values = list(value)
    if values and len(values) != 2:
        return f"detections.point needs 2 numbers [x, y] or none, got {len(values)}"
    if values and not all(np.isfinite(float(v)) for v in values):
        return "detections.point has a non-finite value"
    return None


def _device(value: Any) -> str | None:
    return device_error(str(value))


def _ce_layers(value: Any) -> str | None:
    values = list(value)
    if any(int(v) < 0 for v in values):
        return "candidate_elimination.layers are 0-based block indices >= 0"
    if len(set(int(v) for v in values)) != len(values):
        return "candidate_elimination.layers has duplicates"
    return None


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("autostart", True, "configure and activate on start (robots without a lifecycle manager)",
                  "startup"),
    # model / tracker
    ParameterSpec("checkpoint", "", "CKD checkpoint (.pth.tar, official layout; or .onnx from `ckd export` for the ONNX back ends); "
                  "empty = the embedded default model",
                  "configure"),
    ParameterSpec("device", "auto", "torch device: auto (cuda:0 when available, else cpu), cpu, cuda, cuda:N",
                  "configure", validator=_device),
    ParameterSpec("precision", "exact",
                  "network arithmetic (ckd_ros.model.optimize): exact (the reference's), fp32 (stacked students, "
                  "fused attention), int8 (CPU), bf16, fp16 (CUDA)",
                  "configure", choices=PRECISIONS),
    ParameterSpec("backend", "torch",
                  "what runs the network: torch, or the exported ONNX graph under onnxruntime (CPU; CUDA with "
                  "onnxruntime-gpu), openvino (CPU) or tensorrt (fp16 engine, cached next to the model); "
                  "configure fails naming the package to install when it is missing",
                  "configure", choices=BACKENDS),
    ParameterSpec("candidate_elimination.mode", "checkpoint",
                  "MCE candidate elimination: checkpoint (as stored), off, on (layers/keep_ratio below)",
                  "configure", choices=("checkpoint", "off", "on")),
    ParameterSpec("candidate_elimination.layers", [0],
                  "0-based blocks with candidate elimination when mode is on; empty = 1/4, 1/2, 3/4 of the depth",
                  "configure", validator=_ce_layers),
    ParameterSpec("candidate_elimination.keep_ratio", 0.7, "share of search tokens kept at each elimination layer",
                  "configure", range=(0.05, 1.0)),
    ParameterSpec("status.calibration", "",
                  "status calibration YAML from `ckd calibrate`; empty = the checkpoint's own <name>.status.yaml "
                  "when present (the embedded model ships with one), none = raw peak with the thresholds below. "
                  "A calibration replaces the four status.* values below",
                  "configure"),
    ParameterSpec("status.lost_threshold", 0.25, "without a calibration: TRACKING -> LOST when the windowed peak "
                  "stays below this", "configure", range=(0.0, 1.0)),
    ParameterSpec("status.recover_threshold", 0.35, "LOST -> TRACKING when the peak stays at or above this",
                  "configure", range=(0.0, 1.0)),
    ParameterSpec("status.lost_patience", 3, "frames below lost_threshold before LOST", "configure", range=(1, 1000)),
    ParameterSpec("status.recover_patience", 2, "frames above recover_threshold before TRACKING again",
                  "configure", range=(1, 1000)),
    ParameterSpec("exact_crop_limit", 2048,
                  "crops wider than this (pixels) are resampled straight from the image: bounded cost when the "
                  "target fills a large frame, within a grey level of the reference; 0 = always the reference's crop",
                  "configure", range=(0, 1_000_000)),
    # thermal
    ParameterSpec("thermal.gain_mode", "percentile",
                  "16-bit / float thermal -> 8 bit: percentile (clip at percentiles), minmax, fixed (window)",
                  "configure", choices=("percentile", "minmax", "fixed")),
    ParameterSpec("thermal.low_percentile", 1.0, "percentile mapped to 0", "configure", range=(0.0, 100.0)),
    ParameterSpec("thermal.high_percentile", 99.0, "percentile mapped to 255", "configure", range=(0.0, 100.0)),
    ParameterSpec("thermal.window_min", 0.0, "fixed mode: raw value (counts or degrees) mapped to 0", "configure"),
    ParameterSpec("thermal.window_max", 0.0, "fixed mode: raw value mapped to 255 (must exceed window_min)",
                  "configure"),
    ParameterSpec("thermal.smoothing", 0.0, "weight of the previous frame's gain limits (0 = off)", "configure",
                  range=(0.0, 0.99)),
    ParameterSpec("thermal.homography", [0.0],
                  "3x3 row-major thermal -> RGB pixel homography from calibration; empty = already registered",
                  "configure", validator=_homography),
    ParameterSpec("thermal.on_size_mismatch", "error",
                  "no homography and different image sizes: error (refuse the pair) or resize", "configure",
                  choices=("error", "resize")),
    # inputs
    ParameterSpec("sync.queue_size", 10, "approximate-time synchroniser queue per input (messages)", "activate",
                  range=(1, 1000)),
    ParameterSpec("sync.slop", 0.02, "largest RGB / thermal stamp difference paired (seconds, strict)",
                  "activate", range=(0.0001, 10.0)),
    ParameterSpec("qos.reliable", False, "subscribe to images reliably instead of best effort (sensor data)",
                  "activate"),
    ParameterSpec("qos.depth", 5, "image subscription queue depth", "activate", range=(1, 100)),
    ParameterSpec("rgb.transport", "raw",
                  "RGB camera transport: raw (sensor_msgs/Image on rgb/image) or compressed (CompressedImage "
                  "jpeg / png on <rgb/image>/compressed, decoded in the worker)", "activate",
                  choices=("raw", "compressed")),
    ParameterSpec("thermal.transport", "raw",
                  "thermal camera transport: raw or compressed (png, 8 or 16-bit; jpeg 8-bit) on "
                  "<thermal/image>/compressed", "activate", choices=("raw", "compressed")),
    ParameterSpec("use_camera_info", True, "subscribe to rgb/camera_info for the target bearing", "activate"),
    ParameterSpec("init_history_size", 60, "recent pairs kept for ~/initialize with a stamp", "activate",
                  range=(1, 1000)),
    ParameterSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", "activate",
                  range=(0.05, 60.0)),
    # detector-driven start (the `detections` input, vision_msgs/Detection2DArray); off unless one of
    # init_from_detections / reacquire_after is set
    ParameterSpec("detections.init_from_detections", False,
                  "start tracking from a detection while UNINITIALIZED (initial_box and ~/initialize still win)",
                  "activate"),
    ParameterSpec("detections.reacquire_after", 0.0,
                  "seconds (stamp time) LOST before a detection matching the last confident box restarts the "
                  "track; 0 = never", "activate", range=(0.0, 3600.0)),
    ParameterSpec("detections.class_ids", [""], "class ids a detection may have; empty = any", "activate"),
    ParameterSpec("detections.min_score", 0.5, "lowest hypothesis score used", "activate", range=(0.0, 1.0)),
    ParameterSpec("detections.pick", "highest_score",
                  "which eligible detection starts a track: highest_score, largest, nearest_point (detections.point), "
                  "nearest_last (the previous track's last confident box)", "activate",
                  choices=("highest_score", "largest", "nearest_point", "nearest_last")),
    ParameterSpec("detections.point", [0.0], "[x, y] RGB pixels for nearest_point; empty = the image centre",
                  "activate", validator=_point),
    ParameterSpec("detections.max_distance", 1.0,
                  "re-acquisition: farthest detection centre from the last confident box, in its diagonals",
                  "activate", range=(0.01, 100.0)),
    ParameterSpec("detections.slop", 0.02, "largest detection / image stamp difference paired (seconds)",
                  "activate", range=(0.0, 10.0)),
    ParameterSpec("stale_input_timeout", 1.0, "seconds without a pair before diagnostics warn", "live",
                  range=(0.01, 3600.0)),
    ParameterSpec("max_stamp_lead", 5.0,
                  "pairs stamped more than this many seconds ahead of the node clock are refused (a corrupt or "
                  "unsynchronised camera clock); 0 = no check", "live", range=(0.0, 86400.0)),
    # live
    ParameterSpec("initial_box", [0.0],
                  "[x, y, width, height] in RGB pixels (top-left): initialise on the next pair; empty or zeros = wait",
                  "live", validator=_box),
    ParameterSpec("class_id", "target", "class_id of the published detection hypothesis", "live"),
    ParameterSpec("debug_image_max_height", 480, "height the side-by-side debug image is scaled down to", "live",
                  range=(64, 4096)),
    ParameterSpec("debug_min_step_time", 0.0,
                  "DEBUG: pad every tracker step to at least this many seconds (simulates a slow device to "
                  "exercise frame dropping); 0 in real use", "live", range=(0.0, 10.0)),
)

# Array parameters are declared with a typed placeholder above (ROS needs the type) but default to empty.
EMPTY_ARRAY_DEFAULTS = {"candidate_elimination.layers", "thermal.homography", "initial_box", "detections.class_ids",
                        "detections.point"}

SPECS: dict[str, ParameterSpec] = {p.name: p for p in PARAMETERS}


def initial_box_value(value: Any) -> list[float] | None:
    """The box an ``initial_box`` value asks for, None for 'wait' (empty or all zeros)."""
    values = [float(v) for v in (value or [])]
    return None if not values or all(v == 0.0 for v in values) else values


def default_value(spec: ParameterSpec) -> Any:
    return [] if spec.name in EMPTY_ARRAY_DEFAULTS else spec.default


def validate_value(name: str, value: Any) -> str | None:
    """Error message for one value (type-independent checks; ROS checks types and ranges itself too)."""
    spec = SPECS.get(name)
    if spec is None:
        return None
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got {value!r}"
    if spec.range is not None and not (spec.range[0] <= value <= spec.range[1]):
        return f"{name} must be in [{spec.range[0]}, {spec.range[1]}], got {value!r}"
    if spec.validator is not None:
        return spec.validator(value)
    return None


def validate_together(values: dict[str, Any]) -> str | None:
    """Checks that involve several parameters (called with the would-be complete set)."""
    if values["thermal.low_percentile"] >= values["thermal.high_percentile"]:
        return "thermal.low_percentile must be below thermal.high_percentile"
    if values["thermal.gain_mode"] == "fixed" and not values["thermal.window_max"] > values["thermal.window_min"]:
        return "thermal.gain_mode fixed needs thermal.window_max > thermal.window_min"
    if values["status.lost_threshold"] > values["status.recover_threshold"]:
        return "status.lost_threshold must not exceed status.recover_threshold"
    return None


def stage_error(name: str, lifecycle_state: str) -> str | None:
    """Why ``name`` cannot change in ``lifecycle_state`` ('unconfigured' | 'inactive' | 'active'), or None."""
    spec = SPECS.get(name)
    if spec is None:
        return None
    if spec.stage == "startup":
        return f"{name} is read when the node starts; restart the node to change it"
    if spec.stage == "configure" and lifecycle_state in ("inactive", "active"):
        return (f"{name} is applied when the node is configured; deactivate and clean up the node "
                "(lifecycle), set it, then configure again")
    if spec.stage == "activate" and lifecycle_state == "active":
        return f"{name} is applied on activation; deactivate the node, set it, then activate again"
    return None


def review_changes(values: dict[str, Any], changes: list[Any], lifecycle_state: str) -> str | None:
    """Why a set of parameter changes (``rclpy.Parameter``s) must be refused, or None; ``values`` (the
    current ones) is updated in place with the accepted changes so that callers can act on them."""
    for change in changes:
        problem = stage_error(change.name, lifecycle_state) or validate_value(change.name, change.value)
        if problem:
            return problem
        value = change.value
        values[change.name] = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else value
    return validate_together(values)


def declare_parameters(node: Any) -> None:
    """Declare every parameter on ``node`` with a descriptor (type, description, range, read-only)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    for spec in PARAMETERS:
        kind = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}.get(type(spec.default))
        if isinstance(spec.default, list):
            kind = (ParameterType.PARAMETER_STRING_ARRAY if isinstance(spec.default[0], str)
                    else ParameterType.PARAMETER_INTEGER_ARRAY if isinstance(spec.default[0], int)
                    else ParameterType.PARAMETER_DOUBLE_ARRAY)
        description = spec.description
        if spec.choices:
            description += f" [{' | '.join(spec.choices)}]"
        descriptor = ParameterDescriptor(name=spec.name, type=kind, description=description,
                                         read_only=spec.stage == "startup",
                                         additional_constraints=f"applied on {spec.stage}")
        if spec.range is not None and isinstance(spec.default, float):
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                                  to_value=float(spec.range[1]), step=0.0)]
        elif spec.range is not None and isinstance(spec.default, int) and not isinstance(spec.default, bool):
            descriptor.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]),
                                                     step=1)]
        if spec.name in EMPTY_ARRAY_DEFAULTS:
            # rclpy cannot infer the type of an empty list: declare by type, then fall back to empty
            from rclpy.parameter import Parameter
            node.declare_parameter(spec.name, Parameter.Type(kind), descriptor)
        else:
            node.declare_parameter(spec.name, spec.default, descriptor)


def read_parameters(node: Any) -> dict[str, Any]:
    """Current values by name (unset arrays as empty lists)."""
    from rclpy.exceptions import ParameterUninitializedException

    values = {}
    for spec in PARAMETERS:
        try:
            value = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            value = None
        values[spec.name] = list(value) if isinstance(spec.default, list) and value is not None else value
        if values[spec.name] is None:
            values[spec.name] = default_value(spec)
    return values


def tracker_spec(values: dict[str, Any]) -> TrackerSpec:
    """The tracker the configure-stage parameters ask for (``values``: :func:`read_parameters`)."""
    fixed = values["thermal.gain_mode"] == "fixed"
    homography = values["thermal.homography"]
    return TrackerSpec(
        checkpoint=values["checkpoint"] or None,
        calibration=values["status.calibration"] or None,
        device=values["device"],
        precision=values["precision"],
        backend=values["backend"],
        candidate_elimination=CandidateElimination(
            mode=values["candidate_elimination.mode"], layers=tuple(values["candidate_elimination.layers"]),
            keep_ratio=float(values["candidate_elimination.keep_ratio"])),
        tracker=TrackerConfig(
            thermal_gain=ThermalGainConfig(
                mode=values["thermal.gain_mode"], low_percentile=values["thermal.low_percentile"],
                high_percentile=values["thermal.high_percentile"],
                window_min=values["thermal.window_min"] if fixed else None,
                window_max=values["thermal.window_max"] if fixed else None,
                smoothing=values["thermal.smoothing"]),
            registration=RegistrationConfig(
                homography=np.asarray(homography, dtype=np.float64).reshape(3, 3) if homography else None,
                on_size_mismatch=values["thermal.on_size_mismatch"]),
            status=StatusConfig(
                lost_threshold=values["status.lost_threshold"], recover_threshold=values["status.recover_threshold"],
                lost_patience=values["status.lost_patience"], recover_patience=values["status.recover_patience"]),
            exact_crop_limit=values["exact_crop_limit"] or None),
        warm_up=True)
