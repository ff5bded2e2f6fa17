"""`ckd eval`: run the tracker over a benchmark folder and write its result files.

Resumable: a sequence whose result file holds one box per frame is skipped; files are written with
tmp + rename (times first, boxes last), so a crash never leaves a half file that counts as done.
Shardable: ``--shard i/n`` takes every n-th sequence of the sorted list starting at i, so n processes
or machines with the same arguments cover the benchmark exactly once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ckd_ros.data import Sequence, SequenceFormatError, detect_layout, list_sequences, open_sequence

from .benchmarks import BenchmarkRules, SequenceTruth, get_rules, load_benchmark
from ckd_ros.data.box_files import format_boxes, read_box_file, write_text_atomic


@dataclass
class EvalConfig:
    benchmark: str
    root: Path
    out: Path
    checkpoint: Path | None = None
    device: str = "cpu"
    precision: str = "exact"
    backend: str = "torch"          # torch | onnxruntime | openvino | tensorrt (ckd_ros.model.backends)
    tracker_name: str = "CKD"
    shard: tuple[int, int] = (0, 1)
    sequences: list[str] | None = None
    max_frames: int | None = None
    overwrite: bool = False
    progress: bool = True
    # ckd_ros.tracking.TrackerConfig; None: the paper's defaults
    tracker_config: object | None = None
    # "8bit" reads thermal files as cv2.imread does, as the published results were made; "native" keeps
    # 16-bit / float thermal pixels for the tracker's gain control
    thermal_depth: str = "8bit"


@dataclass
class EvalSummary:
    ran: int = 0
    skipped: int = 0
    frames: int = 0
    seconds: float = 0.0
    sequences: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return i, n


def shard_sequences(names: list[str], shard: tuple[int, int]) -> list[str]:
    """The i-th of n interleaved shares of the sorted names (deterministic across machines)."""
    i, n = shard
    return sorted(names)[i::n]


def result_path(rules: BenchmarkRules, out: Path, tracker: str, seq: str) -> Path:
    return Path(out) / rules.result_name.format(tracker=tracker, seq=seq)


def times_path(out: Path, seq: str) -> Path:
    return Path(out) / f"{seq}_time.txt"


def is_complete(path: Path, frames: int) -> bool:
    """A result file counts as done when it holds exactly one box per frame."""
    if not path.is_file():
        return False
    try:
        return len(read_box_file(path)) == frames
    except ValueError:
        return False


def track_sequence(tracker, sequence: Sequence, init_box: np.ndarray, frames: int | None = None,
                   progress: bool = False, desc: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) and per-frame seconds (N,) of one run over the first ``frames`` frames (all when None);
    frame 0 is the initial box as given (the toolkits score it as such)."""
    from ckd_ros.tracking.sequence_run import track_frames

    n = len(sequence) if frames is None else min(frames, len(sequence))
    # frames are read lazily, so the times measure the tracker only
    images = (sequence.frame(k) for k in range(n))
    if progress:
        from tqdm import tqdm
        images = tqdm(images, total=n, desc=desc, unit="frame", leave=False, dynamic_ncols=True)
    run = track_frames(tracker, images, [float(v) for v in init_box])
    boxes = run.as_array()
    boxes[0] = init_box
    return boxes, np.asarray(run.times, dtype=np.float64)


def build_tracker(cfg: EvalConfig):
    from ckd_ros.tracking import TrackerConfig, TrackerSpec
    from ckd_ros.tracking import build_tracker as build

    return build(TrackerSpec(checkpoint=cfg.checkpoint, device=cfg.device, precision=cfg.precision,
                             backend=cfg.backend, tracker=cfg.tracker_config or TrackerConfig()))


def benchmark_sequences(rules: BenchmarkRules, root: Path, names: list[str] | None = None,
                        thermal_depth: str = "8bit", shard: tuple[int, int] = (0, 1),
                        ) -> dict[str, tuple[Sequence, SequenceTruth]]:
    """name -> (sequence, ground truth) for this shard of a benchmark folder: ``ckd_ros.data`` finds the
    sequence folders and reads their images, ``load_benchmark`` reads the ground truth under the benchmark's
    rules. ``root`` may also be a single sequence folder. ``names`` restricts them (all must have ground
    truth); without it, folders that hold images but no ground truth are left out (no initial box)."""
    root = Path(root)
    bench = load_benchmark(rules, root)
    if _is_sequence_folder(root):
        folders = [root]
        if names is not None and list(names) != [root.name]:
            raise FileNotFoundError(f"{root} is the single sequence {root.name}, not {list(names)[:5]}")
    elif names is not None:
        folders = list_sequences(root, list(names))
    else:
        try:
            folders = list_sequences(root)
        except SequenceFormatError as e:
            raise FileNotFoundError(str(e)) from None
        folders = [f for f in folders if f.name in bench.sequences]
    missing = [f.name for f in folders if f.name not in bench.sequences]
    if missing:
        raise FileNotFoundError(f"no {rules.name} ground truth for {len(missing)} sequences under {root}: "
                                f"{missing[:5]}")
    if not folders:
        raise FileNotFoundError(f"no {rules.name} sequence under {root} has both images and ground truth")
    by_name = {f.name: f for f in folders}
    # only this shard's folders are listed (a LasHeR folder holds ~1000 images per modality)
    return {n: (open_sequence(by_name[n], thermal_depth=thermal_depth), bench.sequences[n])
            for n in shard_sequences(list(by_name), shard)}


def run_benchmark(cfg: EvalConfig, tracker=None) -> EvalSummary:
    """Run (or resume) this shard of a benchmark; returns what was done."""
    rules = get_rules(cfg.benchmark)
    todo = benchmark_sequences(rules, Path(cfg.root), cfg.sequences, cfg.thermal_depth, cfg.shard)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = EvalSummary()
    for name, (sequence, truth) in todo.items():
        frames = len(sequence) if cfg.max_frames is None else min(cfg.max_frames, len(sequence))
        path = result_path(rules, out, cfg.tracker_name, name)
        if not cfg.overwrite and is_complete(path, frames):
            summary.skipped += 1
            continue
        if tracker is None:
            tracker = build_tracker(cfg)
        init = _initial_box(truth, name)
        t0 = time.perf_counter()
        boxes, times = track_sequence(tracker, sequence, init, frames, cfg.progress, desc=name)
        summary.seconds += time.perf_counter() - t0
        write_text_atomic(times_path(out, name), "".join(f"{t:.6f}\n" for t in times))
        write_text_atomic(path, format_boxes(boxes, rules.result_layout, rules.result_separator))
        summary.ran += 1
        summary.frames += frames
        summary.sequences.append(name)
    return summary


def _initial_box(truth: SequenceTruth, name: str) -> np.ndarray:
    box = truth.visible[0]
    if not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"sequence {name}: the first ground-truth box {box.tolist()} is not a valid x y w h")
    return box


def _is_sequence_folder(folder: Path) -> bool:
    try:
        detect_layout(folder)
        return True
    except SequenceFormatError:
        return False
