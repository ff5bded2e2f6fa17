"""``ckd calibrate``: fit the target status of a checkpoint, or measure it (``--report``).

Fit (writes ``<checkpoint name>.status.yaml`` beside the checkpoint unless ``--output`` says otherwise):

  ckd calibrate --seeds 200000:200040 --target-false-tracking 0.03

tracks synthetic sequences (every condition of ``ckd_ros.data.synthetic``, seeds disjoint from the
embedded model's training seeds < 100000 and from the held-out seeds 100000-100031 the report uses) and
any ``--sequence`` folders with ground truth, fits the logistic confidence head on "IoU >= 0.3", then picks
the thresholds and patience with the highest TRACKING recall whose share of frames TRACKING while off
target stays within ``--target-false-tracking``.

Report (before = the uncalibrated raw-peak status, after = the calibration):

  ckd calibrate --report --seeds 100000:100032 --sequence ../shared/data/vtuav_bus1

prints per-frame precision / recall of TRACKING against "IoU >= 0.3" and the share of frames TRACKING
while off target, per condition, over all synthetic sequences and per folder (annotated frames only).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ckd_ros.data import CONDITIONS, SyntheticConfig, generate_sequence, open_sequence
from ckd_ros.tracking import StatusConfig, TrackerSpec, build_tracker
from ckd_ros.tracking.calibration import (StatusCalibration, checkpoint_calibration_path, file_sha256,
                                          load_for_checkpoint, save_calibration)

from .status_fit import (ON_TARGET_IOU, TrackedSequence, choose_thresholds, fit_head, format_scores,
                         load_record, save_record, score_status, track_and_record)


DEFAULT_FIT_SEEDS = "200000:200040"      # disjoint from training (< 100000) and from the report's seeds
DEFAULT_REPORT_SEEDS = "100000:100032"


def _seeds(text: str) -> list[int]:
    try:
        if ":" in text:
            a, b = text.split(":")
            seeds = list(range(int(a), int(b)))
        else:
            seeds = [int(s) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be a:b or a comma list of integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seeds in {text!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ckd calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="", help="checkpoint to calibrate; empty = the embedded model")
    p.add_argument("--num-heads", type=int, help="attention heads, for checkpoints without an embedded config")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seeds", type=_seeds, default=None,
                   help="synthetic scene seeds, a:b or a,b,c (default 200000:200040 to fit, 100000:100032 "
                        "with --report)")
    p.add_argument("--conditions", default=",".join(CONDITIONS), help="synthetic conditions ('' for none)")
    p.add_argument("--frames", type=int, default=100, help="frames per synthetic sequence")
    p.add_argument("--sequence", action="append", default=[], metavar="DIR",
                   help="a sequence folder with ground truth (any `ckd track` layout; repeatable)")
    p.add_argument("--target-false-tracking", type=float, default=0.03,
                   help="largest share of frames TRACKING while off target (IoU < 0.3) to allow (0.03)")
    p.add_argument("--each-condition", action="store_true",
                   help="hold the false-TRACKING target in every condition / folder, not over all frames")
    p.add_argument("--output", help="calibration file to write (default: beside the checkpoint)")
    p.add_argument("--report", action="store_true", help="measure before / after instead of fitting")
    p.add_argument("--calibration", action="append", default=[],
                   help="with --report: a calibration to measure (repeatable; default: the checkpoint's own)")
    p.add_argument("--record", metavar="FILE.npz", help="also save the tracked sequences' features here")
    p.add_argument("--from-record", metavar="FILE.npz",
                   help="fit / report on sequences saved with --record instead of tracking them again (same "
                        "checkpoint; the file says which seeds and folders it holds)")
    p.add_argument("--json", help="also write the numbers here")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--quiet", action="store_true")
    return p


@dataclass(frozen=True)
class Collected:
    """Tracked sequences and what they are (the command line's, or a record's, which says it itself)."""

    sequences: list[TrackedSequence]
    seeds: list[int]
    conditions: list[str]
    frames: int
    folders: list[str]
    tracking_seconds: float | None     # time spent tracking them (None: not kept by an older record)

    def meta(self, checkpoint_sha256: str) -> dict:
        return {"checkpoint_sha256": checkpoint_sha256, "seeds": self.seeds, "conditions": self.conditions,
                "frames": self.frames, "sequences": self.folders, "tracking_seconds": self.tracking_seconds}


def collect(args: argparse.Namespace, default_seeds: str, log) -> Collected:
    """Track every requested sequence once with the status head off (features do not depend on it), or read
    them from ``--from-record``."""
    checkpoint_sha = file_sha256(TrackerSpec(checkpoint=args.checkpoint or None).checkpoint_path)
    if args.from_record:
        sequences, meta = load_record(args.from_record)
        if meta.get("checkpoint_sha256") != checkpoint_sha:
            raise ValueError(f"{args.from_record} was recorded with another checkpoint than "
                             f"{args.checkpoint or 'the embedded model'}")
        log(f"{args.from_record}: {len(sequences)} recorded sequences")
        return Collected(sequences, meta["seeds"], meta["conditions"], meta["frames"], meta["sequences"],
                         meta.get("tracking_seconds"))
    t0 = time.time()
    seeds = args.seeds or _seeds(default_seeds)
    conditions = [c for c in args.conditions.split(",") if c]
    sequences = _track_all(args, seeds, conditions, log)
    done = Collected(sequences, seeds, conditions, args.frames, [str(f) for f in args.sequence],
                     round(time.time() - t0, 1))
    if args.record:
        save_record(args.record, sequences, done.meta(checkpoint_sha))
        log(f"recorded {len(sequences)} sequences -> {args.record}")
    return done


def _track_all(args: argparse.Namespace, seeds: list[int], conditions: list[str], log) -> list[TrackedSequence]:
    tracker = build_tracker(TrackerSpec(checkpoint=args.checkpoint or None, device=args.device,
                                        num_heads=args.num_heads, calibration="none"))
    config = SyntheticConfig(num_frames=args.frames)
    out = []
    for condition in conditions:
        for seed in seeds:
            seq = generate_sequence(seed, condition, config=config)
            out.append(track_and_record(tracker, zip(seq.rgb, seq.thermal), seq.boxes[0], seq.boxes,
                                        seq.name, condition))
            log(f"{seq.name}: {out[-1].on_target.mean():.2f} of frames on target")
    for folder in args.sequence:
        seq = open_sequence(folder)
        if seq.ground_truth is None or seq.init_box is None:
            raise ValueError(f"{folder}: no ground truth; calibration and its report need annotated sequences")
        out.append(track_and_record(tracker, ((f.rgb, f.thermal) for f in seq), seq.init_box, seq.ground_truth,
                                    seq.name, seq.name))
        rec = out[-1]
        log(f"{seq.name}: {int(rec.judged.sum())} annotated frames, {int(rec.on_target[rec.judged].sum())} on target")
    if not out:
        raise ValueError("nothing to track: give synthetic --conditions and --seeds, or --sequence folders")
    return out


def _seed_range(seeds: list[int]) -> str:
    return f"{seeds[0]}..{seeds[-1]} ({len(seeds)})" if seeds else "none"


def _without_record(argv: list[str]) -> list[str]:
    """The command line without --record / --from-record: a record holds exactly the sequences the other
    arguments name, so the fit is the same either way and the stored command stays one anyone can rerun."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--record", "--from-record"):
            skip = True
        elif not a.startswith(("--record=", "--from-record=")):
            out.append(a)
    return out


