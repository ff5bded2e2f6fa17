"""Per-frame result files in the benchmark toolkits' format."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np

ResultFormat = Literal["reference", "float"]


def write_boxes(path: str | Path, boxes: Iterable[Sequence[float]], fmt: ResultFormat = "reference") -> Path:
    """One ``x y w h`` line per frame, the first line the initial box.

    ``reference``: what the official CKD/pytracking writer produces (``np.array(boxes).astype(int)``, i.e.
    truncation toward zero, tab separated), which the benchmark toolkits read. ``float``: the same
    layout with 4 decimals, for users who want sub-pixel boxes.
    """
    arr = np.asarray(list(boxes), dtype=np.float64).reshape(-1, 4)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "reference":
        np.savetxt(path, arr.astype(int), delimiter="\t", fmt="%d")
    elif fmt == "float":
        np.savetxt(path, arr, delimiter="\t", fmt="%.4f")
    else:
        raise ValueError(f"result format must be 'reference' or 'float', not {fmt!r}")
    return path


def write_times(path: str | Path, seconds: Iterable[float]) -> Path:
    """Per-frame processing time in seconds, one per line (pytracking's ``<seq>_time.txt``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.asarray(list(seconds), dtype=np.float64), fmt="%f")
    return path


def read_boxes(path: str | Path) -> np.ndarray:
    """N x 4 float array from a result or ground-truth file (comma, tab or space separated; # comments)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rows.append([float(v) for v in line.replace(",", " ").replace("\t", " ").split()])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4) if rows else np.zeros((0, 4))
