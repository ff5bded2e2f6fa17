"""Thermal gain control: raw 16-bit counts or float temperatures -> the 8-bit 3-channel image CKD expects.

The CKD weights were trained on 8-bit, 3-channel thermal JPGs. Radiometric cameras deliver 16-bit counts
(or temperatures) whose useful band is a small part of the full range, so a plain 16->8 bit shift makes
most scenes nearly uniform. The mapping is therefore explicit and configurable:

* ``percentile`` (default): clip at the ``low``/``high`` percentiles of the frame, then scale linearly;
  robust to a few hot or dead pixels.
* ``minmax``: the frame's minimum and maximum (sensitive to outliers, flickers with them).
* ``fixed``: a fixed input window ``[window_min, window_max]`` (counts or degrees), identical for every
  frame, so brightness means the same temperature all the time.

8-bit input is passed through unchanged (a single channel is replicated to 3, as the reference reader does
with a grey JPG). ``smoothing`` (0 = off) low-passes the percentile/min-max limits over frames to avoid
brightness flicker when hot objects enter the view.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from .validation import check_thermal

GainMode = Literal["percentile", "minmax", "fixed"]


@dataclass
class ThermalGainConfig:
    mode: GainMode = "percentile"
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    window_min: float | None = None      # fixed mode: input value mapped to 0
    window_max: float | None = None      # fixed mode: input value mapped to 255
    smoothing: float = 0.0               # weight of the previous limits, 0 <= s < 1
    sample_stride: int = 2               # percentiles/min-max from every n-th pixel per axis (1 = all)

    def validate(self) -> None:
        if self.mode not in ("percentile", "minmax", "fixed"):
            raise ValueError(f"thermal gain mode must be percentile, minmax or fixed, not {self.mode!r}")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ValueError("thermal gain percentiles need 0 <= low < high <= 100, got "
                             f"{self.low_percentile}, {self.high_percentile}")
        if self.mode == "fixed":
            if self.window_min is None or self.window_max is None:
                raise ValueError("fixed thermal gain needs window_min and window_max")
            if not float(self.window_max) > float(self.window_min):
                raise ValueError(f"fixed thermal window needs window_max > window_min, got "
                                 f"[{self.window_min}, {self.window_max}]")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"thermal gain smoothing must be in [0, 1), got {self.smoothing}")
        if self.sample_stride < 1:
            raise ValueError(f"thermal gain sample_stride must be >= 1, got {self.sample_stride}")


class ThermalGain:
    """Stateful (only through ``smoothing``) converter to uint8 HxWx3."""

    def __init__(self, config: ThermalGainConfig | None = None) -> None:
        self.config = config or ThermalGainConfig()
        self.config.validate()
        self._limits: tuple[float, float] | None = None

    def reset(self) -> None:
        self._limits = None

    def snapshot(self) -> tuple[float, float] | None:
        """The state that smoothing carries from frame to frame; :meth:`restore` puts it back, so that a frame
        that fails after the gain ran (registration, a bad box) or a display-only conversion leaves no trace."""
        return self._limits

    def restore(self, state: tuple[float, float] | None) -> None:
        self._limits = state

    @property
    def last_limits(self) -> tuple[float, float] | None:
        """Input values mapped to 0 and 255 in the last converted 16-bit/float frame."""
        return self._limits

    def __call__(self, thermal: np.ndarray) -> np.ndarray:
        image = _single_channel(check_thermal(thermal))
        if image.dtype == np.uint8:
            if thermal.ndim == 3 and thermal.shape[2] == 3:
                return thermal
            return _to_3_channels(image)
        if image.dtype == np.uint16:
            lo, hi = self._update(self._limits_uint16(image))
            lut = _ramp(np.arange(65536, dtype=np.float64), lo, hi)
            out = np.take(lut, image)
        elif image.dtype in (np.float32, np.float64):
            lo, hi = self._update(self._limits_float(image))
            out = _ramp(image, lo, hi)
        return _to_3_channels(out)

    def _update(self, limits: tuple[float, float]) -> tuple[float, float]:
        s = self.config.smoothing
        if s > 0 and self._limits is not None:
            limits = (s * self._limits[0] + (1 - s) * limits[0], s * self._limits[1] + (1 - s) * limits[1])
        self._limits = limits
        return limits

    def _limits_uint16(self, image: np.ndarray) -> tuple[float, float]:
        c = self.config
        if c.mode == "fixed":
            return float(c.window_min), float(c.window_max)
        if c.mode == "minmax":   # all pixels: a subsample would miss the extremes
            return float(image.min()), float(image.max())
        # Percentiles from a histogram of every sample_stride-th pixel per axis: O(pixels), no sort.
        sample = image[::c.sample_stride, ::c.sample_stride]
        cdf = np.cumsum(np.bincount(sample.ravel(), minlength=65536))
        n = cdf[-1]
        lo = int(np.searchsorted(cdf, c.low_percentile / 100.0 * n, side="left"))
        hi = int(np.searchsorted(cdf, c.high_percentile / 100.0 * n, side="left"))
        return float(lo), float(hi)

    def _limits_float(self, image: np.ndarray) -> tuple[float, float]:
        c = self.config
        if c.mode == "fixed":
            return float(c.window_min), float(c.window_max)
        # minmax looks at every pixel: a subsample would miss the extremes
        sample = image if c.mode == "minmax" else image[::c.sample_stride, ::c.sample_stride]
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:   # the subsample missed the few finite pixels (check_thermal saw at least one)
            sample = image[np.isfinite(image)]
        if c.mode == "minmax":
            return float(sample.min()), float(sample.max())
        lo, hi = np.percentile(sample, [c.low_percentile, c.high_percentile])
        return float(lo), float(hi)


def _single_channel(thermal: np.ndarray) -> np.ndarray:
    # 3-channel thermal is grey replicated (or a colour-mapped preview, whose first channel we use only for
    # 16-bit/float; 8-bit 3-channel passes through untouched).
    return thermal if thermal.ndim == 2 else thermal[:, :, 0]


def _to_3_channels(grey: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2RGB)


def _ramp(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map [lo, hi] -> [0, 255], clipped and rounded; NaN -> 0; a flat frame -> 0."""
    span = hi - lo
    scale = 255.0 / span if span > 0 else 0.0
    out = (values.astype(np.float32) - np.float32(lo)) * np.float32(scale)
    out = np.nan_to_num(out, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(out, 0.0, 255.0, out=out)
    return np.rint(out).astype(np.uint8)


def to_uint8_thermal(thermal: np.ndarray, config: ThermalGainConfig | None = None) -> np.ndarray:
    """One-shot conversion (no smoothing state)."""
    return ThermalGain(config)(thermal)