def fit(args: argparse.Namespace, log) -> Path:
    if not 0.0 < args.target_false_tracking < 1.0:
        raise ValueError(f"--target-false-tracking must be in (0, 1), got {args.target_false_tracking}")
    spec = TrackerSpec(checkpoint=args.checkpoint or None)
    checkpoint = spec.checkpoint_path
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    output = Path(args.output) if args.output else checkpoint_calibration_path(checkpoint)
    data = collect(args, DEFAULT_FIT_SEEDS, log)
    sequences, seeds = data.sequences, data.seeds
    head = fit_head(sequences)
    choice = choose_thresholds(sequences, head, args.target_false_tracking,
                               each_group=args.each_condition)
    if not choice.feasible:
        log(f"WARNING: no setting reaches a false-TRACKING share of {args.target_false_tracking:.3f} on the fitting "
            f"sequences; writing the lowest found ({choice.score.false_tracking:.3f})")
    scores = score_status(sequences, choice.status)
    command = "ckd calibrate " + " ".join(_without_record(sys.argv[2:] if args._argv is None else args._argv))
    calibration = StatusCalibration(
        choice.status, checkpoint.name, file_sha256(checkpoint), args.target_false_tracking,
        fitted_on={"synthetic_conditions": data.conditions, "synthetic_seeds": _seed_range(seeds),
                   "frames": data.frames,
                   "target_holds_in": "each condition" if args.each_condition else "all frames",
                   "sequences": data.folders, "on_target": f"IoU >= {ON_TARGET_IOU}",
                   "judged_frames": scores["all"].frames, "command": command,
                   "tracking_seconds": data.tracking_seconds},
        measured={k: v.as_dict() for k, v in scores.items()})
    save_calibration(output, calibration, command)
    print(format_scores({"calibrated (fitting sequences)": scores}, list(scores)))
    s = choice.status
    print(f"\nconfidence head on {len(s.head.features)} features; LOST after {s.lost_patience} frames below "
          f"{s.lost_threshold:.3f}, TRACKING again after {s.recover_patience} frames at or above "
          f"{s.recover_threshold:.3f} -> {output}")
    return output


def report(args: argparse.Namespace, log) -> dict:
    variants = {"before (raw peak 0.25 / 0.35)": StatusConfig()}
    for given in args.calibration or [""]:
        spec = TrackerSpec(checkpoint=args.checkpoint or None, calibration=given or None)
        path = spec.calibration_path()
        if path is None:
            raise ValueError(f"no calibration for {spec.checkpoint_path}: give --calibration FILE or run "
                             "`ckd calibrate`")
        variants[f"after ({path.name})"] = load_for_checkpoint(path, spec.checkpoint_path).status
    data = collect(args, DEFAULT_REPORT_SEEDS, log)
    sequences = data.sequences
    rows = {key: score_status(sequences, status) for key, status in variants.items()}
    groups = data.conditions + (["all"] if data.conditions else [])
    synthetic = [s for s in sequences if s.group in groups]
    if synthetic:   # 'all' covers the synthetic sequences only; folders are rows of their own
        for key, status in variants.items():
            rows[key]["all"] = score_status(synthetic, status)["all"]
    groups += [s.group for s in sequences if s.group not in groups]
    print(format_scores(rows, groups))
    return {"calibrations": list(variants)[1:], "seeds": _seed_range(data.seeds),
            "rows": {k: {g: v.as_dict() for g, v in r.items()} for k, r in rows.items()}}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args._argv = argv
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        if args.report:
            res = report(args, log)
            if args.json:
                Path(args.json).write_text(json.dumps(res, indent=1))
        else:
            fit(args, log)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"ckd calibrate: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
