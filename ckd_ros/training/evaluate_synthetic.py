"""Score checkpoints on held-out synthetic sequences: success AUC per generator condition.

  python -m ckd_ros.training.evaluate_synthetic --checkpoint rgbt=ckd_ros/weights/ckd_demo_small.pth.tar \
      --checkpoint rgb=runs/rgb/ckd_demo_small.pth.tar:rgb --seeds 100000:100032 --jobs 2 --threads 1

Each `--checkpoint NAME=PATH[:MODALITY]` is tracked with the project's CKDTracker (reference arithmetic) on
every condition x seed. MODALITY (rgbt, rgb, tir) says what the network is fed, as in training: a
single-modality model gets its one modality on both inputs; fused-rgb / fused-tir run a fused model on both
images with its head seeing one student only (the other's features zeroed). `--generator KEY=VALUE` sets the
generator (a SyntheticConfig field) the models were trained for. Success: per sequence, the fraction of frames
1..N-1 whose IoU with the ground truth exceeds each threshold 0, 0.05, ..., 1 (continuous-coordinate IoU:
synthetic boxes are sub-pixel exact), averaged over thresholds (AUC), then over sequences; each mean and
each fused-minus-single margin is printed with its standard error over sequences. Seeds used for
training the embedded model are < 100000; the default evaluation seeds are not. `--jobs N` shares the
sequences among N processes (one per core on a CPU); the scores are those of one process.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ckd_ros.assignment import parse_assignment
from ckd_ros.data.synthetic import CONDITIONS, SyntheticConfig, generate_sequence
from ckd_ros.model import load_checkpoint
from ckd_ros.tracking import CKDTracker, TrackerSpec, build_tracker


THRESHOLDS = np.linspace(0.0, 1.0, 21)
# ways to run a checkpoint: both images (rgbt), one image on both inputs (rgb, tir: single-modality models),
# or both images with the head seeing one student only (fused-*: how much a fused model's head loses or gains
# by setting a modality aside)
HEAD_ONLY = {"fused-rgb": (True, False), "fused-tir": (False, True)}
MODALITIES = ("rgbt", "rgb", "tir", *HEAD_ONLY)


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-9)


def success_auc(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over thresholds 0..1 step 0.05 of the fraction of frames (after the first) with IoU > threshold."""
    iou = iou_xywh(np.asarray(pred, float)[1:], np.asarray(gt, float)[1:])
    return float(np.mean([(iou > t).mean() for t in THRESHOLDS]))


def track_sequence(tracker: CKDTracker, rgb: np.ndarray, tir: np.ndarray, boxes: np.ndarray,
                   modality: str = "rgbt") -> np.ndarray:
    def feed(i: int) -> tuple[np.ndarray, np.ndarray]:
        if modality == "rgb":
            return rgb[i], rgb[i]
        if modality == "tir":
            return tir[i], tir[i]
        return rgb[i], tir[i]

    tracker.initialize(*feed(0), tuple(float(v) for v in boxes[0]))
    out = [boxes[0].copy()]
    for i in range(1, len(boxes)):
        out.append(np.asarray(tracker.track(*feed(i)).box, float))
    return np.stack(out)


def evaluate(models: dict[str, tuple[torch.nn.Module, str]], seeds: list[int], conditions: list[str],
             config: SyntheticConfig | None = None, device: str = "cpu", log=None) -> dict:
    """{model: {condition: mean AUC, 'all': mean over every sequence}} plus per-sequence values."""
    scores = score_sequences(models, sequence_items(seeds, conditions), config, device, log)
    return summarise(scores, models, seeds, conditions)


def sequence_items(seeds: list[int], conditions: list[str]) -> list[tuple[str, int]]:
    """Every (condition, seed) sequence, in the order `summarise` reads the scores back."""
    return [(cond, seed) for cond in conditions for seed in seeds]


