"""``python -m ckd_ros.demo``: the tracker node over DDS with a camera player and a recorder, each its own process."""
