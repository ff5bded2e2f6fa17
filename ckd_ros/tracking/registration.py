"""Bringing the thermal image onto the RGB image's pixel grid.

CKD crops both modalities with one box, so the thermal image must be pixel-aligned with the RGB image and
of the same size. Real rigs are not co-axial; the usual approximation is a 3x3 homography from
calibration that maps thermal pixel coordinates to RGB pixel coordinates (``[u_rgb, v_rgb, 1]^T ~
H [u_t, v_t, 1]^T``). When no homography is configured and the sizes differ, ``on_size_mismatch`` says
what happens, never a silent crop:

* ``"error"`` (default): raise ``RegistrationError``: the caller has to decide.
* ``"resize"``: stretch the thermal image to the RGB size (assumes both cameras see the same field of
  view) and warn once.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np


class RegistrationError(ValueError):
    """The thermal image cannot be put onto the RGB pixel grid as configured."""


@dataclass
class RegistrationConfig:
    homography: np.ndarray | None = None          # 3x3, thermal pixel -> RGB pixel
    on_size_mismatch: Literal["error", "resize"] = "error"
    interpolation: int = cv2.INTER_LINEAR

    def validate(self) -> None:
        if self.on_size_mismatch not in ("error", "resize"):
            raise ValueError(f"on_size_mismatch must be 'error' or 'resize', not {self.on_size_mismatch!r}")
        if self.homography is not None:
            self.homography = validate_homography(self.homography)


def validate_homography(h: np.ndarray | list) -> np.ndarray:
    """A usable thermal -> RGB homography as a 3x3 float64 array, from a 3x3 matrix or 9 row-major numbers."""
    m = np.asarray(h, dtype=np.float64)
    if m.shape == (9,):
        m = m.reshape(3, 3)
    if m.shape != (3, 3):
        raise ValueError(f"homography needs 9 numbers (3x3 row-major, thermal -> RGB pixels), got shape "
                         f"{m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("homography has non-finite entries")
    if abs(np.linalg.det(m)) < 1e-12:
        raise ValueError("homography is singular")
    return m


def load_homography(path: str | Path) -> np.ndarray:
    """A 3x3 matrix from ``.npy``, or a text/YAML file with 9 numbers (row-major; brackets/commas allowed)."""
    path = Path(path)
    if path.suffix == ".npy":
        return validate_homography(np.load(path))
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml
        data = yaml.safe_load(text)
        if isinstance(data, dict):
            data = data.get("homography", data.get("H", data.get("data")))
        return validate_homography(np.asarray(data, dtype=np.float64).reshape(3, 3))
    numbers = [float(t) for t in text.replace(",", " ").replace("[", " ").replace("]", " ").split()]
    if len(numbers) != 9:
        raise ValueError(f"{path}: expected 9 numbers for a 3x3 homography, found {len(numbers)}")
    return validate_homography(np.asarray(numbers).reshape(3, 3))


class Registration:
    """Callable: ``register(thermal, rgb_shape) -> thermal on the RGB grid``."""

    def __init__(self, config: RegistrationConfig | None = None) -> None:
        self.config = config or RegistrationConfig()
        self.config.validate()
        self._warned = False

    def __call__(self, thermal: np.ndarray, rgb_hw: tuple[int, int]) -> np.ndarray:
        H, W = int(rgb_hw[0]), int(rgb_hw[1])
        if self.config.homography is not None:
            return cv2.warpPerspective(thermal, self.config.homography, (W, H), flags=self.config.interpolation,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if thermal.shape[:2] == (H, W):
            return thermal
        if self.config.on_size_mismatch == "error":
            raise RegistrationError(
                f"thermal image is {thermal.shape[1]}x{thermal.shape[0]} but the RGB image is {W}x{H}; CKD "
                "crops both with one box, so configure a thermal->RGB homography, or allow "
                "on_size_mismatch='resize' if both cameras share the field of view")
        if not self._warned:
            warnings.warn(f"resizing the {thermal.shape[1]}x{thermal.shape[0]} thermal image to the {W}x{H} RGB "
                          "image (no homography configured): assumes both cameras share the field of view",
                          stacklevel=2)
            self._warned = True
        return cv2.resize(thermal, (W, H), interpolation=self.config.interpolation)
