"""Target status from a per-frame confidence, with hysteresis.

The reference tracker has no notion of "lost": it always returns a box. On a robot the consumer must know
when that box is a guess. The status is a pure function of the sequence of confidences, so it never
changes the boxes themselves:

* TRACKING -> LOST after ``lost_patience`` consecutive frames with confidence < ``lost_threshold``;
* LOST -> TRACKING after ``recover_patience`` consecutive frames with confidence >= ``recover_threshold``;
* ``recover_threshold >= lost_threshold``: values between the two keep the current status, which stops
  the status from flickering around one threshold.

The confidence is the fitted :class:`~ckd_ros.tracking.confidence.ConfidenceHead` when ``head`` is set
(what ``ckd calibrate`` writes, thresholds included, and what the factory loads by default for the
embedded model), else the raw windowed peak. The raw-peak defaults below are uncalibrated guesses for the
paper-size model: score scales are model-specific (the embedded demonstration model stays above 0.25 on a
real video it has lost within ten frames), so calibrate instead of tuning them by hand.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .confidence import ConfidenceHead


class TrackStatus(str, enum.Enum):
    UNINITIALIZED = "uninitialized"
    TRACKING = "tracking"
    LOST = "lost"


@dataclass
class StatusConfig:
    lost_threshold: float = 0.25
    recover_threshold: float = 0.35
    lost_patience: int = 3
    recover_patience: int = 2
    head: ConfidenceHead | None = None   # None: the thresholds apply to the raw windowed peak

    def validate(self) -> None:
        if not 0.0 <= self.lost_threshold <= self.recover_threshold:
            raise ValueError("status thresholds need 0 <= lost_threshold <= recover_threshold, got "
                             f"{self.lost_threshold}, {self.recover_threshold}")
        if self.lost_patience < 1 or self.recover_patience < 1:
            raise ValueError("status patience values must be >= 1 frame")


class StatusFilter:
    def __init__(self, config: StatusConfig | None = None) -> None:
        self.config = config or StatusConfig()
        self.config.validate()
        self.status = TrackStatus.UNINITIALIZED
        self._run = 0

    def start(self) -> TrackStatus:
        """A (re-)initialisation: the given box is trusted."""
        self.status = TrackStatus.TRACKING
        self._run = 0
        return self.status

    def reset(self) -> None:
        self.status = TrackStatus.UNINITIALIZED
        self._run = 0

    def update(self, score: float) -> TrackStatus:
        """``score``: this frame's confidence (the raw peak when no head is configured)."""
        c = self.config
        if self.status == TrackStatus.UNINITIALIZED:
            raise RuntimeError("status update before initialisation")
        if not score == score:                # NaN scores count as a miss, never as a hit
            score = -1.0
        if self.status == TrackStatus.TRACKING:
            self._run = self._run + 1 if score < c.lost_threshold else 0
            if self._run >= c.lost_patience:
                self.status, self._run = TrackStatus.LOST, 0
        else:
            self._run = self._run + 1 if score >= c.recover_threshold else 0
            if self._run >= c.recover_patience:
                self.status, self._run = TrackStatus.TRACKING, 0
        return self.status
