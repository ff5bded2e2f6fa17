"""Training pairs: sampling (template frame, then a search frame within a maximum interval), search jitter,
augmentation shared by both modalities, crops and normalisation exactly as the tracker does them.

Every sample is a pure function of (dataset seed, epoch, index): the same index gives the same pair, crop,
augmentation and search-token mask in any process, so distributed and single-process runs see identical
global batches.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ckd_ros.data.synthetic import CONDITIONS, SyntheticConfig, SyntheticScene
from ckd_ros.tracking.geometry import sample_target

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
MODALITIES = ("rgbt", "rgb", "tir")


@dataclass
class SamplingConfig:
    """The paper's values."""

    template_factor: float = 2.0
    search_factor: float = 4.0
    template_size: int = 128
    search_size: int = 256
    max_interval: int = 200
    center_jitter: float = 3.0  # search centre offset up to +-jitter/2 * sqrt(w h)
    scale_jitter: float = 0.25  # search size * exp(N(0, 1) * jitter)
    grayscale_prob: float = 0.05
    flip_prob: float = 0.5
    brightness_jitter: float = 0.2
    mask_ratio: float = 0.25  # share of the students' search tokens masked
    # Not in the paper: share of samples whose fused head sees one student only (the other's search
    # features zeroed; which one drawn 50/50). A fused head left to itself leans on whichever modality is
    # easier to track (thermal, on the synthetic scenes) and hardly learns what the other one adds.
    modality_dropout: float = 0.0
    patch_size: int = 16
    # "rgbt": both modalities; "rgb"/"tir": single-modality baseline, both inputs are that modality's image
    modality: str = "rgbt"

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.max_interval < 0:
            raise ValueError("max_interval must be >= 0")
        if not 0.0 <= self.modality_dropout <= 1.0:
            raise ValueError(f"sampling.modality_dropout must lie in [0, 1], got {self.modality_dropout}")


def normalise(patch: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> float32 (3, H, W) with ImageNet statistics (thermal too, as in the paper)."""
    t = (patch.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(t.transpose(2, 0, 1)))


def jitter_box(box: np.ndarray, rng: np.random.Generator, center_jitter: float, scale_jitter: float) -> np.ndarray:
    w, h = box[2:] * np.exp(rng.standard_normal(2) * scale_jitter)
    max_offset = math.sqrt(max(w * h, 1e-6)) * center_jitter
    cx, cy = box[:2] + box[2:] / 2 + max_offset * (rng.random(2) - 0.5)
    return np.array([cx - w / 2, cy - h / 2, w, h])


def search_token_mask(rng: np.random.Generator, num_tokens: int, ratio: float) -> torch.Tensor:
    """Bool (num_tokens,) with exactly round(ratio * n) True positions."""
    mask = np.zeros(num_tokens, bool)
    k = int(round(ratio * num_tokens))
    if k:
        mask[rng.choice(num_tokens, k, replace=False)] = True
    return torch.from_numpy(mask)


def _augment(images: list[np.ndarray], boxes: list[np.ndarray], rng: np.random.Generator,
             cfg: SamplingConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Grayscale, brightness and horizontal flip, drawn once and applied to every image of the pair."""
    gray = rng.random() < cfg.grayscale_prob
    flip = rng.random() < cfg.flip_prob
    gain = rng.uniform(max(0.0, 1 - cfg.brightness_jitter), 1 + cfg.brightness_jitter)
    out = []
    for img in images:
        if gray:
            img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        if gain != 1.0:
            img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        if flip:
            img = np.ascontiguousarray(img[:, ::-1])
        out.append(img)
    if flip:
        W = images[0].shape[1]
        boxes = [np.array([W - b[0] - b[2], b[1], b[2], b[3]]) for b in boxes]
    return out, boxes


def make_pair(frame_t: tuple[np.ndarray, np.ndarray, np.ndarray], frame_s: tuple[np.ndarray, np.ndarray, np.ndarray],
              rng: np.random.Generator, cfg: SamplingConfig) -> dict[str, torch.Tensor]:
    """(rgb, thermal, box) of the template and search frames -> one training sample."""
    rgb_t, tir_t, box_t = frame_t
    rgb_s, tir_s, box_s = frame_s
    if cfg.modality == "rgb":
        tir_t, tir_s = rgb_t, rgb_s
    elif cfg.modality == "tir":
        rgb_t, rgb_s = tir_t, tir_s
    (rgb_t, tir_t, rgb_s, tir_s), (box_t, box_s) = _augment([rgb_t, tir_t, rgb_s, tir_s],
                                                            [np.asarray(box_t, float), np.asarray(box_s, float)],
                                                            rng, cfg)
    z_rgb, gz = sample_target(rgb_t, box_t, cfg.template_factor, cfg.template_size)
    z_tir, _ = sample_target(tir_t, box_t, cfg.template_factor, cfg.template_size, geometry=gz)
    jb = jitter_box(box_s, rng, cfg.center_jitter, cfg.scale_jitter)
    x_rgb, gx = sample_target(rgb_s, jb, cfg.search_factor, cfg.search_size)
    x_tir, _ = sample_target(tir_s, jb, cfg.search_factor, cfg.search_size, geometry=gx)
    # ground truth in the search crop, normalised to [0, 1]
    gt = np.array([(box_s[0] - gx.x1) * gx.resize_factor, (box_s[1] - gx.y1) * gx.resize_factor,
                   box_s[2] * gx.resize_factor, box_s[3] * gx.resize_factor]) / cfg.search_size
    grid = cfg.search_size // cfg.patch_size
    sample = {"template_rgb": normalise(z_rgb), "template_tir": normalise(z_tir), "search_rgb": normalise(x_rgb),
              "search_tir": normalise(x_tir), "search_box": torch.tensor(gt, dtype=torch.float32),
              "search_mask": search_token_mask(rng, grid * grid, cfg.mask_ratio)}
    if cfg.modality_dropout > 0:  # drawn last and only when enabled: earlier recipes keep their random stream
        sample["modality_keep"] = modality_keep(rng, cfg.modality_dropout)
    return sample


def modality_keep(rng: np.random.Generator, dropout: float) -> torch.Tensor:
    """(2,) float: 1 where the fused head sees the RGB / thermal student, 0 where that one is dropped."""
    keep = np.ones(2, np.float32)
    if rng.random() < dropout:
        keep[int(rng.integers(0, 2))] = 0.0
    return torch.from_numpy(keep)


def _box_ok(box: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(box)) and box[2] > 2 and box[3] > 2)


