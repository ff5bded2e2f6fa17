"""Running a tracker over a whole sequence: the loop shared by ``ckd track`` and the evaluation toolkit."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from .status import TrackStatus
from .tracker import CKDTracker, TrackResult


@dataclass
class SequenceRun:
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    statuses: list[TrackStatus] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)  # what each status was decided from
    times: list[float] = field(default_factory=list)       # seconds per initialize/track call

    def as_array(self) -> np.ndarray:
        return np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)


def track_frames(tracker: CKDTracker, frames: Iterable, init_box: Sequence[float],
                 on_frame: Callable[[int, object, TrackResult], None] | None = None,
                 max_frames: int | None = None) -> SequenceRun:
    """Initialise on the first frame with ``init_box``, track the rest (reference evaluation loop).

    ``frames`` yields objects with ``rgb`` and ``thermal`` (``ckd_ros.data.Frame``) or (rgb, thermal)
    pairs. ``on_frame(index, frame, result)`` is called after every frame (overlays, progress).
    """
    run = SequenceRun()
    for index, frame in enumerate(frames):
        if max_frames is not None and index >= max_frames:
            break
        rgb, thermal = (frame.rgb, frame.thermal) if hasattr(frame, "rgb") else frame
        t0 = time.perf_counter()
        result = tracker.initialize(rgb, thermal, init_box) if index == 0 else tracker.track(rgb, thermal)
        run.times.append(time.perf_counter() - t0)
        run.boxes.append(result.box)
        run.scores.append(result.score)
        run.statuses.append(result.status)
        run.confidences.append(result.confidence)
        if on_frame is not None:
            on_frame(index, frame, result)
    if not run.boxes:
        raise ValueError("the sequence has no frames")
    return run
