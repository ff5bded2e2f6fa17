"""Input checks with messages that say what is wrong; run before any tracker state changes."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

THERMAL_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


class TrackerInputError(ValueError):
    """An image or box given to the tracker is unusable; the tracker state is unchanged."""


class TrackerNotInitializedError(RuntimeError):
    """``track`` was called before ``initialize`` (or after ``reset``)."""


def check_rgb(rgb: object) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise TrackerInputError(f"rgb image must be a numpy array, not {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise TrackerInputError(f"rgb image must be HxWx3 (RGB order), got shape {rgb.shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise TrackerInputError(f"rgb image is empty (shape {rgb.shape})")
    if rgb.dtype != np.uint8:
        raise TrackerInputError(f"rgb image must be uint8, not {rgb.dtype}")
    return rgb


def check_thermal(thermal: object) -> np.ndarray:
    if not isinstance(thermal, np.ndarray):
        raise TrackerInputError(f"thermal image must be a numpy array, not {type(thermal).__name__}")
    if not (thermal.ndim == 2 or (thermal.ndim == 3 and thermal.shape[2] in (1, 3))):
        raise TrackerInputError(f"thermal image must be HxW, HxWx1 or HxWx3, got shape {thermal.shape}")
    if thermal.shape[0] == 0 or thermal.shape[1] == 0:
        raise TrackerInputError(f"thermal image is empty (shape {thermal.shape})")
    if thermal.dtype not in THERMAL_DTYPES:
        raise TrackerInputError(f"thermal image must be uint8, uint16 (raw counts) or float32/float64 "
                                f"(temperatures), not {thermal.dtype}")
    return thermal


def check_box(box: object, image_hw: tuple[int, int]) -> list[float]:
    """x, y, w, h as Python floats: finite, positive size, overlapping the image."""
    try:
        values = [float(v) for v in np.asarray(box, dtype=np.float64).reshape(-1)]
    except (TypeError, ValueError) as exc:
        raise TrackerInputError(f"box must be 4 numbers (x, y, w, h), got {box!r}") from exc
    if len(values) != 4:
        raise TrackerInputError(f"box must be 4 numbers (x, y, w, h), got {len(values)}: {box!r}")
    if not all(math.isfinite(v) for v in values):
        raise TrackerInputError(f"box has a NaN or infinite value: {values}")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise TrackerInputError(f"box width and height must be positive, got w={w}, h={h}")
    H, W = image_hw
    if x >= W or y >= H or x + w <= 0 or y + h <= 0:
        raise TrackerInputError(f"box {values} lies entirely outside the {W}x{H} image")
    return values


def as_box_list(box: Sequence[float]) -> list[float]:
    return [float(v) for v in box]
