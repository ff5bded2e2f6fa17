"""The package's layers depend in one direction only: model <- tracking <- ros."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "ckd_ros"
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "vision_msgs", "diagnostic_msgs", "std_srvs",
               "geometry_msgs", "message_filters", "cv_bridge", "launch", "launch_ros", "lifecycle_msgs",
               "builtin_interfaces", "rosbags", "ckd_ros.msg", "ckd_ros.srv")
# layer -> project modules it must not import
FORBIDDEN = {
    "model": ("ckd_ros.tracking", "ckd_ros.ros", "ckd_ros.data", "ckd_ros.training", "ckd_ros.evaluation",
              "cv2", "ckd_ros.tracker_node"),
    "tracking": ("ckd_ros.ros", "ckd_ros.training", "ckd_ros.evaluation", "ckd_ros.tracker_node"),
    "data": ("ckd_ros.ros", "ckd_ros.training", "ckd_ros.evaluation", "ckd_ros.tracking", "ckd_ros.model",
             "torch"),
    "training": ("ckd_ros.ros", "ckd_ros.evaluation", "ckd_ros.tracker_node"),
    "evaluation": ("ckd_ros.ros", "ckd_ros.training", "ckd_ros.tracker_node"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            # relative imports stay inside their own layer unless they climb out of it
            if node.level > 1 and node.module:
                names.add("ckd_ros." + node.module)
    return names


def _violations(layer: str, banned: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((PKG / layer).rglob("*.py")):
        for name in _imports(path):
            if any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{path.relative_to(PKG.parent)} imports {name}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it_and_no_ros(layer: str) -> None:
    if not (PKG / layer).is_dir():
        pytest.skip(f"ckd_ros/{layer} does not exist yet")
    assert _violations(layer, FORBIDDEN[layer] + ROS_MODULES) == []
