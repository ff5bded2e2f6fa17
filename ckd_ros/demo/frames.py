"""Frame sources for the player: a sequence folder in any layout ``ckd_ros.data`` reads (rgb/ + thermal/,
LasHeR, RGBT234, RGBT210, GTOT, VTUAV) or a ROS 2 bag."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ckd_ros.data import open_sequence


def camera_thermal(thermal: np.ndarray) -> np.ndarray:
    """The thermal image as a thermal camera publishes it: one channel (mono8 / mono16 / 32FC1) when the
    file was grey (the reader gives 3 equal channels, at the file's depth), RGB only for a colour palette."""
    if thermal.ndim == 3 and (thermal.dtype != np.uint8
                              or (np.array_equal(thermal[..., 0], thermal[..., 1])
                                  and np.array_equal(thermal[..., 0], thermal[..., 2]))):
        return np.ascontiguousarray(thermal[..., 0])
    return thermal


class FolderSequence:
    """A sequence folder read lazily through ``ckd_ros.data.open_sequence``: RGB in RGB order, thermal at
    the file's own depth (8-bit grey or 16-bit PNG) as ``camera_thermal`` sends it."""

    def __init__(self, root: str | Path) -> None:
        self.sequence = open_sequence(root)
        self.root = self.sequence.path
        # x y w h per frame, NaN rows where the benchmark does not annotate (VTUAV: 9 frames in 10)
        self.boxes: np.ndarray | None = self.sequence.ground_truth
        self.init_box: np.ndarray | None = self.sequence.init_box

    def __len__(self) -> int:
        return len(self.sequence)

    def frame(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        frame = self.sequence.frame(i)
        return frame.rgb, camera_thermal(frame.thermal)


def bag_messages(path: str | Path, rgb_topic: str, thermal_topic: str) -> Iterator[tuple[str, bytes, int]]:
    """(role, raw CDR, bag time ns) for the two image topics of a ROS 2 bag (sqlite3 or mcap), in bag order."""
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        roles = {rgb_topic: "rgb", thermal_topic: "thermal"}
        connections = [c for c in reader.connections if c.topic in roles]
        missing = set(roles) - {c.topic for c in connections}
        if missing:
            raise ValueError(f"bag {path} has no topic {sorted(missing)}; topics: "
                             f"{sorted({c.topic for c in reader.connections})}")
        for connection, timestamp, raw in reader.messages(connections=connections):
            yield roles[connection.topic], bytes(raw), int(timestamp)
