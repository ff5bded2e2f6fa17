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
from typing import Iterator

import numpy as np

from .benchmarks import BenchmarkRules, SequenceTruth, get_rules, load_benchmark
from .results import format_boxes, read_box_file, write_text_atomic

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# Folder names tried after the benchmark's own, so that variants (VTUAV's ir_gray, plain rgb/thermal) load.
RGB_DIRS = ("visible", "rgb", "v", "color", "RGB")
THERMAL_DIRS = ("infrared", "ir", "ir_gray", "i", "thermal", "T", "IR")


@dataclass
class EvalConfig:
    benchmark: str
    root: Path
    out: Path
    checkpoint: Path | None = None
    device: str = "cpu"
    tracker_name: str = "CKD"
    shard: tuple[int, int] = (0, 1)
    sequences: list[str] | None = None
    max_frames: int | None = None
    overwrite: bool = False
    progress: bool = True
    # ckd_ros.tracking.TrackerConfig; None: the paper's defaults
    tracker_config: object | None = None


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


def image_folders(seq_dir: Path, rules: BenchmarkRules) -> tuple[Path, Path]:
    """The (visible, thermal) image folders of a sequence folder."""
    rgb_names = (rules.image_dirs[0],) + RGB_DIRS
    tir_names = (rules.image_dirs[1],) + THERMAL_DIRS
    rgb = next((seq_dir / n for n in rgb_names if (seq_dir / n).is_dir()), None)
    tir = next((seq_dir / n for n in tir_names if (seq_dir / n).is_dir()), None)
    if rgb is None or tir is None:
        raise FileNotFoundError(f"{seq_dir}: no {'visible' if rgb is None else 'thermal'} image folder "
                                f"(looked for {', '.join(rgb_names if rgb is None else tir_names)})")
    return rgb, tir


def list_images(folder: Path) -> list[Path]:
    # file names are not uniform across LasHeR sequences (v0001.jpg, 000001.jpg, ...): sort naturally
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise FileNotFoundError(f"{folder}: no images")
    return sorted(files, key=_natural_key)


def _natural_key(p: Path) -> tuple:
    import re
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name))


def frame_pairs(seq_dir: Path, rules: BenchmarkRules) -> list[tuple[Path, Path]]:
    rgb_dir, tir_dir = image_folders(seq_dir, rules)
    rgb, tir = list_images(rgb_dir), list_images(tir_dir)
    if len(rgb) != len(tir):
        raise ValueError(f"{seq_dir}: {len(rgb)} visible but {len(tir)} thermal images")
    return list(zip(rgb, tir))


def read_pair(rgb_path: Path, tir_path: Path) -> tuple[np.ndarray, np.ndarray]:
    import cv2
    bgr = cv2.imread(str(rgb_path), cv2.IMREAD_COLOR)
    tir = cv2.imread(str(tir_path), cv2.IMREAD_COLOR)
    if bgr is None or tir is None:
        raise ValueError(f"cannot read image {rgb_path if bgr is None else tir_path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), cv2.cvtColor(tir, cv2.COLOR_BGR2RGB)


def is_complete(path: Path, frames: int) -> bool:
    """A result file counts as done when it holds exactly one box per frame."""
    if not path.is_file():
        return False
    try:
        return len(read_box_file(path)) == frames
    except ValueError:
        return False


def track_sequence(tracker, pairs: list[tuple[Path, Path]], init_box: np.ndarray,
                   progress: bool = False, desc: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) and per-frame seconds (N,) of one run; frame 0 is the initial box."""
    boxes = np.zeros((len(pairs), 4))
    times = np.zeros(len(pairs))
    for k, (rgb, tir) in enumerate(_progress(pairs, progress, desc)):
        frame_rgb, frame_tir = read_pair(rgb, tir)
        t0 = time.perf_counter()
        if k == 0:
            res = tracker.initialize(frame_rgb, frame_tir, [float(v) for v in init_box])
            boxes[k] = init_box
        else:
            res = tracker.track(frame_rgb, frame_tir)
            boxes[k] = res.box
        times[k] = time.perf_counter() - t0
    return boxes, times


def _progress(items: list, enabled: bool, desc: str) -> Iterator:
    if not enabled:
        return iter(items)
    from tqdm import tqdm
    return iter(tqdm(items, desc=desc, unit="frame", leave=False, dynamic_ncols=True))


def build_tracker(cfg: EvalConfig):
    from ckd_ros.model import load_checkpoint, load_default_model
    from ckd_ros.tracking import CKDTracker

    net = (load_checkpoint(cfg.checkpoint, device=cfg.device) if cfg.checkpoint is not None
           else load_default_model(cfg.device))
    return CKDTracker(net, cfg.tracker_config, device=cfg.device)


def run_benchmark(cfg: EvalConfig, tracker=None) -> EvalSummary:
    """Run (or resume) this shard of a benchmark; returns what was done."""
    rules = get_rules(cfg.benchmark)
    root = Path(cfg.root)
    bench = load_benchmark(rules, root, cfg.sequences)
    # a single sequence folder given as root holds its own images
    single = len(bench.sequences) == 1 and next(iter(bench.sequences)) == root.name and _has_images(root, rules)
    todo = shard_sequences(list(bench.sequences), cfg.shard)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = EvalSummary()
    for name in todo:
        truth: SequenceTruth = bench.sequences[name]
        seq_dir = root if single else root / name
        pairs = frame_pairs(seq_dir, rules)
        if cfg.max_frames is not None:
            pairs = pairs[: cfg.max_frames]
        path = result_path(rules, out, cfg.tracker_name, name)
        if not cfg.overwrite and is_complete(path, len(pairs)):
            summary.skipped += 1
            continue
        if tracker is None:
            tracker = build_tracker(cfg)
        init = _initial_box(truth, name)
        t0 = time.perf_counter()
        boxes, times = track_sequence(tracker, pairs, init, cfg.progress, desc=name)
        summary.seconds += time.perf_counter() - t0
        write_text_atomic(times_path(out, name), "".join(f"{t:.6f}\n" for t in times))
        write_text_atomic(path, format_boxes(boxes, rules.result_layout, rules.result_separator))
        summary.ran += 1
        summary.frames += len(pairs)
        summary.sequences.append(name)
    return summary


def _initial_box(truth: SequenceTruth, name: str) -> np.ndarray:
    box = truth.visible[0]
    if not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"sequence {name}: the first ground-truth box {box.tolist()} is not a valid x y w h")
    return box


def _has_images(folder: Path, rules: BenchmarkRules) -> bool:
    try:
        image_folders(folder, rules)
        return True
    except FileNotFoundError:
        return False
