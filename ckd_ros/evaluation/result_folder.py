"""A tracker's folder of result files: which file holds which sequence, how its boxes are laid out,
and which files cannot be read (named with the reason, left out instead of stopping the others)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .benchmarks import Benchmark, SequenceTruth
from .metrics import overlap
from ckd_ros.data.box_files import CORNERS, FORMATS, LAYOUT_NAMES, LTRB, LTWH, BoxText, boxes_from_values, parse_box_file

# Characters that end a file-name prefix: `APFNet_seq.txt`, `mfDiMP_LasHeR_test_seq.txt`, `T-seq.txt`.
_PREFIX_ENDS = "_-"


@dataclass
class ResultFolder:
    """What was read from one tracker's folder."""

    folder: Path
    prefix: str
    prefix_guessed: bool
    # layout of the 4-value files (LTWH or LTRB); 8-value files are always polygons
    layout: str
    layout_detected: bool
    files: dict[str, Path]
    # sequence -> x y w h boxes after the benchmark's rounding
    boxes: dict[str, np.ndarray]
    # sequence -> why its file could not be read ("path:line: reason")
    unreadable: dict[str, str] = field(default_factory=dict)
    # sequence -> line numbers of blank / NaN rows read as frames without a box
    empty_rows: dict[str, list[int]] = field(default_factory=dict)
    polygons: int = 0

    def describe(self) -> str:
        """One line saying which files were read and how."""
        how = "guessed from the folder" if self.prefix_guessed else "given"
        names = f"{self.prefix}<seq>.txt" + (f" (prefix {self.prefix!r} {how})" if self.prefix else "")
        four = len(self.files) - self.polygons - len(self.unreadable)
        layouts = []
        if four > 0:
            layouts.append(LAYOUT_NAMES[self.layout] + (" (detected)" if self.layout_detected else ""))
        if self.polygons:
            layouts.append(f"{LAYOUT_NAMES[CORNERS]} ({self.polygons} files)")
        return f"{len(self.files)} files {names}, boxes {' and '.join(layouts) or '-'}"


def guess_prefix(folder: Path, names: list[str], hints: tuple[str, ...] = ()) -> str:
    """The file-name prefix that matches the most sequences' names in ``folder`` ("" for ``<seq>.txt``).

    Between prefixes that match as many sequences, no prefix wins, then the one that holds more hints
    (the tracker's folder name, the benchmark's name), then the longer one.
    """
    counts: dict[str, int] = {}
    for p in folder.glob("*.txt"):
        stem = p.name[:-4]
        for n in names:
            if stem.endswith(n):
                cand = stem[: len(stem) - len(n)]
                if cand == "" or cand[-1] in _PREFIX_ENDS:
                    counts[cand] = counts.get(cand, 0) + 1
    if not counts:
        return ""
    low = [h.lower() for h in hints if h]
    return max(counts, key=lambda c: (counts[c], c == "", sum(h in c.lower() for h in low), len(c)))


def locate_results(folder: str | Path, names: list[str], prefix: str | None = None,
                   hints: tuple[str, ...] = ()) -> tuple[dict[str, Path], str, bool]:
    """Result file of each sequence in ``folder`` as ``<prefix><seq>.txt``, the prefix, and whether it was guessed.

    Raises ``FileNotFoundError`` listing sequences without a result file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"result folder {folder} does not exist")
    guessed = prefix is None
    if prefix is None:
        prefix = guess_prefix(folder, names, (folder.resolve().name,) + tuple(hints))
    found = {n: folder / f"{prefix}{n}.txt" for n in names}
    missing = [n for n, p in found.items() if not p.is_file()]
    if missing:
        present = sorted(p.name for p in folder.glob("*.txt"))[:3]
        raise FileNotFoundError(f"{folder}: no result file for {len(missing)} of {len(names)} sequences "
                                f"(looked for {prefix}<seq>.txt), e.g. {missing[:5]}; the folder holds "
                                + (f"e.g. {present}" if present else "no .txt files"))
    return found, prefix, guessed


def detect_layout(texts: dict[str, BoxText], truth: dict[str, SequenceTruth], inclusive_width: bool) -> str:
    """x y w h or x1 y1 x2 y2 for a folder's 4-value files, by which reading lies closer to the ground truth.

    A file with any box whose "x2" is left of its "x1" (or "y2" above "y1") cannot hold corners. Each
    other file votes for the reading with the larger median overlap with the visible ground truth;
    corners need a majority, so that a tie or no evidence keeps the usual x y w h.
    """
    votes = {LTWH: 0, LTRB: 0}
    for name, text in texts.items():
        v = text.values
        finite = np.isfinite(v).all(axis=1)
        if (v[finite, 2] < v[finite, 0]).any() or (v[finite, 3] < v[finite, 1]).any():
            votes[LTWH] += 1
            continue
        t = truth[name]
        keep = t.frames < len(v)
        idx = t.frames[keep]
        gt = t.visible[keep]
        medians = {}
        for layout in (LTWH, LTRB):
            with np.errstate(invalid="ignore"):
                ov = overlap(boxes_from_values(v[idx], layout, inclusive_width), gt)
            ov = ov[np.isfinite(ov)]
            medians[layout] = float(np.median(ov)) if len(ov) else 0.0
        votes[LTRB if medians[LTRB] > medians[LTWH] else LTWH] += 1
    return LTRB if votes[LTRB] > votes[LTWH] else LTWH


def read_result_folder(folder: str | Path, benchmark: Benchmark, prefix: str | None = None,
                       fmt: str = "auto", strict: bool = False) -> ResultFolder:
    """Read a tracker's result file for every sequence of ``benchmark`` with its rounding rules.

    ``fmt``: "auto" (8 values are polygons; 4 are x y w h unless corners fit the ground truth
    better, see ``detect_layout``), "xywh", "x1y1x2y2" or "polygon". A file that cannot be read is
    recorded in ``unreadable`` with the reason; with ``strict`` it raises ``ValueError`` instead.
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown result format {fmt!r}; use auto, {', '.join(FORMATS)}")
    rules = benchmark.rules
    files, prefix, guessed = locate_results(folder, list(benchmark.sequences), prefix, (rules.name,))
    texts: dict[str, BoxText] = {}
    unreadable: dict[str, str] = {}
    for name, path in files.items():
        try:
            text = parse_box_file(path)
            if fmt != "auto" and text.width != (8 if FORMATS[fmt] == CORNERS else 4):
                raise ValueError(f"{path}: {text.width} values per line, but --format {fmt} needs "
                                 f"{8 if FORMATS[fmt] == CORNERS else 4}")
        except (ValueError, OSError) as e:
            if strict:
                raise ValueError(str(e)) from None
            unreadable[name] = str(e)
            continue
        texts[name] = text
    four = {n: t for n, t in texts.items() if t.width == 4}
    if fmt == "auto":
        layout = detect_layout(four, benchmark.sequences, rules.inclusive_corner_width) if four else LTWH
    else:
        layout = FORMATS[fmt] if FORMATS[fmt] != CORNERS else LTWH
    boxes = {n: boxes_from_values(t.values, layout if t.width == 4 else CORNERS, rules.inclusive_corner_width,
                                  rules.rounding)
             for n, t in texts.items()}
    return ResultFolder(
        folder=Path(folder), prefix=prefix, prefix_guessed=guessed, layout=layout,
        layout_detected=fmt == "auto" and bool(four), files=files, boxes=boxes, unreadable=unreadable,
        empty_rows={n: t.empty_rows for n, t in texts.items() if t.empty_rows},
        polygons=len(texts) - len(four))
