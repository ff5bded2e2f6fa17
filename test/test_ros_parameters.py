"""Parameters: declared with descriptors, validated on set, refused when they cannot apply now, documented."""
from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import yaml

from ckd_ros.ros import parameters as P

REPO = Path(__file__).resolve().parents[1]


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_config_yaml_documents_every_parameter_with_its_default():
    text = (REPO / "config" / "tracker.yaml").read_text()
    values = _flatten(yaml.safe_load(text)["/**"]["ros__parameters"])
    commented = {line.strip()[1:].strip().split(":")[0] for line in text.splitlines()
                 if line.strip().startswith("#") and ":" in line}
    for spec in P.PARAMETERS:
        leaf = spec.name.split(".")[-1]
        if spec.name in values:
            assert values[spec.name] == P.default_value(spec), spec.name
        else:
            assert spec.name in P.EMPTY_ARRAY_DEFAULTS and leaf in commented, f"{spec.name} is not in tracker.yaml"
    assert set(values) <= set(P.SPECS), f"unknown entries: {set(values) - set(P.SPECS)}"


def test_every_parameter_has_a_description_a_stage_and_a_valid_default():
    for spec in P.PARAMETERS:
        assert spec.description and spec.stage in ("startup", "configure", "activate", "live")
        assert P.validate_value(spec.name, P.default_value(spec)) is None, spec.name
    assert P.validate_together({s.name: P.default_value(s) for s in P.PARAMETERS}) is None


@pytest.mark.parametrize("name,value,fragment", [
    ("device", "gpu", "auto, cpu, cuda"),
    ("precision", "float32", "exact"),
    ("thermal.gain_mode", "agc", "percentile"),
    ("initial_box", [1.0, 2.0, 3.0], "4 numbers"),
    ("initial_box", [1.0, 2.0, 0.0, 5.0], "at least 1 pixel"),
    ("initial_box", [math.nan, 2.0, 3.0, 5.0], "non-finite"),
    ("thermal.homography", [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0], "9 numbers"),
    ("thermal.homography", [1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 0.0, 0.0, 1.0], "singular"),
    ("sync.slop", 0.0, "sync.slop must be in"),
])
def test_bad_values_are_refused_with_a_message_naming_the_problem(name, value, fragment):
    assert fragment in (P.validate_value(name, value) or "")


def test_cross_parameter_rules_are_checked():
    values = {s.name: P.default_value(s) for s in P.PARAMETERS}
    assert "window_max" in P.validate_together(values | {"thermal.gain_mode": "fixed"})
    assert P.validate_together(values | {"thermal.gain_mode": "fixed", "thermal.window_max": 400.0}) is None
    assert "low_percentile" in P.validate_together(values | {"thermal.low_percentile": 99.5})


def test_boxes_outside_the_image_are_refused_and_partly_inside_accepted():
    # the node checks boxes against the frame with the tracker's own rule
    from ckd_ros.tracking import box_problem
    assert "outside the 320x240" in box_problem([400.0, 10.0, 20.0, 20.0], (240, 320))
    assert "outside" in box_problem([-30.0, 10.0, 20.0, 20.0], (240, 320))
    assert box_problem([-10.0, 10.0, 20.0, 20.0], (240, 320)) is None
    assert P.initial_box_value([0.0, 0.0, 0.0, 0.0]) is None and P.initial_box_value([]) is None


def test_stages_say_when_a_change_is_refused():
    assert "restart" in P.stage_error("autostart", "unconfigured")
    assert P.stage_error("checkpoint", "unconfigured") is None
    assert "clean up" in P.stage_error("checkpoint", "active")
    assert "clean up" in P.stage_error("device", "inactive")
    assert P.stage_error("sync.slop", "inactive") is None
    assert "deactivate" in P.stage_error("sync.slop", "active")
    assert P.stage_error("initial_box", "active") is None


@pytest.fixture
def ros_node():
    rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed")
    from rclpy.context import Context

    from ckd_ros.ros.node import TrackerNode
    os.environ.setdefault("ROS_LOG_DIR", str(REPO / "build" / "ros_log"))
    context = Context()
    rclpy.init(context=context, domain_id=201)
    node = TrackerNode(context=context)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def test_the_node_declares_ranges_and_read_only_descriptors(ros_node):
    slop = ros_node.describe_parameter("sync.slop")
    assert slop.floating_point_range[0].from_value == pytest.approx(1e-4)
    assert ros_node.describe_parameter("autostart").read_only
    assert "applied on configure" in ros_node.describe_parameter("checkpoint").additional_constraints


def test_the_node_refuses_bad_sets_with_reasons_and_keeps_good_ones(ros_node):
    from rclpy.parameter import Parameter
    refused = ros_node.set_parameters([Parameter("device", value="tpu")])[0]
    assert not refused.successful and "device must be" in refused.reason
    refused = ros_node.set_parameters([Parameter("initial_box", value=[1.0, 2.0, 3.0])])[0]
    assert not refused.successful and "4 numbers" in refused.reason
    out_of_range = ros_node.set_parameters([Parameter("sync.queue_size", value=0)])[0]
    assert not out_of_range.successful
    assert ros_node.set_parameters([Parameter("sync.slop", value=0.05)])[0].successful
    assert ros_node.get_parameter("sync.slop").value == 0.05
    # an unconfigured node accepts model parameters; a configured one refuses them (see stage rules)
    assert ros_node.set_parameters([Parameter("checkpoint", value="/tmp/x.pth.tar")])[0].successful
    ros_node._lifecycle = "active"
    refused = ros_node.set_parameters([Parameter("checkpoint", value="/tmp/y.pth.tar")])[0]
    assert not refused.successful and "configured" in refused.reason


@pytest.mark.parametrize("limit, expected", [(0, None), (640, 640)])
def test_exact_crop_limit_reaches_the_tracker_and_zero_means_always_the_reference_crop(ros_node, limit, expected):
    from rclpy.parameter import Parameter
    assert all(r.successful for r in ros_node.set_parameters(
        [Parameter("exact_crop_limit", value=limit), Parameter("device", value="cpu")]))
    ros_node.trigger_configure()
    assert ros_node.session is not None and ros_node.session.tracker.config.exact_crop_limit == expected
