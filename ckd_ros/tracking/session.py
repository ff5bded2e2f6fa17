"""A track session: one target followed over a live stream, with what a robot needs beyond the tracker.

:class:`CKDTracker` answers "where is the target in this frame". A stream adds questions the node's
consumers ask: which initialisation is this box from (a track id per start), how fast does the target
move in the image, how long since the tracker was last confident, and which frames are too old to count
(a frame stamped before the one the target was picked on). :class:`TrackSession` answers them without
any ROS type, so that it is specified by plain tests; the node only converts messages around it.

Thread safety: every method takes the session's lock, so a service thread may initialise or reset while
the worker thread tracks.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .acquisition import SOURCE_INITIAL_BOX, SOURCE_SERVICE
from .status import TrackStatus
from .tracker import CKDTracker, TrackResult
from .validation import check_box


@dataclass(frozen=True)
class TrackOutput:
    """The session's answer for one frame."""

    status: TrackStatus
    box: tuple[float, float, float, float]      # x, y, w, h in RGB pixels; zeros while UNINITIALIZED
    score: float
    track_id: str = ""
    velocity: tuple[float, float] = (0.0, 0.0)  # px/s of the box centre
    time_since_confident: float = 0.0           # seconds since the last TRACKING frame of this track
    bearing: tuple[float, float, float] | None = None
    result: TrackResult | None = None           # the tracker's own record (timing, frame index)
    confidence: float = 0.0                     # what the status was decided from (calibrated head, or the peak)
    init_source: str = ""                       # how this track started (acquisition.SOURCE_*); "" = none


UNINITIALIZED = TrackOutput(TrackStatus.UNINITIALIZED, (0.0, 0.0, 0.0, 0.0), 0.0)


def camera_bearing(k: Sequence[float], u: float, v: float) -> tuple[float, float, float] | None:
    """Unit ray through pixel (u, v) for the pinhole intrinsics ``k`` (row-major 3x3), optical frame.

    Lens distortion is ignored (the box centre is already an approximation of the target's direction).
    """
    fx, cx, fy, cy = float(k[0]), float(k[2]), float(k[4]), float(k[5])
    if fx <= 0.0 or fy <= 0.0:
        return None
    ray = np.array([(u - cx) / fx, (v - cy) / fy, 1.0])
    ray /= np.linalg.norm(ray)
    return float(ray[0]), float(ray[1]), float(ray[2])


class VelocityEstimator:
    """Exponentially smoothed image-plane velocity of the box centre, in px per second of stamp time."""

    def __init__(self, smoothing: float = 0.5) -> None:
        self.smoothing = smoothing
        self.reset()

    def reset(self) -> None:
        self._last: tuple[float, float, int] | None = None
        self.velocity = (0.0, 0.0)

    def update(self, box: Sequence[float], stamp_ns: int) -> tuple[float, float]:
        cx, cy = box[0] + box[2] / 2.0, box[1] + box[3] / 2.0
        if self._last is not None and stamp_ns > self._last[2]:
            dt = (stamp_ns - self._last[2]) * 1e-9
            raw = ((cx - self._last[0]) / dt, (cy - self._last[1]) / dt)
            a = self.smoothing
            self.velocity = (a * raw[0] + (1 - a) * self.velocity[0], a * raw[1] + (1 - a) * self.velocity[1])
        self._last = (cx, cy, stamp_ns)
        return self.velocity


class PendingBoxError(ValueError):
    """A box requested for the next frame (``request``) could not initialise on it; the request is dropped."""


