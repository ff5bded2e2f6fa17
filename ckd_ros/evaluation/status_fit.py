"""Fitting and measuring the target status on sequences with ground truth.

A frame is *on target* when the box's IoU with the ground truth is at least :data:`ON_TARGET_IOU`. The
status is judged per frame (the initialisation frame excluded): precision and recall of TRACKING against
on-target, and the *false-TRACKING share*, the share of all judged frames with TRACKING while off target
(what makes a robot follow the wrong object).

Because the status never changes a box (with the lost-target search off, as here), each sequence is
tracked once; its per-frame feature vectors are recorded, and any head or threshold choice is then
evaluated by replaying the status filter over them, vectorised over candidate settings.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ckd_ros.tracking import CKDTracker, StatusConfig
from ckd_ros.tracking.confidence import FEATURES, HEAD_FEATURES, ConfidenceHead

ON_TARGET_IOU = 0.3


@dataclass
class TrackedSequence:
    """One tracked sequence: per-frame features (frames 1..N-1) and, where annotated, IoU with the truth."""

    name: str
    group: str                  # the condition (synthetic) or a benchmark / folder name
    features: np.ndarray        # (N-1, len(FEATURES))
    peaks: np.ndarray           # (N-1,) windowed peak
    iou: np.ndarray             # (N-1,) NaN where there is no annotation

    @property
    def judged(self) -> np.ndarray:
        return ~np.isnan(self.iou)

    @property
    def on_target(self) -> np.ndarray:
        return np.nan_to_num(self.iou, nan=0.0) >= ON_TARGET_IOU


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Continuous-coordinate IoU of matching rows; NaN where ``b`` is NaN (not annotated)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore"):
        out = inter / np.maximum(union, 1e-9)
    out[np.isnan(b).any(axis=1)] = np.nan
    return out


def track_and_record(tracker: CKDTracker, frames: Iterable[tuple[np.ndarray, np.ndarray]], init_box: Sequence[float],
                     truth: np.ndarray, name: str, group: str) -> TrackedSequence:
    """Track ``frames`` (rgb, thermal pairs; the first initialises with ``init_box``) and record features."""
    feats, peaks, boxes = [], [], []
    for i, (rgb, tir) in enumerate(frames):
        if i == 0:
            tracker.initialize(rgb, tir, init_box)
            continue
        result = tracker.track(rgb, tir)
        feats.append(tracker.last_features.copy())   # type: ignore[union-attr]
        peaks.append(result.score)
        boxes.append(result.box)
    if not boxes:
        raise ValueError(f"{name}: a sequence needs at least two frames to judge a status")
    truth = np.asarray(truth, np.float64)[1:len(boxes) + 1]
    return TrackedSequence(name, group, np.stack(feats), np.asarray(peaks), iou_xywh(np.asarray(boxes), truth))


RECORD_FORMAT = "ckd_status_record/1"


def save_record(path: str | Path, sequences: Sequence[TrackedSequence], meta: dict | None = None) -> None:
    """Tracked sequences as one ``.npz`` (tracking is the slow part of a fit; heads and thresholds are then
    tried in seconds with ``ckd calibrate --from-record``). ``meta``: JSON-able provenance (checkpoint hash,
    seeds, folders) kept with them."""
    lengths = np.array([len(s.peaks) for s in sequences], np.int64)
    np.savez_compressed(Path(path), format=np.array(RECORD_FORMAT), features_names=np.array(FEATURES),
                        meta=np.array(json.dumps(meta or {})),
                        names=np.array([s.name for s in sequences]), groups=np.array([s.group for s in sequences]),
                        lengths=lengths, features=np.concatenate([s.features for s in sequences]),
                        peaks=np.concatenate([s.peaks for s in sequences]),
                        iou=np.concatenate([s.iou for s in sequences]))


def load_record(path: str | Path) -> tuple[list[TrackedSequence], dict]:
    """Read :func:`save_record`'s file -> (sequences, meta); refuses one recorded with other features than
    this version computes. Never unpickles: a record is plain arrays."""
    try:
        with np.load(Path(path), allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        fmt = str(data["format"])
        meta = json.loads(str(data["meta"]))
    except (KeyError, ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read a status record ({exc})") from None
    if fmt != RECORD_FORMAT:
        raise ValueError(f"{path}: not a status record ({fmt!r})")
    names = tuple(str(v) for v in data["features_names"])
    if names != FEATURES:
        raise ValueError(f"{path}: recorded with features {list(names)}, this version computes "
                         f"{list(FEATURES)}; record it again")
    bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
    feats, peaks, iou = data["features"], data["peaks"], data["iou"]
    sequences = [TrackedSequence(str(n), str(g), feats[a:b], peaks[a:b], iou[a:b])
                 for n, g, a, b in zip(data["names"], data["groups"], bounds[:-1], bounds[1:])]
    return sequences, meta


# ----------------------------------------------------------------------------------------------- head fit

def fit_head(sequences: Sequence[TrackedSequence], features: Sequence[str] = HEAD_FEATURES, l2: float = 1.0,
             iterations: int = 50) -> ConfidenceHead:
    """Logistic regression of on-target on the features of every judged frame (Newton steps, L2 penalty on
    the standardised weights, not on the bias)."""
    idx = [FEATURES.index(f) for f in features]
    X = np.concatenate([s.features[s.judged][:, idx] for s in sequences])
    y = np.concatenate([s.on_target[s.judged] for s in sequences]).astype(np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("the fitting sequences need both on-target and off-target frames "
                         f"({int(y.sum())} of {len(y)} on target); add harder sequences or conditions")
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale < 1e-9] = 1.0
    Z = np.hstack([(X - mean) / scale, np.ones((len(X), 1))])
    w = np.zeros(Z.shape[1])
    penalty = np.full(Z.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(Z @ w, -50, 50)))
        grad = Z.T @ (p - y) + penalty * w
        hess = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return ConfidenceHead(tuple(features), tuple(mean.tolist()), tuple(scale.tolist()),
                          tuple(w[:-1].tolist()), float(w[-1]))


# ----------------------------------------------------------------------------------------------- replay

def replay(values: np.ndarray, lost: np.ndarray, recover: np.ndarray, lost_patience: np.ndarray,
           recover_patience: np.ndarray) -> np.ndarray:
    """The status filter over (T,) values for K settings at once -> (K, T) bool, True = TRACKING.

    Same rule as :class:`ckd_ros.tracking.StatusFilter` (a test keeps the two equal)."""
    values = np.nan_to_num(np.asarray(values, np.float64), nan=-1.0)
    k = len(lost)
    tracking = np.ones(k, bool)
    run = np.zeros(k, np.int64)
    out = np.empty((k, len(values)), bool)
    for t, v in enumerate(values):
        miss = v < lost
        hit = v >= recover
        run = np.where(tracking, np.where(miss, run + 1, 0), np.where(hit, run + 1, 0))
        flip = np.where(tracking, run >= lost_patience, run >= recover_patience)
        tracking = np.where(flip, ~tracking, tracking)
        run = np.where(flip, 0, run)
        out[:, t] = tracking
    return out


def confidences(sequence: TrackedSequence, head: ConfidenceHead | None) -> np.ndarray:
    if head is None:
        return sequence.peaks
    return 1.0 / (1.0 + np.exp(-np.clip(head.logit(sequence.features), -50, 50)))


@dataclass
class StatusScore:
    frames: int = 0             # judged frames
    on_target: int = 0
    tracking: int = 0
    tracking_on: int = 0        # TRACKING and on target

    @property
    def precision(self) -> float:
        return self.tracking_on / self.tracking if self.tracking else float("nan")

    @property
    def recall(self) -> float:
        return self.tracking_on / self.on_target if self.on_target else float("nan")

    @property
    def false_tracking(self) -> float:
        """Share of judged frames with TRACKING while off target."""
        return (self.tracking - self.tracking_on) / self.frames if self.frames else float("nan")

    @property
    def false_tracking_of_off(self) -> float:
        """Share of the off-target frames reported TRACKING."""
        off = self.frames - self.on_target
        return (self.tracking - self.tracking_on) / off if off else float("nan")

    def add(self, tracking: np.ndarray, on: np.ndarray) -> None:
        self.frames += len(on)
        self.on_target += int(on.sum())
        self.tracking += int(tracking.sum())
        self.tracking_on += int((tracking & on).sum())

    def as_dict(self) -> dict:
        return {"frames": self.frames, "on_target": self.on_target, "precision": _r(self.precision),
                "recall": _r(self.recall), "false_tracking": _r(self.false_tracking),
                "false_tracking_of_off_target": _r(self.false_tracking_of_off)}


def _r(v: float) -> float | None:
    return None if v != v else round(float(v), 4)


def score_status(sequences: Sequence[TrackedSequence], status: StatusConfig) -> dict[str, StatusScore]:
    """Per group and over all ('all'): how the status ``status`` judges the recorded sequences."""
    scores: dict[str, StatusScore] = {}
    for s in sequences:
        v = confidences(s, status.head)
        tracking = replay(v, np.array([status.lost_threshold]), np.array([status.recover_threshold]),
                          np.array([status.lost_patience]), np.array([status.recover_patience]))[0]
        for key in (s.group, "all"):
            scores.setdefault(key, StatusScore()).add(tracking[s.judged], s.on_target[s.judged])
    return scores


# ----------------------------------------------------------------------------------------------- thresholds

@dataclass(frozen=True)
class ThresholdGrid:
    levels: tuple[float, ...] = tuple(np.round(np.arange(0.05, 0.96, 0.025), 3))
    gaps: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
    lost_patience: tuple[int, ...] = (1, 2, 3, 5)
    recover_patience: tuple[int, ...] = (1, 2, 3, 5, 8)


@dataclass
class ThresholdChoice:
    status: StatusConfig
    score: StatusScore
    feasible: bool          # whether any setting met the target on the fitting sequences
    candidates: int = 0
    log: list[str] = field(default_factory=list)


def choose_thresholds(sequences: Sequence[TrackedSequence], head: ConfidenceHead, target: float,
                      grid: ThresholdGrid = ThresholdGrid(), each_group: bool = False) -> ThresholdChoice:
    """The setting with the highest TRACKING recall whose false-TRACKING share over all ``sequences`` is at
    most ``target`` (``each_group``: in every group, condition or folder, which costs much recall when one
    condition is hard). Ties go to the shorter lost patience (a faster LOST). Infeasible: the lowest share."""
    combos = [(lo, min(lo + gap, 1.0), lp, rp) for lo, gap, lp, rp in
              itertools.product(grid.levels, grid.gaps, grid.lost_patience, grid.recover_patience)]
    combos = sorted(set(combos))
    lost, recover, lp, rp = (np.array(c) for c in zip(*combos))
    tracking_on = np.zeros(len(combos))
    off_by_group: dict[str, np.ndarray] = {}
    frames_by_group: dict[str, int] = {}
    on_total = 0
    for s in sequences:
        status = replay(confidences(s, head), lost, recover, lp, rp)[:, s.judged]
        on = s.on_target[s.judged]
        tracking_on += (status & on).sum(axis=1)
        off_by_group[s.group] = off_by_group.get(s.group, 0) + (status & ~on).sum(axis=1)
        frames_by_group[s.group] = frames_by_group.get(s.group, 0) + int(s.judged.sum())
        on_total += int(on.sum())
    if each_group:
        false_share = np.max([off_by_group[g] / max(frames_by_group[g], 1) for g in off_by_group], axis=0)
    else:
        false_share = sum(off_by_group.values()) / max(sum(frames_by_group.values()), 1)
    recall = tracking_on / max(on_total, 1)
    feasible = false_share <= target
    if feasible.any():
        order = np.lexsort((lp, -recall))            # recall first, then the shorter patience
        best = next(i for i in order if feasible[i])
    else:
        best = int(np.lexsort((-recall, false_share))[0])
    lo, re, p1, p2 = combos[best]
    status = StatusConfig(round(float(lo), 4), round(float(re), 4), int(p1), int(p2), head)
    return ThresholdChoice(status, score_status(sequences, status)["all"], bool(feasible.any()), len(combos))


def format_scores(rows: dict[str, dict[str, StatusScore]], groups: Sequence[str]) -> str:
    """Markdown: one row per (variant, group) with precision, recall, false-TRACKING shares."""
    lines = ["| status | sequences | frames | on target | TRACKING precision | TRACKING recall (on-target frames) "
             "| TRACKING while off target (of all frames) | of off-target frames |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for variant, scores in rows.items():
        for g in groups:
            if g not in scores:
                continue
            s = scores[g]
            lines.append(f"| {variant} | {g} | {s.frames} | {s.on_target} | {_pct(s.precision)} | {_pct(s.recall)} "
                         f"| {_pct(s.false_tracking)} | {_pct(s.false_tracking_of_off)} |")
    return "\n".join(lines)


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f} %"


ProgressLog = Callable[[str], None]