def score_sequences(models: dict[str, tuple[torch.nn.Module, str]], items: list[tuple[str, int]],
                    config: SyntheticConfig | None = None, device: str = "cpu", log=None) -> list[dict[str, float]]:
    """Success AUC of every model on each (condition, seed) sequence, in the order of `items`."""
    trackers = {m: build_tracker(TrackerSpec(device=device), net=net) for m, (net, _) in models.items()}
    scores = []
    for cond, seed in items:
        seq = generate_sequence(seed, cond, config=config)
        row = {m: success_auc(track_sequence(trackers[m], seq.rgb, seq.thermal, seq.boxes, modality), seq.boxes)
               for m, (_, modality) in models.items()}
        scores.append(row)
        if log:
            log(f"{seq.name}: " + ", ".join(f"{m} {v:.3f}" for m, v in row.items()))
    return scores


def summarise(scores: list[dict[str, float]], models, seeds: list[int], conditions: list[str]) -> dict:
    """Per-sequence scores in `sequence_items` order -> means, standard errors and per-sequence lists."""
    n = len(seeds)
    per_seq = {m: {c: [scores[i * n + j][m] for j in range(n)] for i, c in enumerate(conditions)} for m in models}
    table = {m: {c: float(np.mean(v)) for c, v in _with_all(d).items()} for m, d in per_seq.items()}
    sem = {m: {c: standard_error(v) for c, v in _with_all(d).items()} for m, d in per_seq.items()}
    return {"auc": table, "sem": sem, "per_sequence": per_seq, "seeds": list(seeds), "conditions": list(conditions)}


def load_models(specs: dict[str, tuple[str, str]], device: str = "cpu") -> dict[str, tuple[torch.nn.Module, str]]:
    """{name: (checkpoint path, modality)} -> {name: (network, modality)}. ``fused-rgb`` / ``fused-tir``: a
    fused model fed both images whose head sees that student only (the other's features zeroed)."""
    models = {}
    for name, (path, modality) in specs.items():
        net = load_checkpoint(path, device=device)
        if modality in HEAD_ONLY:
            net.head_students = HEAD_ONLY[modality]
        models[name] = (net, modality)
    return models


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _score_chunk(specs: dict[str, tuple[str, str]], items: list[tuple[str, int]], config: SyntheticConfig,
                 device: str, threads: int, verbose: bool) -> list[dict[str, float]]:
    """One worker process's share: loads the checkpoints itself (networks are not sent between processes)."""
    torch.set_num_threads(threads)
    return score_sequences(load_models(specs, device), items, config, device, _to_stderr if verbose else None)


def evaluate_parallel(specs: dict[str, tuple[str, str]], seeds: list[int], conditions: list[str],
                      config: SyntheticConfig | None = None, device: str = "cpu", jobs: int = 2,
                      threads: int = 1, verbose: bool = False) -> dict:
    """`evaluate` with the sequences shared among `jobs` processes of `threads` threads each. Every sequence
    is tracked exactly as in one process with the same thread count (the tracker carries no state from one
    sequence to the next), so the scores are the serial ones. `verbose`: each worker prints a line per
    sequence to stderr (in the order the workers finish them).
    On a CPU, jobs x threads should not exceed the cores: oversubscribed OpenMP threads slow everything."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if jobs < 1 or threads < 1:
        raise ValueError(f"jobs and threads must be >= 1, got {jobs} and {threads}")
    config = config or SyntheticConfig()
    items = sequence_items(seeds, conditions)
    shares = [list(range(k, len(items), jobs)) for k in range(jobs)]  # interleaved: conditions cost alike
    shares = [s for s in shares if s]
    # spawn, not fork: a forked child inherits the parent's OpenMP pool state, which can hang torch
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(shares), mp_context=ctx) as pool:
        futures = [pool.submit(_score_chunk, specs, [items[i] for i in share], config, device, threads,
                               verbose) for share in shares]
        scores: list[dict[str, float] | None] = [None] * len(items)
        for share, fut in zip(shares, futures):
            for i, row in zip(share, fut.result()):
                scores[i] = row
    return summarise(scores, specs, seeds, conditions)  # type: ignore[arg-type]


def standard_error(values) -> float:
    """Standard error of a mean over sequences. Per-sequence AUC is close to bimodal (followed to the end or
    lost early), so a handful of seeds leaves a wide one: print it next to every mean."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def _with_all(per_condition: dict[str, list[float]]) -> dict[str, list[float]]:
    return {**per_condition, "all": [x for v in per_condition.values() for x in v]}


