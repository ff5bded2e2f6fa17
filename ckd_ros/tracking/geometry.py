"""Crop, window and box arithmetic of the reference CKD tracker (INTERFACE.md §3, §6).

Every quirk of the reference is kept on purpose, because published numbers and the parity vectors depend
on them: Python's half-to-even ``round`` for the crop origin, the ``+ 1`` in the right/bottom padding
(the last image column/row is replaced by padding as soon as the crop touches that border), OpenCV's
fixed-point bilinear resize, mapping back around the float previous centre rather than the rounded crop
origin, and the clip with a 10 px margin that may return Python ints.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

Box = Sequence[float]


@dataclass(frozen=True)
class CropGeometry:
    """Where a square crop sits in the image and how it was scaled."""

    crop_size: int          # side of the square crop in image pixels
    x1: int                 # rounded top-left corner (may be negative or beyond the image)
    y1: int
    resize_factor: float    # output_size / crop_size


def crop_geometry(box: Box, factor: float, output_size: int) -> CropGeometry:
    """The reference's crop square around ``box`` (x, y, w, h) scaled by ``factor``."""
    x, y, w, h = box
    crop_size = math.ceil(math.sqrt(w * h) * factor)
    if crop_size < 1:
        raise ValueError(f"box {list(box)} is too small to crop (crop side {crop_size} px)")
    # Python round(): half-to-even, exactly as the reference (round(10.5) == 10).
    x1 = round(x + 0.5 * w - crop_size * 0.5)
    y1 = round(y + 0.5 * h - crop_size * 0.5)
    return CropGeometry(crop_size, int(x1), int(y1), output_size / crop_size)


def sample_target(image: np.ndarray, box: Box, factor: float, output_size: int,
                  geometry: CropGeometry | None = None,
                  exact_limit: int | None = None) -> tuple[np.ndarray, CropGeometry]:
    """Square crop of ``image`` around ``box``, zero-padded and resized to ``output_size``.

    Byte-identical to the reference ``sample_target`` (uint8 in, uint8 out) for every crop that overlaps
    the image; one wholly off it raises ValueError (the reference's slicing wraps around). ``geometry`` may
    be passed when several modalities are cropped with the same box. The reference builds the whole
    zero-padded crop before resizing it, which costs tens of milliseconds once the crop side reaches
    thousands of pixels (a target filling a 1080p frame gives a 5760 px crop); above ``exact_limit`` px the
    output is resampled straight from the image instead, at a cost independent of the crop (same geometry,
    bilinear, within a few grey levels of the reference).
    """
    g = geometry if geometry is not None else crop_geometry(box, factor, output_size)
    H, W = image.shape[:2]
    x2 = g.x1 + g.crop_size
    y2 = g.y1 + g.crop_size
    x1_pad = max(0, -g.x1)
    y1_pad = max(0, -g.y1)
    # The "+ 1" is the reference's: touching the right/bottom border drops the last column/row.
    x2_pad = max(x2 - W + 1, 0)
    y2_pad = max(y2 - H + 1, 0)
    top, bottom, left, right = g.y1 + y1_pad, y2 - y2_pad, g.x1 + x1_pad, x2 - x2_pad
    if top >= bottom or left >= right:  # also before slicing: a negative end would wrap around
        raise ValueError(f"crop around box {list(box)} does not overlap the {W}x{H} image")
    if exact_limit is not None and g.crop_size > exact_limit:
        return _resample_crop(image[:H - 1 if y2_pad else H, :W - 1 if x2_pad else W], g, output_size), g
    crop = image[top:bottom, left:right]
    if x1_pad or y1_pad or x2_pad or y2_pad:
        crop = cv2.copyMakeBorder(crop, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT, value=0)
    # INTER_LINEAR on uint8 is OpenCV's fixed-point bilinear; a float bilinear is not bit-identical.
    patch = cv2.resize(crop, (output_size, output_size), interpolation=cv2.INTER_LINEAR)
    return patch, g


def _resample_crop(image: np.ndarray, g: CropGeometry, output_size: int) -> np.ndarray:
    """The crop's resize done as one affine warp of the image: output pixel centres map to the same source
    positions as in cv2.resize ((d + 0.5) * scale - 0.5 from the crop origin); outside the image is 0."""
    s = g.crop_size / output_size
    m = np.array([[s, 0.0, g.x1 + 0.5 * s - 0.5], [0.0, s, g.y1 + 0.5 * s - 0.5]], np.float64)
    return cv2.warpAffine(image, m, (output_size, output_size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def hann2d(size: int) -> torch.Tensor:
    """Centred 2-D Hann window (1, 1, size, size), float32, computed with the reference's op sequence."""
    h1 = 0.5 * (1 - torch.cos((2 * math.pi / (size + 1)) * torch.arange(1, size + 1).float()))
    return h1.reshape(1, 1, -1, 1) * h1.reshape(1, 1, 1, -1)


def map_box_back(pred_cxcywh: Sequence[float], prev_box: Box, search_size: int,
                 resize_factor: float) -> list[float]:
    """Crop-pixel (cx, cy, w, h) -> image (x, y, w, h), around the float previous centre (not x1)."""
    cx_prev = prev_box[0] + 0.5 * prev_box[2]
    cy_prev = prev_box[1] + 0.5 * prev_box[3]
    half = 0.5 * search_size / resize_factor
    cx, cy, w, h = pred_cxcywh
    return [cx + (cx_prev - half) - 0.5 * w, cy + (cy_prev - half) - 0.5 * h, w, h]


def clip_box(box: Box, H: int, W: int, margin: int = 10) -> list[float]:
    """The reference's clip: keeps at least ``margin`` px of the box inside the image."""
    x1, y1, w, h = box
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0, x1), W - margin)
    x2 = min(max(margin, x2), W)
    y1 = min(max(0, y1), H - margin)
    y2 = min(max(margin, y2), H)
    return [x1, y1, max(margin, x2 - x1), max(margin, y2 - y1)]
