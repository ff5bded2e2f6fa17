"""Picking the target from an object detector's boxes: the first start, and the return after a loss.

On a robot nobody draws the first box: a detector proposes objects, one is chosen as the target, and
when the tracker has been LOST for a while the detector's box that best matches where the target was
last seen starts a new track. Everything here is geometry on plain tuples (no ROS, no images), so the
rules are specified by plain tests; the node converts vision_msgs around it.

Re-acquisition matches the last *confident* box (the last TRACKING frame), not the last estimate: while
LOST the tracker's box drifts or grows and says little about the target. The match is geometric only
(centre distance in box diagonals, then size): appearance is not compared.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

from .status import TrackStatus

Box = tuple[float, float, float, float]   # x, y, w, h (top-left corner), RGB pixels

PICKS = ("highest_score", "largest", "nearest_point", "nearest_last")

# How a track started (TargetState.init_source)
SOURCE_INITIAL_BOX = "initial_box"
SOURCE_SERVICE = "service"
SOURCE_DETECTIONS = "detections"
SOURCE_REACQUIRED = "reacquired"


@dataclass(frozen=True)
class Detection:
    """One detector box with its best hypothesis."""

    box: Box
    class_id: str
    score: float

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


@dataclass(frozen=True)
class AcquisitionConfig:
    """Which detections may become the target, and when the node uses them."""

    class_ids: tuple[str, ...] = ()          # accepted class ids; empty = any class
    min_score: float = 0.5
    pick: str = "highest_score"              # one of PICKS, for the first start
    point: tuple[float, float] | None = None  # nearest_point's point (RGB pixels); None = the image centre
    init_from_detections: bool = False       # start from a detection while UNINITIALIZED
    reacquire_after_s: float = 0.0           # LOST this long (stamp time) -> restart from a detection; 0 = never
    max_distance: float = 1.0                # re-acquisition: centre distance / last confident box diagonal

    def __post_init__(self) -> None:
        if self.pick not in PICKS:
            raise ValueError(f"pick must be one of {', '.join(PICKS)}, got {self.pick!r}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        if self.reacquire_after_s < 0.0 or self.max_distance <= 0.0:
            raise ValueError(f"reacquire_after_s must be >= 0 and max_distance > 0, got "
                             f"{self.reacquire_after_s}, {self.max_distance}")

    @property
    def enabled(self) -> bool:
        """Whether detections are used at all (the node subscribes only then)."""
        return self.init_from_detections or self.reacquire_after_s > 0.0


def _centre(box: Sequence[float]) -> tuple[float, float]:
    return box[0] + box[2] / 2.0, box[1] + box[3] / 2.0


def centre_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance between the centres of ``a`` and ``b`` in diagonals of ``b``."""
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    return math.hypot(ax - bx, ay - by) / max(1e-9, math.hypot(b[2], b[3]))


def eligible(detections: Sequence[Detection], config: AcquisitionConfig) -> list[Detection]:
    """The detections of an accepted class with at least the minimum score and a box of >= 1 px."""
    return [d for d in detections
            if (not config.class_ids or d.class_id in config.class_ids) and d.score >= config.min_score
            and d.box[2] >= 1.0 and d.box[3] >= 1.0 and all(math.isfinite(v) for v in d.box)]


def pick_initial(detections: Sequence[Detection], config: AcquisitionConfig, image_hw: tuple[int, int],
                 last_box: Sequence[float] | None = None) -> Detection | None:
    """The detection a first start uses (``last_box``: a previous track's last confident box, for
    nearest_last; without one nearest_last falls back to the point). Ties go to the higher score."""
    candidates = eligible(detections, config)
    if not candidates:
        return None
    if config.pick == "highest_score":
        return max(candidates, key=lambda d: d.score)
    if config.pick == "largest":
        return max(candidates, key=lambda d: (d.area, d.score))
    if config.pick == "nearest_last" and last_box is not None:
        return min(candidates, key=lambda d: (centre_distance(d.box, last_box), -d.score))
    px, py = config.point if config.point is not None else (image_hw[1] / 2.0, image_hw[0] / 2.0)
    return min(candidates, key=lambda d: (math.hypot(_centre(d.box)[0] - px, _centre(d.box)[1] - py), -d.score))


def match_cost(box: Sequence[float], reference: Sequence[float]) -> float:
    """How unlike ``reference`` a box is: centre distance (reference diagonals) plus the log size ratio."""
    ratio = (box[2] * box[3]) / max(1e-9, reference[2] * reference[3])
    return centre_distance(box, reference) + 0.5 * abs(math.log(max(ratio, 1e-9)))


