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

import cv2
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
    "log_age",             # log(1 + frames since the initialisation, at most AGE_CAP)
    "sharpness",           # log(1 + windowed peak / mean of the raw map): one narrow peak or a plateau
    "spread",              # share of score-map cells at or above half the raw peak
    "rgb_ncc",             # normalised cross-correlation of the box's RGB patch with the initial one
    "thermal_ncc",         # the same for the thermal patch (on the RGB grid)
    "colour_shift",        # distance of the box's mean colour from the initial one (0..1)
    "thermal_shift",       # |mean thermal level - initial level| (0..1)
    "recent_min_ncc",      # lowest mean of the two NCCs over the last RECENT_FRAMES frames
)

# What a head is fitted on by default: every feature but the track's age. Fitting sequences are short
# (100 frames) and drift more the longer they run, so a head given the age learns "old tracks are wrong" and,
# extrapolated to a robot's hour-long track, reports LOST on a target it follows well (found by the
# 10-minute soak). The age stays computed, capped at the fitting range, for calibrations that list it.
HEAD_FEATURES: tuple[str, ...] = tuple(f for f in FEATURES if f != "log_age")
AGE_CAP = 100

# Side of the small patch the appearance features compare: large enough for a shape, small enough to be
# blind to the pixel noise and blur that do not change the object (and to cost two tiny resizes a frame).
APPEARANCE_PATCH = 12


@dataclass(frozen=True)
class TrackEvidence:
    """What one tracked frame offers, straight from the tracker's decoding."""

    peak: float
    raw_peak: float
    second_peak: float
    box: tuple[float, float, float, float]
    map_mean: float = float("nan")              # mean of the raw score map
    spread: float = float("nan")                # share of cells >= raw_peak / 2
    appearance: "Appearance | None" = None      # the box's patches in this frame


@dataclass(frozen=True)
class Appearance:
    """Small patches of the box in both modalities, the cheapest evidence of *what* the box holds: a jump to
    a neighbour of another colour or temperature shows here even when the network's peak stays high."""

    rgb: np.ndarray          # (P, P, 3) float32
    thermal: np.ndarray      # (P, P) float32

    @classmethod
    def of(cls, rgb: np.ndarray, thermal: np.ndarray, box: Sequence[float]) -> "Appearance":
        """``thermal``: on the RGB grid (as the network sees it), uint8 or float, 2-D or 3-channel."""
        H, W = rgb.shape[:2]
        x, y, w, h = (float(v) for v in box)
        x0 = int(min(max(math.floor(x), 0), W - 1))
        y0 = int(min(max(math.floor(y), 0), H - 1))
        x1 = int(min(max(math.ceil(x + w), x0 + 1), W))
        y1 = int(min(max(math.ceil(y + h), y0 + 1), H))
        size = (APPEARANCE_PATCH, APPEARANCE_PATCH)
        patch = cv2.resize(np.ascontiguousarray(rgb[y0:y1, x0:x1]), size, interpolation=cv2.INTER_AREA)
        tir = thermal[y0:y1, x0:x1]
        if tir.ndim == 3:
            tir = tir.mean(axis=2)
        tir_patch = cv2.resize(np.ascontiguousarray(tir, dtype=np.float32), size, interpolation=cv2.INTER_AREA)
        return cls(patch.astype(np.float32).reshape(size + (-1,)), tir_patch.astype(np.float32))

    def compare(self, other: "Appearance") -> tuple[float, float, float, float]:
        """(rgb NCC, thermal NCC, colour shift, thermal shift) of ``other`` against this reference."""
        colour = float(np.linalg.norm(self.rgb.reshape(-1, self.rgb.shape[-1]).mean(0)
                                      - other.rgb.reshape(-1, other.rgb.shape[-1]).mean(0))) / (255 * math.sqrt(3))
        thermal = abs(float(self.thermal.mean() - other.thermal.mean())) / 255.0
        return _ncc(self.rgb, other.rgb), _ncc(self.thermal, other.thermal), colour, thermal


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    # A flat patch (a uniform object, a saturated thermal blob) has no shape to compare: call it neutral.
    return float(a @ b) / denom if denom > 1e-6 else 0.0


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
        self._nccs: deque[float] = deque(maxlen=RECENT_FRAMES)
        self._age = 0
        self._appearance: Appearance | None = None
        self.last: np.ndarray | None = None

    def start(self, box: Sequence[float], appearance: Appearance | None = None) -> None:
        self.clear()
        self._initial = self._previous = tuple(float(v) for v in box)  # type: ignore[assignment]
        self._appearance = appearance

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
        raw_peak = _finite(ev.raw_peak)
        sharpness = peak / max(_finite(ev.map_mean), 1e-6) if math.isfinite(ev.map_mean) else 0.0
        spread = _finite(ev.spread)
        if self._appearance is not None and ev.appearance is not None:
            rgb_ncc, tir_ncc, colour, thermal = self._appearance.compare(ev.appearance)
        else:   # nothing to compare with: values that say "as at the start"
            rgb_ncc, tir_ncc, colour, thermal = 1.0, 1.0, 0.0, 0.0
        self._nccs.append(0.5 * (rgb_ncc + tir_ncc))
        age = math.log1p(min(self._age, AGE_CAP))
        self.last = np.array([peak, raw_peak, min(second, 1.0), reference, ratio, self._smoothed,
                              min(self._ratios), jump, max(self._jumps), area_change, age,
                              math.log1p(min(sharpness, 1e4)), spread, rgb_ncc, tir_ncc, colour, thermal,
                              min(self._nccs)], dtype=np.float64)
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