class TrackSession:
    """initialise / process / reset over a stream of frames stamped in nanoseconds."""

    def __init__(self, tracker: CKDTracker, name: str = "ckd") -> None:
        self.tracker = tracker
        self.name = name
        self._lock = threading.RLock()
        self._count = 0
        self._track_id = ""
        self._init_stamp_ns: int | None = None
        self._last_confident_ns: int | None = None
        self._pending: list[float] | None = None
        self._source = ""
        self._velocity = VelocityEstimator()

    # ------------------------------------------------------------------ state
    @property
    def track_id(self) -> str:
        return self._track_id

    @property
    def status(self) -> TrackStatus:
        with self._lock:
            return self.tracker.status if self.tracker.initialized else TrackStatus.UNINITIALIZED

    @property
    def pending_box(self) -> list[float] | None:
        return self._pending

    @property
    def init_source(self) -> str:
        """How the current track started ("" while none): initial_box, service, detections, reacquired."""
        return self._source

    @property
    def init_stamp_ns(self) -> int | None:
        """Stamp of the frame the current track started on."""
        return self._init_stamp_ns

    # ------------------------------------------------------------------ commands
    def request(self, box: Sequence[float] | None) -> None:
        """Initialise on the next processed frame with ``box`` (checked then against that frame); None
        withdraws a request."""
        checked = None if box is None else check_box(box)
        with self._lock:
            self._pending = checked

    def initialize(self, rgb: np.ndarray, thermal: np.ndarray, box: Sequence[float],
                   stamp_ns: int, intrinsics: Sequence[float] | None = None,
                   source: str = SOURCE_SERVICE) -> TrackOutput:
        """Start a new track on this frame; a bad box or image raises and leaves the current track as it was.
        ``source`` says how the box was chosen (reported with every output of the track)."""
        with self._lock:
            result = self.tracker.initialize(rgb, thermal, box)
            self._pending = None
            self._source = source
            self._count += 1
            self._track_id = f"{self.name}-{self._count}"
            self._init_stamp_ns = stamp_ns
            self._velocity.reset()
            self._last_confident_ns = stamp_ns
            return self._output(result, stamp_ns, intrinsics)

    def process(self, rgb: np.ndarray, thermal: np.ndarray, stamp_ns: int,
                intrinsics: Sequence[float] | None = None) -> TrackOutput | None:
        """The answer for one frame: a requested start, a tracked frame, or UNINITIALIZED. None for a frame
        stamped at or before the frame the current track started on (it says nothing new about the target)."""
        with self._lock:
            pending, self._pending = self._pending, None
            if pending is not None:
                try:
                    return self.initialize(rgb, thermal, pending, stamp_ns, intrinsics, SOURCE_INITIAL_BOX)
                except ValueError as exc:
                    raise PendingBoxError(f"box {pending} refused: {exc}") from exc
            if not self.tracker.initialized:
                return UNINITIALIZED
            if self._init_stamp_ns is not None and stamp_ns <= self._init_stamp_ns:
                return None
            return self._output(self.tracker.track(rgb, thermal), stamp_ns, intrinsics)

    def reset(self) -> str:
        """Forget the target; returns the id of the track that ended ("" when none)."""
        with self._lock:
            self.tracker.reset()
            self._pending = None
            self._init_stamp_ns = None
            self._source = ""
            self._velocity.reset()
            previous, self._track_id = self._track_id, ""
            return previous

    def thermal_view(self, thermal: np.ndarray, rgb_hw: tuple[int, int], tracked: bool) -> np.ndarray:
        """The thermal frame as the network saw it (``tracked``: the last processed frame) or would see it."""
        with self._lock:
            if tracked and self.tracker.last_thermal is not None:
                return self.tracker.last_thermal
            return self.tracker.thermal_view(thermal, rgb_hw)

    # ------------------------------------------------------------------ internals
    def _output(self, result: TrackResult, stamp_ns: int, intrinsics: Sequence[float] | None) -> TrackOutput:
        if result.status == TrackStatus.TRACKING:
            self._last_confident_ns = stamp_ns
        velocity = self._velocity.update(result.box, stamp_ns)
        since = 0.0 if self._last_confident_ns is None else (stamp_ns - self._last_confident_ns) * 1e-9
        bearing = None
        if intrinsics is not None:
            x, y, w, h = result.box
            bearing = camera_bearing(intrinsics, x + w / 2.0, y + h / 2.0)
        return TrackOutput(result.status, tuple(float(v) for v in result.box), float(result.score),  # type: ignore[arg-type]
                           self._track_id, velocity, max(0.0, since), bearing, result, float(result.confidence),
                           self._source)
