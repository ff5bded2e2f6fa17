"""How much to trust the tracker's box: evidence per frame, features over the track, a fitted logistic head.

The windowed peak alone does not say whether the box is on the target: a model that does not fit the scene
(the synthetic-only demonstration model on a real video) peaks at 0.3-0.5 everywhere, and a tracker that
has jumped to a look-alike can peak as high as on the target. What does separate the two, measured with
``ckd calibrate``, is the peak *relative to the same track's first frames*, the level of those first frames
(how well the model fits this scene at all), whether a second peak competes, and sudden box jumps. These
are all read from what the tracker computes anyway, so the confidence costs no network pass and never
changes a box.

:class:`TrackEvidence` is one frame's raw evidence, :class:`FeatureTracker` turns the evidence of one track
(since its initialisation) into a feature vector, and :class:`ConfidenceHead` maps that vector to a
confidence in [0, 1] with weights fitted on sequences with ground truth.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

# Frames after the initialisation whose peaks define the track's reference level.
REFERENCE_FRAMES = 5
PEAK_SMOOTHING = 0.3          # weight of the newest peak in the smoothed peak
RECENT_FRAMES = 10            # window of the recent-minimum / recent-jump features

FEATURES: tuple[str, ...] = (
    "peak",                # Hann-windowed peak (what the box is decoded from)
    "raw_peak",            # un-windowed maximum of the score map: a strong response away from the window centre
    "second_ratio",        # best windowed response outside the peak's 3x3 cells / peak (1: an equal rival)
    "reference_peak",      # mean peak of the first REFERENCE_FRAMES tracked frames: how well the model fits
    "peak_ratio",          # peak / reference_peak
    "smoothed_ratio",      # exponentially smoothed peak_ratio
    "recent_min_ratio",    # lowest peak_ratio of the last RECENT_FRAMES frames
    "jump",                # box-centre displacement since the last frame, in previous box sizes
    "recent_max_jump",     # largest jump of the last RECENT_FRAMES frames
    "area_change",         # |log(area / initial area)|
    "log_age",             # log(1 + frames since the initialisation)
)


@dataclass(frozen=True)
class TrackEvidence:
    """What one tracked frame offers, straight from the tracker's decoding."""

    peak: float
    raw_peak: float
    second_peak: float
    box: tuple[float, float, float, float]


class FeatureTracker:
    """Feature vectors of one track, frame after frame (``start`` on every initialisation)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._initial: tuple[float, float, float, float] | None = None
        self._previous: tuple[float, float, float, float] | None = None
        self._reference: list[float] = []
        self._smoothed = 1.0
        self._ratios: deque[float] = deque(maxlen=RECENT_FRAMES)
        self._jumps: deque[float] = deque(maxlen=RECENT_FRAMES)
        self._age = 0
        self.last: np.ndarray | None = None

    def start(self, box: Sequence[float]) -> None:
        self.clear()
        self._initial = self._previous = tuple(float(v) for v in box)  # type: ignore[assignment]

    def update(self, ev: TrackEvidence) -> np.ndarray:
        if self._previous is None or self._initial is None:
            raise RuntimeError("feature update before the track started")
        peak = _finite(ev.peak)
        self._age += 1
        if len(self._reference) < REFERENCE_FRAMES:
            self._reference.append(peak)
        reference = max(float(np.mean(self._reference)), 1e-3)
        ratio = peak / reference
        self._smoothed = PEAK_SMOOTHING * ratio + (1 - PEAK_SMOOTHING) * self._smoothed
        self._ratios.append(ratio)
        px, py, pw, ph = self._previous
        x, y, w, h = ev.box
        size = math.sqrt(max(pw * ph, 1e-6))
        jump = math.hypot((x + w / 2) - (px + pw / 2), (y + h / 2) - (py + ph / 2)) / size
        self._jumps.append(jump)
        area0 = max(self._initial[2] * self._initial[3], 1e-6)
        area_change = abs(math.log(max(w * h, 1e-6) / area0))
        self._previous = tuple(ev.box)  # type: ignore[assignment]
        second = _finite(ev.second_peak) / max(peak, 1e-6)
        self.last = np.array([peak, _finite(ev.raw_peak), min(second, 1.0), reference, ratio, self._smoothed,
                         min(self._ratios), jump, max(self._jumps), area_change, math.log1p(self._age)],
                        dtype=np.float64)
        return self.last


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0


@dataclass(frozen=True)
class ConfidenceHead:
    """Logistic regression on standardised features: ``sigmoid(w . (f - mean) / scale + bias)``."""

    features: tuple[str, ...] = FEATURES
    mean: tuple[float, ...] = field(default_factory=tuple)
    scale: tuple[float, ...] = field(default_factory=tuple)
    weights: tuple[float, ...] = field(default_factory=tuple)
    bias: float = 0.0

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"confidence head: unknown features {unknown}; known: {list(FEATURES)}")
        n = len(self.features)
        for name in ("mean", "scale", "weights"):
            values = getattr(self, name)
            if len(values) != n:
                raise ValueError(f"confidence head: {name} has {len(values)} values for {n} features")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"confidence head: {name} holds a non-finite value")
        if any(v <= 0 for v in self.scale):
            raise ValueError("confidence head: every scale must be > 0")
        if not math.isfinite(self.bias):
            raise ValueError("confidence head: bias must be finite")
        object.__setattr__(self, "_index", np.array([FEATURES.index(f) for f in self.features], dtype=np.int64))

    def logit(self, features: np.ndarray) -> np.ndarray:
        """``features``: (..., len(FEATURES)) full vectors as :class:`FeatureTracker` makes them."""
        x = (np.asarray(features, np.float64)[..., self._index] - np.asarray(self.mean)) / np.asarray(self.scale)
        return x @ np.asarray(self.weights) + self.bias

    def __call__(self, features: np.ndarray) -> float:
        return float(1.0 / (1.0 + math.exp(-float(np.clip(self.logit(features), -50, 50)))))

    def as_dict(self) -> dict:
        return {"features": list(self.features), "mean": [float(v) for v in self.mean],
                "scale": [float(v) for v in self.scale], "weights": [float(v) for v in self.weights],
                "bias": float(self.bias)}

    @classmethod
    def from_dict(cls, data: dict) -> "ConfidenceHead":
        try:
            return cls(tuple(data["features"]), tuple(float(v) for v in data["mean"]),
                       tuple(float(v) for v in data["scale"]), tuple(float(v) for v in data["weights"]),
                       float(data["bias"]))
        except KeyError as exc:
            raise ValueError(f"confidence head: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"confidence head: {exc}") from None
