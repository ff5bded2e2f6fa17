"""Frame sources for the player: a sequence folder (rgb/ + thermal/ or tir/, groundtruth.txt) or a ROS 2 bag."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
RGB_DIRS = ("rgb", "visible", "color")
THERMAL_DIRS = ("thermal", "tir", "infrared", "ir")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _find(root: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"{root} has none of the folders {', '.join(names)}")


def read_groundtruth(root: Path) -> np.ndarray | None:
    for name in ("groundtruth.txt", "init.txt", "groundtruth_rect.txt"):
        path = root / name
        if path.is_file():
            rows = [[float(v) for v in line.replace(",", " ").replace("\t", " ").split()]
                    for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
            return np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    return None


class FolderSequence:
    """Pairs of images read lazily, RGB order, thermal as stored (8-bit grey or 16-bit PNG)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.rgb_paths = _images(_find(self.root, RGB_DIRS))
        self.thermal_paths = _images(_find(self.root, THERMAL_DIRS))
        if not self.rgb_paths or len(self.rgb_paths) != len(self.thermal_paths):
            raise ValueError(f"{self.root}: {len(self.rgb_paths)} RGB and {len(self.thermal_paths)} thermal images; "
                             "need the same positive number")
        self.boxes = read_groundtruth(self.root)

    def __len__(self) -> int:
        return len(self.rgb_paths)

    def frame(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        bgr = cv2.imread(str(self.rgb_paths[i]), cv2.IMREAD_COLOR)
        thermal = cv2.imread(str(self.thermal_paths[i]), cv2.IMREAD_UNCHANGED)
        if bgr is None or thermal is None:
            raise ValueError(f"cannot read frame {i} of {self.root}")
        if thermal.ndim == 3:
            thermal = thermal[..., ::-1]
        return np.ascontiguousarray(bgr[..., ::-1]), np.ascontiguousarray(thermal)


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
