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
    """A thermal frame the gain control can map: HxW / HxWx1 / HxWx3, uint8, uint16 or float with at least
    one finite temperature."""
    if not isinstance(thermal, np.ndarray):
        raise TrackerInputError(f"thermal image must be a numpy array, not {type(thermal).__name__}")
    if not (thermal.ndim == 2 or (thermal.ndim == 3 and thermal.shape[2] in (1, 3))):
        raise TrackerInputError(f"thermal image must be HxW, HxWx1 or HxWx3, got shape {thermal.shape}")
    if thermal.shape[0] == 0 or thermal.shape[1] == 0:
        raise TrackerInputError(f"thermal image is empty (shape {thermal.shape})")
    if thermal.dtype not in THERMAL_DTYPES:
        raise TrackerInputError(f"thermal image must be uint8, uint16 (raw counts) or float32/float64 "
                                f"(temperatures), not {thermal.dtype}")
    if thermal.dtype.kind == "f" and not np.isfinite(thermal).any():
        raise TrackerInputError("thermal image has no finite value")
    return thermal


MIN_BOX_SIDE = 1.0  # pixels: a smaller box holds no target, and its crop would be a few pixels of blur
MAX_BOX_TO_IMAGE = 4.0  # a box this many times the image's side is not a target in it, only a broken number


def check_box(box: object, image_hw: tuple[int, int] | None = None) -> list[float]:
    """x, y, w, h (top-left corner, RGB pixels) as Python floats: 4 finite numbers, width and height of at
    least one pixel, and, when the image size is known, at least one pixel of overlap with the image in
    each direction and sides at most MAX_BOX_TO_IMAGE times the image's. The one rule for boxes, used by the tracker and every front end that takes a box."""
    try:
        values = [float(v) for v in np.asarray(box, dtype=np.float64).reshape(-1)]
    except (TypeError, ValueError) as exc:
        raise TrackerInputError(f"box must be 4 numbers (x, y, w, h), got {box!r}") from exc
    if len(values) != 4:
        raise TrackerInputError(f"box must be 4 numbers (x, y, w, h), got {len(values)}: {box!r}")
    if not all(math.isfinite(v) for v in values):
        raise TrackerInputError(f"box {values} has a NaN or infinite (non-finite) value")
    x, y, w, h = values
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise TrackerInputError(f"box width and height must be positive, at least {MIN_BOX_SIDE:g} pixel; "
                                f"got w={w:g}, h={h:g}")
    if image_hw is not None:
        H, W = int(image_hw[0]), int(image_hw[1])
        if min(x + w, W) - max(x, 0.0) < 1.0 or min(y + h, H) - max(y, 0.0) < 1.0:
            raise TrackerInputError(f"box [x={x:g}, y={y:g}, w={w:g}, h={h:g}] lies outside the {W}x{H} RGB "
                                    "image (x, y: top-left corner, RGB pixels)")
        if w > MAX_BOX_TO_IMAGE * W or h > MAX_BOX_TO_IMAGE * H:
            raise TrackerInputError(f"box w={w:g}, h={h:g} is more than {MAX_BOX_TO_IMAGE:g} times the size of "
                                    f"the {W}x{H} RGB image")
    return values


def box_problem(box: object, image_hw: tuple[int, int] | None = None) -> str | None:
    """:func:`check_box`'s verdict as a message (None: the box is fine), for front ends that report
    instead of raising (service responses, parameter callbacks)."""
    try:
        check_box(box, image_hw)
    except TrackerInputError as exc:
        return str(exc)
    return None


def as_box_list(box: Sequence[float]) -> list[float]:
    return [float(v) for v in box]