class PairDataset(Dataset):
    """Base: `samples_per_epoch` pairs per epoch, deterministic in (seed, epoch, index)."""

    def __init__(self, sampling: SamplingConfig, samples_per_epoch: int, seed: int = 0) -> None:
        self.sampling = sampling
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def span(self) -> int:
        """How many consecutive indices share rendered content (1: none; see `PairBatches`)."""
        return 1

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])


def condition_probabilities(conditions: Sequence[str], weights: Sequence[float]) -> np.ndarray | None:
    """Sampling probabilities from relative weights, one per condition; None (no weights) keeps numpy's
    uniform draw and with it the random stream of unweighted runs."""
    if not len(weights):
        return None
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != len(conditions) or not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError(f"data.condition_weights {w.tolist()} must give one non-negative weight per condition "
                         f"{list(conditions)}, not all zero")
    return w / w.sum()


def check_close_calls(prob: float, distance: float) -> None:
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"data.close_call_prob must lie in [0, 1], got {prob}")
    if not distance > 0:
        raise ValueError(f"data.close_call_distance must be > 0 target sizes, got {distance}")


class SyntheticPairDataset(PairDataset):
    """Pairs from the procedural generator.

    Rendering a frame costs far more than the network step of a small model, so consecutive indices are
    grouped in blocks: a block is one scene (seed, condition) and a handful of its frames (spanning at most
    `max_interval`), and each sample of the block draws its own template/search frames among them, its own
    jitter, augmentation and mask. `active_blocks` blocks are interleaved so a batch of consecutive indices
    mixes several scenes. A share `close_call_prob` of the blocks favours frames where a distractor comes
    within `close_call_distance` target sizes of the target. Still a pure function of (seed, epoch, index)."""

    def __init__(self, sampling: SamplingConfig, samples_per_epoch: int, seeds: Sequence[int] | range,
                 conditions: Sequence[str] = CONDITIONS, synthetic: SyntheticConfig | None = None,
                 seed: int = 0, samples_per_block: int = 16, active_blocks: int = 8,
                 frames_per_block: int = 6, condition_weights: Sequence[float] = (),
                 close_call_prob: float = 0.0, close_call_distance: float = 1.0) -> None:
        super().__init__(sampling, samples_per_epoch, seed)
        self.scene_seeds = np.asarray(list(seeds), dtype=np.int64)  # an array: drawing from a list copies it
        self.conditions = list(conditions)
        if not len(self.scene_seeds) or not self.conditions:
            raise ValueError("synthetic training needs at least one scene seed and one condition")
        self.condition_p = condition_probabilities(self.conditions, condition_weights)
        check_close_calls(close_call_prob, close_call_distance)
        self.close_call_prob, self.close_call_distance = float(close_call_prob), float(close_call_distance)
        self.synthetic = synthetic or SyntheticConfig()
        self.samples_per_block = max(1, int(samples_per_block))
        self.active_blocks = max(1, int(active_blocks))
        self.frames_per_block = max(2, int(frames_per_block))
        self._cache: dict[tuple[int, int], tuple[SyntheticScene, np.ndarray, dict]] = {}

    @property
    def span(self) -> int:
        """Consecutive indices that share the same `active_blocks` scenes."""
        return self.samples_per_block * self.active_blocks

    def block_of(self, index: int) -> int:
        return (index // self.span) * self.active_blocks + index % self.active_blocks

    def scene_plan(self, block: int) -> tuple[int, str, np.ndarray]:
        """(scene seed, condition, frame indices) of a block (renders nothing)."""
        scene_seed, condition, frames, _ = self._plan(block)
        return scene_seed, condition, frames

    def _plan(self, block: int) -> tuple[int, str, np.ndarray, SyntheticScene | None]:
        rng = np.random.default_rng([self.seed, self.epoch, 1 << 40, block])
        scene_seed = int(rng.choice(self.scene_seeds))
        condition = str(rng.choice(self.conditions, p=self.condition_p))
        n = self.synthetic.num_frames
        span = min(n - 1, self.sampling.max_interval)
        start = int(rng.integers(0, n - span))
        k = min(self.frames_per_block, span + 1)
        # close calls draw from their own stream: with close_call_prob 0, runs keep the scenes they had
        close_rng = np.random.default_rng([self.seed, self.epoch, 2 << 40, block])
        if self.close_call_prob > 0 and close_rng.random() < self.close_call_prob:
            scene = SyntheticScene(scene_seed, condition, self.synthetic)
            close = scene.distractor_distance() < self.close_call_distance
            if close.any():
                anchor = int(close_rng.choice(np.flatnonzero(close)))
                start = int(np.clip(anchor - close_rng.integers(0, span + 1), 0, n - 1 - span))
                window = np.arange(start, start + span + 1)
                weight = 1.0 + 7.0 * close[window]  # mostly close calls, some ordinary frames for contrast
                frames = close_rng.choice(window, k, replace=False, p=weight / weight.sum())
                return scene_seed, condition, np.sort(frames), scene
            return scene_seed, condition, np.sort(start + rng.choice(span + 1, k, replace=False)), scene
        return scene_seed, condition, np.sort(start + rng.choice(span + 1, k, replace=False)), None

    def _block(self, block: int) -> tuple[SyntheticScene, np.ndarray, dict]:
        key = (self.epoch, block)
        if key not in self._cache:
            if len(self._cache) >= 2 * self.active_blocks:
                self._cache.pop(next(iter(self._cache)))
            scene_seed, condition, frames, scene = self._plan(block)
            scene = scene or SyntheticScene(scene_seed, condition, self.synthetic)
            self._cache[key] = (scene, frames, {})
        return self._cache[key]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        scene, frames, rendered = self._block(self.block_of(index))
        rng = self._rng(index)
        t0, t1 = sorted(int(t) for t in rng.choice(frames, 2, replace=False))  # template first
        for t in (t0, t1):
            if t not in rendered:
                rendered[t] = scene.render(t)
        return make_pair((*rendered[t0], scene.boxes[t0]), (*rendered[t1], scene.boxes[t1]), rng, self.sampling)


class SequencePairDataset(PairDataset):
    """Pairs from benchmark folders read with `ckd_ros.data.sequences` (LasHeR, RGBT234, RGBT210, GTOT, VTUAV,
    plain): `Sequence` objects with `ground_truth` (N, 4; NaN where not annotated) and `frame(i)` (8-bit
    thermal). Frames without a valid box (absent or unannotated target) are never sampled. The search frame
    follows the template frame by at most `max_interval` frames (as in the paper)."""

    def __init__(self, sampling: SamplingConfig, samples_per_epoch: int, sequences: Sequence, seed: int = 0) -> None:
        super().__init__(sampling, samples_per_epoch, seed)
        self.sequences = list(sequences)
        self.valid = []
        for s in self.sequences:
            gt = getattr(s, "ground_truth", None)
            boxes = np.zeros((0, 4)) if gt is None else np.asarray(gt, float)
            self.valid.append(np.nonzero([_box_ok(b) for b in boxes])[0])
        self.usable = [i for i, v in enumerate(self.valid) if len(v) >= 2]
        if not self.usable:
            raise ValueError("no sequence has two frames with a visible, annotated target")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng(index)
        si = int(rng.choice(self.usable))
        seq, valid = self.sequences[si], self.valid[si]
        t0 = int(rng.choice(valid[:-1]))
        later = valid[(valid > t0) & (valid <= t0 + self.sampling.max_interval)]
        t1 = int(rng.choice(later)) if len(later) else int(valid[valid > t0][0])
        boxes = np.asarray(seq.ground_truth, float)
        return make_pair((*_frame(seq, t0), boxes[t0]), (*_frame(seq, t1), boxes[t1]), rng, self.sampling)


def _frame(seq, i: int) -> tuple[np.ndarray, np.ndarray]:
    f = seq.frame(i)
    rgb, tir = f.rgb, f.thermal
    if tir.ndim == 2:
        tir = np.repeat(tir[..., None], 3, axis=2)
    if tir.dtype != np.uint8:
        raise ValueError(f"{getattr(seq, 'name', 'sequence')}: thermal frame {i} is {tir.dtype}, training needs "
                         "8-bit images (open the benchmark with thermal_depth='8bit')")
    return rgb, tir


def modality_view(batch: dict[str, torch.Tensor], modality: str) -> dict[str, torch.Tensor]:
    """The RGB + thermal batch as a single-modality run of the same recipe sees it: both students fed the one
    modality. Exactly what that run's own dataset would have produced for the same indices (augmentation,
    jitter and masks do not depend on the pixels), so baselines can share the pairs rendered once."""
    if modality == "rgb":
        return {**batch, "template_tir": batch["template_rgb"], "search_tir": batch["search_rgb"]}
    if modality == "tir":
        return {**batch, "template_rgb": batch["template_tir"], "search_rgb": batch["search_tir"]}
    if modality != "rgbt":
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return batch


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


class PairBatches:
    """Training batches of `batch_size` consecutive pairs (the last incomplete one dropped), loaded by
    `num_workers` processes; the same batches, in the same order, whatever `num_workers` is.

    A DataLoader hands each batch to the next worker in turn. A synthetic span (the indices that share one
    set of rendered scenes) covers several batches, so every worker would render every scene of the span.
    Here a worker loads a whole span (when it is a whole number of batches) and the batches are cut from it,
    so a process renders each scene once. Under a DistributedSampler each rank still renders the scenes of
    its own, interleaved, indices."""

    def __init__(self, dataset: PairDataset, batch_size: int, num_workers: int = 0,
                 sampler: Sampler | None = None, pin_memory: bool = False) -> None:
        self.batch_size = int(batch_size)
        span = dataset.span
        fetch = span if num_workers > 1 and span > batch_size and span % batch_size == 0 else batch_size
        self.count = len(sampler if sampler is not None else dataset) // self.batch_size
        self.loader = DataLoader(dataset, batch_size=fetch, sampler=sampler, shuffle=False,
                                 num_workers=num_workers, collate_fn=collate, drop_last=False,
                                 pin_memory=pin_memory, persistent_workers=False)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for fetched in self.loader:  # every fetch but the last is a whole number of batches
            n = len(next(iter(fetched.values())))
            for i in range(0, n - self.batch_size + 1, self.batch_size):
                yield {k: v[i:i + self.batch_size] for k, v in fetched.items()}
