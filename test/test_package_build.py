"""The package builds as a ROS 2 package with colcon, as a robot's workspace builds it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_colcon_build_installs_interfaces_python_package_launch_and_executables(tmp_path):
    colcon = shutil.which("colcon") or str(Path(sys.executable).with_name("colcon"))
    if not Path(colcon).exists():
        pytest.skip("colcon is not installed (make installs it with ROS 2 from PyPI; a ROS distribution has it)")
    ws = tmp_path / "ws"
    # the package's files as they are in the working tree (what git tracks or would track), not .venv/build
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (ws / "src" / "ckd_ros" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, ws / "src" / "ckd_ros" / rel)
    env = dict(os.environ)
    prefix = sys.prefix
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    if not os.environ.get("ROS_DISTRO"):  # ROS 2 from PyPI wheels inside this venv
        env["AMENT_PREFIX_PATH"] = prefix
        env["CMAKE_PREFIX_PATH"] = prefix
    args = [colcon, "build", "--base-paths", "src", "--cmake-args", "-DBUILD_TESTING=OFF",
            f"-DPython3_EXECUTABLE={sys.executable}"]
    if not os.environ.get("ROS_DISTRO"):
        args.append("-DCKD_PYPI_ROS=ON")
    done = subprocess.run(args, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    install = ws / "install" / "ckd_ros"
    site = install / Path(sysconfig.get_paths()["purelib"]).relative_to(sys.prefix)
    for rel in ("lib/ckd_ros/tracker_node", "lib/ckd_ros/ckd", "share/ckd_ros/launch/tracker.launch.py",
                "share/ckd_ros/config/tracker.yaml", "share/ckd_ros/package.xml"):
        assert (install / rel).is_file(), rel
    for rel in ("ckd_ros/__init__.py", "ckd_ros/msg/__init__.py", "ckd_ros/srv/__init__.py",
                "ckd_ros/ros/node.py", "ckd_ros/ros/fastdds_large_images.xml", "ckd_ros/weights/ckd_demo_small.pth.tar"):
        assert (site / rel).is_file(), rel
    # the installed copy imports with its generated interfaces and is the package's own __init__
    probe = ("import ckd_ros, ckd_ros.msg, ckd_ros.srv; from ckd_ros.msg import TargetState; "
             "print(ckd_ros.__file__, ckd_ros.__version__, TargetState.LOST)")
    env_run = dict(env, PYTHONPATH=str(site), AMENT_PREFIX_PATH=f"{install}:{env.get('AMENT_PREFIX_PATH', prefix)}")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env_run, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    path, version, lost = out.stdout.split()
    assert Path(path).is_relative_to(site) and version and lost == "2"
