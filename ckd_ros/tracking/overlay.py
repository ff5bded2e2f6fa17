"""Overlay frames for inspection: RGB and (registered, 8-bit) thermal side by side with the box on both."""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from .status import TrackStatus

_COLOURS = {TrackStatus.TRACKING: (0, 255, 0), TrackStatus.LOST: (255, 0, 0),
            TrackStatus.UNINITIALIZED: (255, 255, 0)}


def draw_overlay(rgb: np.ndarray, thermal8: np.ndarray, box, status: TrackStatus, score: float, index: int,
                 truth=None, max_height: int = 540) -> np.ndarray:
    """RGB-order H x 2W x 3 panel; predicted box coloured by status, ground truth (if any) in white."""
    scale = min(1.0, max_height / rgb.shape[0])
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    panels = []
    for image in (rgb, thermal8 if thermal8.ndim == 3 else np.repeat(thermal8[..., None], 3, 2)):
        panel = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale != 1.0 else image.copy()
        for b, colour in ((truth, (255, 255, 255)), (box, _COLOURS[status])):
            if b is None or not np.all(np.isfinite(b)):
                continue
            x, y, w, h = (float(v) * scale for v in b)
            cv2.rectangle(panel, (round(x), round(y)), (round(x + w), round(y + h)), colour, 2)
        panels.append(panel)
    out = np.ascontiguousarray(np.concatenate(panels, axis=1))
    cv2.putText(out, f"#{index} {status.value} {score:.3f}", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                _COLOURS[status], 2, cv2.LINE_AA)
    return out


class OverlayWriter:
    """An mp4 (``mode='video'``) or numbered PNGs (``mode='png'``); falls back to PNGs when no video encoder
    is available, with a warning."""

    def __init__(self, path: str | Path, mode: str = "video", fps: float = 25.0) -> None:
        if mode not in ("video", "png"):
            raise ValueError(f"overlay mode must be 'video' or 'png', not {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self.count = 0

    @property
    def output(self) -> Path:
        return self.path.with_suffix(".mp4") if self.mode == "video" else self.path

    def write(self, frame_rgb: np.ndarray) -> None:
        bgr = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
        if self.mode == "video" and self._writer is None:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(str(self.output), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                     (bgr.shape[1], bgr.shape[0]))
            if writer.isOpened():
                self._writer = writer
            else:
                warnings.warn(f"no mp4 encoder available to OpenCV; writing PNG frames to {self.path}/",
                              stacklevel=2)
                self.mode = "png"
        if self.mode == "video":
            assert self._writer is not None
            self._writer.write(bgr)
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(self.path / f"{self.count:06d}.png"), bgr):
                raise OSError(f"cannot write overlay frame into {self.path}")
        self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
