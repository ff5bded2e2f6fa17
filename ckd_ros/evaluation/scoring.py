"""Per-sequence and overall scores of tracker results under a benchmark's rules."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .benchmarks import Benchmark, BenchmarkRules, SequenceTruth
from .metrics import (centre_error, curve_mean, curve_trapezoid, normalised_centre_error, overlap,
                      precision_curve, success_curve)
from .results import read_boxes


@dataclass
class SequenceScore:
    """Per-frame measures (after the benchmark's rules) and per-sequence curves and scores."""

    name: str
    errors: np.ndarray
    overlaps: np.ndarray
    normalised_errors: np.ndarray | None
    precision_curve: np.ndarray
    success_curve: np.ndarray
    normalised_curve: np.ndarray | None
    precision: float
    success: float
    normalised_precision: float | None

    @property
    def frames(self) -> int:
        return int(len(self.errors))


@dataclass
class Score:
    """Curves and headline numbers over a set of sequences."""

    precision_curve: np.ndarray
    success_curve: np.ndarray
    normalised_curve: np.ndarray | None
    precision: float
    success: float
    normalised_precision: float | None
    sequences: int
    frames: int


@dataclass
class TrackerScore:
    """A tracker's scores on a benchmark: overall, per attribute and per sequence."""

    tracker: str
    rules: BenchmarkRules
    overall: Score
    per_sequence: dict[str, SequenceScore]
    per_attribute: dict[str, Score] = field(default_factory=dict)


def prepare_predictions(rules: BenchmarkRules, truth: SequenceTruth, boxes: np.ndarray) -> np.ndarray:
    """Predictions aligned with the annotated frames after the benchmark's repairs.

    Sub-samples to the annotated frames, cuts the results to the ground truth's length, puts the
    ground truth in the first frame where the toolkit does, and (LasHeR) replaces NaN or
    non-positive-size boxes by the previous frame's box.
    """
    pred = np.array(boxes, dtype=np.float64, copy=True)
    if pred.ndim != 2 or pred.shape[1] != 4:
        raise ValueError(f"sequence {truth.name}: predictions must have shape (N, 4); got {pred.shape}")
    needed = int(truth.frames[-1]) + 1
    if len(pred) < needed:
        raise ValueError(f"sequence {truth.name}: result has {len(pred)} boxes but the ground truth "
                         f"annotates frames up to {needed - 1} ({needed} frames needed)")
    pred = pred[truth.frames]
    if rules.repair_predictions:
        # LasHeR's toolkit repairs before it overwrites the first frame, and leaves frames whose
        # ground truth holds NaN alone; the repaired box propagates to the next repair.
        gt_known = ~np.isnan(truth.visible).any(axis=1)
        for i in range(1, len(pred)):
            b = pred[i]
            if gt_known[i] and (np.isnan(b).any() or b[2] <= 0 or b[3] <= 0):
                pred[i] = pred[i - 1]
    if rules.replace_first_frame:
        pred[0] = truth.visible[0]
    return pred


def score_sequence(rules: BenchmarkRules, truth: SequenceTruth, boxes: np.ndarray) -> SequenceScore:
    """Score one sequence's result boxes (x y w h per frame, as read) under ``rules``."""
    pred = prepare_predictions(rules, truth, boxes)
    err = centre_error(pred, truth.visible, rules.centre)
    ov = overlap(pred, truth.visible)
    nerr = (normalised_centre_error(pred, truth.visible, rules.centre)
            if rules.normalised_thresholds is not None else None)
    if rules.maximum_over_modalities:
        err = np.minimum(err, centre_error(pred, truth.infrared, rules.centre))
        ov = np.maximum(ov, overlap(pred, truth.infrared))
        if nerr is not None:
            nerr = np.minimum(nerr, normalised_centre_error(pred, truth.infrared, rules.centre))
    if rules.mark_invalid_ground_truth:
        invalid = ~(truth.visible > 0).all(axis=1)
        err[invalid] = -1.0
        ov[invalid] = -1.0
        if nerr is not None:
            nerr[invalid] = -1.0
    pc = precision_curve(err, rules.precision_thresholds, rules.precision_strict)
    sc = success_curve(ov, rules.success_thresholds)
    nc = precision_curve(nerr, rules.normalised_thresholds) if nerr is not None else None
    return SequenceScore(
        name=truth.name, errors=err, overlaps=ov, normalised_errors=nerr,
        precision_curve=pc, success_curve=sc, normalised_curve=nc,
        precision=float(pc[rules.precision_index]), success=_auc(rules, sc),
        normalised_precision=None if nc is None else float(nc[rules.normalised_index]),
    )


def combine(rules: BenchmarkRules, scores: list[SequenceScore]) -> Score:
    """Overall curves: mean of per-sequence rates, or frame counts pooled over sequences (GTOT)."""
    if not scores:
        raise ValueError("no sequences to combine")
    if rules.pooled:
        err = np.concatenate([s.errors for s in scores])
        ov = np.concatenate([s.overlaps for s in scores])
        pc = precision_curve(err, rules.precision_thresholds, rules.precision_strict)
        sc = success_curve(ov, rules.success_thresholds)
        nc = None
        if rules.normalised_thresholds is not None:
            nc = precision_curve(np.concatenate([s.normalised_errors for s in scores]), rules.normalised_thresholds)
    else:
        pc = np.mean([s.precision_curve for s in scores], axis=0)
        sc = np.mean([s.success_curve for s in scores], axis=0)
        nc = (np.mean([s.normalised_curve for s in scores], axis=0)
              if rules.normalised_thresholds is not None else None)
    return Score(
        precision_curve=pc, success_curve=sc, normalised_curve=nc,
        precision=float(pc[rules.precision_index]), success=_auc(rules, sc),
        normalised_precision=None if nc is None else float(nc[rules.normalised_index]),
        sequences=len(scores), frames=int(sum(s.frames for s in scores)),
    )


def score_tracker(benchmark: Benchmark, results: dict[str, np.ndarray], tracker: str = "tracker") -> TrackerScore:
    """Score a tracker's boxes (sequence name -> x y w h array) on every sequence of ``benchmark``."""
    missing = [n for n in benchmark.sequences if n not in results]
    if missing:
        raise ValueError(f"{tracker}: no results for {len(missing)} of {len(benchmark.sequences)} "
                         f"{benchmark.name} sequences, e.g. {missing[:5]}")
    per_seq = {n: score_sequence(benchmark.rules, t, results[n]) for n, t in benchmark.sequences.items()}
    overall = combine(benchmark.rules, list(per_seq.values()))
    per_attr = {a: combine(benchmark.rules, [per_seq[s] for s in seqs])
                for a, seqs in benchmark.attributes.items() if seqs}
    return TrackerScore(tracker, benchmark.rules, overall, per_seq, per_attr)


def find_result_files(folder: str | Path, names: list[str], prefix: str | None = None) -> dict[str, Path]:
    """Result file of each sequence in ``folder``: ``<prefix><seq>.txt``.

    With ``prefix`` None the prefix is guessed: none when ``<seq>.txt`` files exist, otherwise the
    part before the last ``_`` shared by all result files (``APFNet_BlackCar.txt`` -> ``APFNet_``).
    Raises ``FileNotFoundError`` listing sequences without a result file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"result folder {folder} does not exist")
    if prefix is None:
        prefix = _guess_prefix(folder, names)
    found = {n: folder / f"{prefix}{n}.txt" for n in names}
    missing = [n for n, p in found.items() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: no result file for {len(missing)} of {len(names)} sequences "
                                f"(looked for {prefix}<seq>.txt), e.g. {missing[:5]}")
    return found


def load_results(folder: str | Path, benchmark: Benchmark, prefix: str | None = None) -> dict[str, np.ndarray]:
    """Read a tracker's result files for every sequence of ``benchmark`` with its rounding rules."""
    files = find_result_files(folder, list(benchmark.sequences), prefix)
    return {n: read_boxes(p, None, benchmark.rules.inclusive_corner_width, benchmark.rules.rounding)
            for n, p in files.items()}


def score_folder(folder: str | Path, benchmark: Benchmark, tracker: str | None = None,
                 prefix: str | None = None) -> TrackerScore:
    """Read and score one result folder; the tracker is named after the folder unless given."""
    name = tracker or Path(folder).resolve().name
    return score_tracker(benchmark, load_results(folder, benchmark, prefix), name)


def _auc(rules: BenchmarkRules, curve: np.ndarray) -> float:
    if rules.success_auc == "trapezoid":
        return curve_trapezoid(curve, rules.success_thresholds)
    return curve_mean(curve)


def _guess_prefix(folder: Path, names: list[str]) -> str:
    if any((folder / f"{n}.txt").is_file() for n in names):
        return ""
    stems = [p.name for p in folder.glob("*.txt") if not p.name.endswith("_time.txt")]
    for n in names:
        for s in stems:
            if s.endswith(f"_{n}.txt"):
                cand = s[: -len(f"{n}.txt")]
                if sum((folder / f"{cand}{m}.txt").is_file() for m in names) >= max(1, len(names) // 2):
                    return cand
    return ""
