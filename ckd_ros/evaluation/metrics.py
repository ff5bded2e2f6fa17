"""Per-frame measures and threshold curves of single-object tracking benchmarks (pure numpy).

Boxes are arrays of shape (N, 4) holding ``x, y, w, h`` (top-left corner, width, height). The RGBT
toolkits all treat pixels as inclusive cells (a box covers columns x .. x + w - 1), which is why
overlaps add 1 to the intersection and why centres sit at x + (w - 1) / 2 in most of them.
"""
from __future__ import annotations

import numpy as np

# GTOT's MATLAB toolkit places the centre at x + w / 2; the others at x + (w - 1) / 2.
CENTRE_INCLUSIVE = "inclusive"
CENTRE_HALF_WIDTH = "half_width"


def as_boxes(boxes: np.ndarray | list, name: str = "boxes") -> np.ndarray:
    """Return ``boxes`` as a float64 (N, 4) array, or raise saying what shape was given instead."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 4:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) as x, y, w, h; got shape {arr.shape}")
    return arr


def centres(boxes: np.ndarray, convention: str = CENTRE_INCLUSIVE) -> np.ndarray:
    """Centres (N, 2) of x, y, w, h boxes under a toolkit's centre convention."""
    b = as_boxes(boxes)
    if convention == CENTRE_INCLUSIVE:
        return b[:, :2] + (b[:, 2:] - 1.0) / 2.0
    if convention == CENTRE_HALF_WIDTH:
        return b[:, :2] + b[:, 2:] / 2.0
    raise ValueError(f"unknown centre convention {convention!r}; use {CENTRE_INCLUSIVE!r} or {CENTRE_HALF_WIDTH!r}")


def centre_error(pred: np.ndarray, gt: np.ndarray, convention: str = CENTRE_INCLUSIVE) -> np.ndarray:
    """Euclidean distance (pixels) between predicted and ground-truth centres, one value per frame."""
    pred, gt = _paired(pred, gt)
    return np.linalg.norm(centres(pred, convention) - centres(gt, convention), axis=1)


def normalised_centre_error(pred: np.ndarray, gt: np.ndarray, convention: str = CENTRE_INCLUSIVE,
                            eps: float = 1e-8) -> np.ndarray:
    """Centre distance after dividing x by the ground-truth width and y by its height (LasHeR's NPR).

    ``eps`` keeps a zero-size ground truth from dividing by zero; such frames are invalid anyway and
    the LasHeR rules overwrite their error.
    """
    pred, gt = _paired(pred, gt)
    scale = gt[:, 2:] + eps
    d = (centres(pred, convention) - centres(gt, convention)) / scale
    return np.linalg.norm(d, axis=1)


def overlap(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Intersection over union with inclusive pixel edges, one value per frame.

    Areas are w * h while the intersection counts inclusive cells (right edge x + w - 1, width + 1),
    exactly as the MATLAB toolkits compute it. A degenerate box can therefore give values outside
    [0, 1] or NaN; benchmarks that care repair predictions before calling this.
    """
    pred, gt = _paired(pred, gt)
    left = np.maximum(pred[:, 0], gt[:, 0])
    top = np.maximum(pred[:, 1], gt[:, 1])
    right = np.minimum(pred[:, 0] + pred[:, 2] - 1.0, gt[:, 0] + gt[:, 2] - 1.0)
    bottom = np.minimum(pred[:, 1] + pred[:, 3] - 1.0, gt[:, 1] + gt[:, 3] - 1.0)
    inter = np.maximum(0.0, right - left + 1.0) * np.maximum(0.0, bottom - top + 1.0)
    union = pred[:, 2] * pred[:, 3] + gt[:, 2] * gt[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def precision_curve(errors: np.ndarray, thresholds: np.ndarray, strict: bool = False) -> np.ndarray:
    """Fraction of frames whose error is within each threshold (``<=``, or ``<`` when ``strict``).

    NaN errors never count as successes.
    """
    e = np.asarray(errors, dtype=np.float64)[:, None]
    t = np.asarray(thresholds, dtype=np.float64)[None, :]
    if e.shape[0] == 0:
        raise ValueError("cannot compute a precision curve over zero frames")
    hits = (e < t) if strict else (e <= t)
    return hits.mean(axis=0)


def success_curve(overlaps: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of frames whose overlap is strictly above each threshold (NaN never succeeds)."""
    o = np.asarray(overlaps, dtype=np.float64)[:, None]
    if o.shape[0] == 0:
        raise ValueError("cannot compute a success curve over zero frames")
    return (o > np.asarray(thresholds, dtype=np.float64)[None, :]).mean(axis=0)


def matlab_colon(start: float, step: float, stop: float) -> np.ndarray:
    """Thresholds ``start:step:stop`` with the values MATLAB's colon operator produces.

    MATLAB builds the first half as start + k * step and the second half as stop - k * step (the
    middle, for an even count, as (start + stop) / 2), so its 0.8 in 0:0.02:1 is the double nearest
    0.8 where ``np.linspace`` may land one ulp away. Overlaps that equal a threshold exactly (common
    with integer boxes) are decided by that ulp, so the toolkits' thresholds are rebuilt exactly.
    """
    n = int(np.floor((stop - start) / step + 1e-10))
    out = np.empty(n + 1, dtype=np.float64)
    half = n // 2
    k = np.arange(half + 1)
    out[: half + 1] = start + k * step
    out[n - k] = stop - k * step
    if n % 2 == 0:
        out[half] = (start + stop) / 2.0
    return out


def curve_mean(curve: np.ndarray) -> float:
    """Area under a success curve as the plain mean over its thresholds (OTB / LasHeR / RGBT234)."""
    return float(np.mean(curve))


def curve_trapezoid(curve: np.ndarray, thresholds: np.ndarray) -> float:
    """Area under a curve by the trapezoid rule over its thresholds (GTOT)."""
    c = np.asarray(curve, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    return float(np.sum((c[1:] + c[:-1]) / 2.0 * np.diff(t)))


def _paired(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = as_boxes(pred, "predicted boxes"), as_boxes(gt, "ground-truth boxes")
    if p.shape[0] != g.shape[0]:
        raise ValueError(f"predicted and ground-truth boxes differ in length: {p.shape[0]} vs {g.shape[0]}")
    return p, g