def pick_reacquire(detections: Sequence[Detection], config: AcquisitionConfig,
                   last_confident_box: Sequence[float]) -> tuple[Detection | None, str]:
    """The detection that best matches the last confident box and lies within ``max_distance`` of it,
    or None with the reason (for the log)."""
    candidates = eligible(detections, config)
    if not candidates:
        return None, "no detection of an accepted class and score"
    near = [d for d in candidates if centre_distance(d.box, last_confident_box) <= config.max_distance]
    if not near:
        closest = min(centre_distance(d.box, last_confident_box) for d in candidates)
        return None, (f"the nearest eligible detection is {closest:.2f} box diagonals from the last confident "
                      f"box (max_distance {config.max_distance:g})")
    return min(near, key=lambda d: (match_cost(d.box, last_confident_box), -d.score)), ""


@dataclass(frozen=True)
class AcquisitionNeed:
    """What the current track state asks of the detector: a start, and from which frames on."""

    source: str                        # SOURCE_DETECTIONS or SOURCE_REACQUIRED
    after_ns: int | None               # only detections of frames stamped after this are usable
    last_confident_box: Box | None     # re-acquisition's reference


class TrackMemory:
    """What acquisition needs to remember of the track: its last confident box and when it was seen.

    Fed with every output of the session (``observe``); kept across a reset so that nearest_last can
    return to where the previous target was.
    """

    def __init__(self) -> None:
        self.last_confident_box: Box | None = None
        self.last_confident_ns: int | None = None
        self.status = TrackStatus.UNINITIALIZED
        self.latest_ns: int | None = None

    def observe(self, status: TrackStatus, box: Sequence[float], stamp_ns: int, started: bool = False) -> None:
        """``started``: this output is a (re)initialisation, whose box is confident by definition."""
        self.status = status
        if status == TrackStatus.UNINITIALIZED:
            return
        self.latest_ns = stamp_ns if self.latest_ns is None else max(self.latest_ns, stamp_ns)
        if status == TrackStatus.TRACKING or started:
            self.last_confident_box = tuple(float(v) for v in box)  # type: ignore[assignment]
            self.last_confident_ns = stamp_ns

    def need(self, config: AcquisitionConfig, status: TrackStatus, pending_start: bool) -> AcquisitionNeed | None:
        """Whether the next frame should start a track from a detection (``status``: the session's now;
        ``pending_start``: a box from initial_box or a service waits, which always wins)."""
        if pending_start:
            return None
        if status == TrackStatus.UNINITIALIZED:
            return AcquisitionNeed(SOURCE_DETECTIONS, None, None) if config.init_from_detections else None
        if (status == TrackStatus.LOST and config.reacquire_after_s > 0.0 and self.last_confident_ns is not None
                and self.last_confident_box is not None and self.latest_ns is not None):
            due = self.last_confident_ns + int(config.reacquire_after_s * 1e9)
            if self.latest_ns >= due:
                # only frames on which the target had been lost for the whole wait count
                return AcquisitionNeed(SOURCE_REACQUIRED, due - 1, self.last_confident_box)
        return None


class DetectionBuffer:
    """Recent detection arrays by the stamp of the image they refer to (thread-safe, bounded)."""

    def __init__(self, size: int = 60) -> None:
        if size < 1:
            raise ValueError(f"detection buffer size must be >= 1, got {size}")
        self._size = size
        self._items: OrderedDict[int, list[Detection]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, stamp_ns: int, detections: Sequence[Detection]) -> None:
        with self._lock:
            self._items[int(stamp_ns)] = list(detections)
            self._items.move_to_end(int(stamp_ns))
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def newest_first(self, after_ns: int | None = None) -> list[tuple[int, list[Detection]]]:
        """(stamp, detections) of arrays stamped after ``after_ns`` (all when None), newest stamp first."""
        with self._lock:
            items = [(s, d) for s, d in self._items.items() if after_ns is None or s > after_ns]
        return sorted(items, key=lambda item: item[0], reverse=True)

    def discard_through(self, stamp_ns: int) -> None:
        """Forget the arrays stamped at or before ``stamp_ns`` (used up, or older than a new track)."""
        with self._lock:
            for stamp in [s for s in self._items if s <= stamp_ns]:
                del self._items[stamp]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