def format_table(auc: dict[str, dict[str, float]], conditions: list[str],
                 sem: dict[str, dict[str, float]] | None = None) -> str:
    """Markdown table of mean AUC per condition, with its standard error when `sem` is given."""
    cols = list(conditions) + ["all"]
    lines = ["| model | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for m, row in auc.items():
        cells = [f"{row[c]:.3f}" + (f" ± {sem[m][c]:.3f}" if sem else "") for c in cols]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_margins(auc: dict[str, dict[str, float]], modalities: dict[str, str], conditions: list[str],
                   per_sequence: dict[str, dict[str, list[float]]] | None = None) -> str:
    """Each fused model's lead over each single-modality model and over every fused model listed after it,
    per condition (positive: the first is better). With `per_sequence`, each lead carries the standard error
    of the per-sequence differences: both models track the same sequences, so the paired error is the one
    that says whether a lead is real."""
    cols = list(conditions) + ["all"]
    fused = [m for m, mod in modalities.items() if mod == "rgbt"]
    single = [m for m, mod in modalities.items() if mod != "rgbt"]
    lines = []
    for i, f in enumerate(fused):
        for s in single + fused[i + 1:]:
            cells = []
            for c in cols:
                cell = f"{auc[f][c] - auc[s][c]:+.3f}"
                if per_sequence:
                    a, b = _with_all(per_sequence[f])[c], _with_all(per_sequence[s])[c]
                    cell += f" ± {standard_error(np.subtract(a, b)):.3f}"
                cells.append(cell)
            lines.append(f"| {f} - {s} | " + " | ".join(cells) + " |")
    if not lines:
        return ""
    return "\n".join(["| margin | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)] + lines)


def _parse_seeds(text: str) -> list[int]:
    if ":" in text:
        a, b = text.split(":")
        return list(range(int(a), int(b)))
    return [int(s) for s in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH[:MODALITY]")
    p.add_argument("--seeds", default="100000:100032", help="a:b (range) or comma list; default 100000:100032")
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch threads (per job with --jobs; default 1 there)")
    p.add_argument("--jobs", type=int, default=1,
                   help="processes sharing the sequences (scores identical to one process of the same --threads)")
    p.add_argument("--generator", action="append", default=[], metavar="KEY=VALUE",
                   help="a generator setting (SyntheticConfig field, YAML value), e.g. crossover_profile=dusk; "
                        "the models must be scored on the generator they were trained for")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    specs = {}
    for item in args.checkpoint:
        if "=" not in item:
            print(f"--checkpoint {item!r} must be NAME=PATH[:MODALITY]", file=sys.stderr)
            return 2
        name, rest = item.split("=", 1)
        path, modality = (rest.rsplit(":", 1) if rest.rsplit(":", 1)[-1] in MODALITIES
                          else (rest, "rgbt"))
        specs[name] = (path, modality)
    if args.jobs < 1:
        print(f"--jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    conditions = [c for c in args.conditions.split(",") if c]
    seeds = _parse_seeds(args.seeds)
    try:
        config = SyntheticConfig(num_frames=args.frames, **dict(parse_assignment(g, "=") for g in args.generator))
    except (TypeError, ValueError) as e:
        print(f"--generator: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    if args.jobs > 1:
        for path, _ in specs.values():  # a bad path fails here, not inside every worker
            load_checkpoint(path)
        res = evaluate_parallel(specs, seeds, conditions, config, args.device, args.jobs, args.threads or 1,
                                verbose=True)
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        res = evaluate(load_models(specs, args.device), seeds, conditions, config, args.device, log=_to_stderr)
    res["seconds"] = time.time() - t0
    res["command"] = "python -m ckd_ros.training.evaluate_synthetic " + " ".join(argv if argv is not None else sys.argv[1:])
    print(format_table(res["auc"], conditions, res["sem"]))
    margins = format_margins(res["auc"], {m: mod for m, (_, mod) in specs.items()}, conditions,
                             res["per_sequence"])
    if margins:
        print()
        print(margins)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
