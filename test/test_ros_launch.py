"""launch/tracker.launch.py: parsed here; built into a LaunchDescription where ROS 2 launch is installed."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "tracker.launch.py"


def _arguments() -> dict[str, str]:
    tree = ast.parse(LAUNCH.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets):
            return {e.elts[0].value: e.elts[1].value for e in node.value.elts}
    raise AssertionError("no ARGUMENTS table in the launch file")


def test_the_launch_file_declares_the_documented_arguments():
    args = _arguments()
    for name in ("namespace", "rgb_topic", "thermal_topic", "camera_info_topic", "params_file", "checkpoint",
                 "device", "use_sim_time", "rviz", "autostart"):
        assert name in args, name
    assert args["autostart"] == "true" and args["rviz"] == "false" and args["rgb_topic"] == "rgb/image"


def test_the_launch_file_remaps_the_node_inputs_and_starts_the_tracker_executable():
    text = LAUNCH.read_text()
    tree = ast.parse(text)
    remapped = {e.elts[0].value for node in ast.walk(tree) if isinstance(node, ast.keyword)
                and node.arg == "remappings" for e in node.value.elts}
    assert remapped == {"rgb/image", "thermal/image", "rgb/camera_info"}
    calls = {node.func.id: {k.arg: k.value for k in node.keywords} for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert calls["LifecycleNode"]["executable"].value == "tracker_node"
    assert calls["LifecycleNode"]["package"].value == "ckd_ros"
    assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def _ros_launch_available() -> bool:
    if importlib.util.find_spec("launch_ros") is None:
        return False
    import launch
    return hasattr(launch, "LaunchDescription")


@pytest.mark.skipif(not _ros_launch_available(),
                    reason="ROS 2 launch/launch_ros are not installed (not on PyPI); the file is only parsed here")
def test_the_launch_description_builds():
    import launch
    spec = importlib.util.spec_from_file_location("tracker_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tracker_launch"] = module
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, launch.LaunchDescription)
    names = {a.name for a in description.entities if isinstance(a, launch.actions.DeclareLaunchArgument)}
    assert {"namespace", "rgb_topic", "thermal_topic", "rviz", "use_sim_time"} <= names
