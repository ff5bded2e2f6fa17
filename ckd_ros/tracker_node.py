"""Entry point of the CKD tracker node: ``python -m ckd_ros.tracker_node`` / ``ros2 run ckd_ros tracker_node``.

ROS arguments are passed through (``--ros-args -r __ns:=/drone1 -p checkpoint:=/path/model.pth.tar``).
"""
from __future__ import annotations

import sys


def main(args: list[str] | None = None) -> int:
    from ckd_ros.ros.node import spin_node

    return spin_node(sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
