"""The node's status.calibration parameter: the shipped calibration by default, a file, none, or a refusal."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from ckd_ros.model import default_checkpoint_path
from ckd_ros.tracking import StatusConfig
from ckd_ros.tracking.calibration import checkpoint_calibration_path, load_calibration, save_calibration

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ros_node():
    rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed")
    from rclpy.context import Context

    from ckd_ros.ros.node import TrackerNode
    os.environ.setdefault("ROS_LOG_DIR", str(REPO / "build" / "ros_log"))
    context = Context()
    rclpy.init(context=context, domain_id=65)
    node = TrackerNode(context=context)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def _configure(node, **values) -> bool:
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    assert all(r.successful for r in node.set_parameters(
        [Parameter("device", value="cpu")] + [Parameter(k, value=v) for k, v in values.items()]))
    return node.trigger_configure() == TransitionCallbackReturn.SUCCESS


def test_the_node_runs_the_shipped_calibration_of_the_embedded_model_by_default(ros_node):
    assert _configure(ros_node)
    shipped = load_calibration(checkpoint_calibration_path(default_checkpoint_path()))
    assert ros_node.session.tracker.config.status == shipped.status


def test_a_calibration_file_given_as_parameter_is_the_one_the_tracker_uses(ros_node, tmp_path):
    shipped = load_calibration(checkpoint_calibration_path(default_checkpoint_path()))
    mine = dataclasses.replace(shipped, status=dataclasses.replace(shipped.status, lost_patience=7))
    path = save_calibration(tmp_path / "mine.status.yaml", mine)
    assert _configure(ros_node, **{"status.calibration": str(path)})
    assert ros_node.session.tracker.config.status == mine.status


def test_none_keeps_the_raw_peak_thresholds_of_the_status_parameters(ros_node):
    assert _configure(ros_node, **{"status.calibration": "none", "status.lost_threshold": 0.2})
    assert ros_node.session.tracker.config.status == StatusConfig(lost_threshold=0.2)


def test_a_missing_calibration_fails_configure_and_leaves_the_node_unconfigured(ros_node, tmp_path):
    assert not _configure(ros_node, **{"status.calibration": str(tmp_path / "missing.status.yaml")})
    assert ros_node.session is None and ros_node.lifecycle_state == "unconfigured"
