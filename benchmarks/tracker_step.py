"""Tracker-step benchmark (crop + forward + decode) at 640x512 and 1920x1080; see ckd_ros/tracking/bench.py."""
import sys

from ckd_ros.tracking.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
