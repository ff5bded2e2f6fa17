"""The training loop: single process or torchrun (DistributedDataParallel), optional mixed precision,
resumable checkpoints in the official layout, TensorBoard scalars and a progress bar with the loss terms."""
from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from ckd_ros.model import ModelConfig, ctr_point_mask, save_checkpoint
from ckd_ros.model.device import precision_error

from .config import TrainConfig
from .data import PairBatches, PairDataset, SequencePairDataset, SyntheticPairDataset, modality_view
from .losses import LossWeights, content_loss, gaussian_heatmap, style_loss, tracking_loss
from .network import CKDTrainingNet, load_tracking_init


# ---------------------------------------------------------------------------------------------- one step

def compute_losses(net: nn.Module, batch: dict[str, torch.Tensor], weights: LossWeights, stage: str = "distill",
                   use_mask: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of one batch and its terms. `net` is a CKDTrainingNet (or a DDP wrapper of one)."""
    inner = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
    gt = batch["search_box"]
    heat = gaussian_heatmap(gt, inner.config.search_grid)
    if stage == "mce":
        mask = ctr_point_mask(inner.config, gt.shape[0], gt.device)
        args = (batch["template_rgb"], batch["template_tir"], batch["search_rgb"], batch["search_tir"], mask)
        out = inner.forward_mce(*args) if isinstance(inner, CKDTrainingNet) else net(*args)
        total, s = tracking_loss(out["fused"], gt, weights, heat)
        return total, {"loss": float(total.detach()), "iou": float(s["iou"]), "giou": float(s["giou"]),
                       "l1": float(s["l1"]), "focal": float(s["focal"])}
    mask = batch.get("search_mask") if use_mask else None
    out = net(batch["template_rgb"], batch["template_tir"], batch["search_rgb"], batch["search_tir"], mask,
              modality_keep=batch.get("modality_keep"))
    fused, s = tracking_loss(out["fused"], gt, weights, heat)
    tv, sv = tracking_loss(out["teacher_v"], gt, weights, heat)
    ti, si = tracking_loss(out["teacher_i"], gt, weights, heat)
    f_rgb, f_tir = out["student_feats"]
    g_rgb, g_tir = out["teacher_feats"]
    style = style_loss(f_rgb, f_tir)
    content = content_loss(f_rgb, g_rgb) + content_loss(f_tir, g_tir)
    total = fused + tv + ti + weights.style * style + weights.content * content
    stats = {"loss": float(total.detach()), "fused": float(fused.detach()), "teacher_v": float(tv.detach()), "teacher_i": float(ti.detach()),
             "style": float(style.detach()), "content": float(content.detach()), "iou": float(s["iou"]),
             "iou_v": float(sv["iou"]), "iou_i": float(si["iou"])}
    return total, stats


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision of `amp: true`: float16 (with loss scaling) on CUDA, bfloat16 on CPU."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


class _MCEWrapper(nn.Module):
    """Lets DDP wrap the stage-2 forward (DDP calls `forward`)."""

    def __init__(self, net: CKDTrainingNet) -> None:
        super().__init__()
        self.net = net
        self.config = net.config

    def forward(self, *args: Any) -> dict:
        return self.net.forward_mce(*args)


# ---------------------------------------------------------------------------------------------- setup

@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def build_dataset(cfg: TrainConfig) -> PairDataset:
    d = cfg.data
    if d.kind == "synthetic":
        lo, hi = d.synthetic_seeds
        return SyntheticPairDataset(cfg.sampling, d.samples_per_epoch, range(lo, hi), d.conditions,
                                    d.synthetic_config(), seed=d.seed, condition_weights=d.condition_weights,
                                    close_call_prob=d.close_call_prob, close_call_distance=d.close_call_distance)
    from ckd_ros.data.sequences import open_benchmark

    # the paper reads thermal as an 8-bit, 3-channel image
    seqs = open_benchmark(d.root, d.sequence_list or None, layout=d.kind, thermal_depth="8bit")
    return SequencePairDataset(cfg.sampling, d.samples_per_epoch, seqs, seed=d.seed)


def build_network(cfg: TrainConfig, log=print) -> CKDTrainingNet:
    torch.manual_seed(cfg.seed)
    mc = cfg.model_config()
    net = CKDTrainingNet(mc, share_students=cfg.share_students)
    for bb in (net.rgb_branch, net.tir_branch, net.teacher_rgb, net.teacher_tir):
        bb.set_drop_path(cfg.drop_path)
    if cfg.init and cfg.init != "scratch":
        obj = torch.load(cfg.init, map_location="cpu", weights_only=True)
        sd = obj.get("net", obj) if isinstance(obj, dict) else obj
        if any(k.startswith("rgb_branch.") for k in sd):  # a CKD checkpoint (e.g. stage 1 for stage 2)
            missing, unexpected = net.load_state_dict(sd, strict=False)
            if any(k.startswith(("rgb_branch.", "tir_branch.", "box_head.")) for k in missing):
                raise ValueError(f"{cfg.init} lacks inference keys, e.g. {missing[:3]}")
            if not any(k.startswith("teacher_") for k in sd):
                # an inference export (students and fused head only): each teacher starts as a copy of its
                # modality's student, so the content loss starts near zero instead of pulling the trained
                # students towards random features
                net.teacher_rgb.load_state_dict(net.rgb_branch.state_dict())
                net.teacher_tir.load_state_dict(net.tir_branch.state_dict())
                missing = [k for k in missing if not k.startswith(("teacher_rgb.", "teacher_tir."))]
                log(f"{cfg.init} has no teachers: teacher_rgb / teacher_tir start as copies of the students")
            log(f"initialised from CKD checkpoint {cfg.init} (missing {len(missing)}, unexpected {len(unexpected)})")
        else:
            rep = load_tracking_init(net, obj)
            log(f"initialised from tracking checkpoint {cfg.init}: {len(rep['loaded'])} tensors loaded, "
                f"{len(rep['skipped'])} left at their initialisation")
    return net


def build_optimizer(net: CKDTrainingNet, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optim
    if cfg.stage == "mce":
        for p in net.parameters():
            p.requires_grad_(False)
        for p in net.box_head.parameters():
            p.requires_grad_(True)
        groups = [{"params": list(net.box_head.parameters()), "lr": o.lr_head, "name": "head"}]
    else:
        groups = [{"params": net.head_parameters(), "lr": o.lr_head, "name": "head"},
                  {"params": net.backbone_parameters(), "lr": o.lr_backbone, "name": "backbone"}]
    for g in groups:
        g["base_lr"] = g["lr"]
    return torch.optim.AdamW(groups, weight_decay=o.weight_decay)


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    o = cfg.optim
    if o.warmup_steps and step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    if o.schedule == "cosine":
        t = min(1.0, (step - o.warmup_steps) / max(1, total - o.warmup_steps))
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


# ---------------------------------------------------------------------------------------------- loop

@dataclass
class _Run:
    """One network being trained: the RGB + thermal model, or a single-modality baseline beside it."""

    cfg: TrainConfig  # its own config (modality, output folder), as recorded in its checkpoints
    net: CKDTrainingNet
    model: nn.Module  # what the forward goes through (DDP and/or the stage-2 wrapper)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp: bool = False  # cfg.amp where this device can honour it
    writer: Any = None

    @property
    def modality(self) -> str:
        return self.cfg.sampling.modality

    @property
    def out(self) -> Path:
        return Path(self.cfg.output_dir)

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"


class Trainer:
    def __init__(self, cfg: TrainConfig, device: str | None = None, resume: bool = False) -> None:
        self.cfg = cfg
        want = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dist = init_distributed(want)
        if want.startswith("cuda"):
            idx = self.dist.local_rank if self.dist.world > 1 else (torch.device(want).index or 0)
            torch.cuda.set_device(idx)
            self.device = torch.device("cuda", idx)
        else:
            self.device = torch.device(want)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.epoch = 0
        self.step = 0
        # the baselines get the same seed, so the same initial weights: they differ from the main model only
        # in what their students see
        runs = ([cfg] if cfg.train_fused else []) + [cfg.baseline_config(m) for m in cfg.baselines]
        self.runs = [self._build_run(c) for c in runs]
        if resume:
            self._resume()
        self.dataset = build_dataset(cfg)
        self.sampler = DistributedSampler(self.dataset, self.dist.world, self.dist.rank, shuffle=False) \
            if self.dist.world > 1 else None
        self.loader = PairBatches(self.dataset, cfg.optim.batch_size, cfg.data.num_workers, self.sampler,
                                  pin_memory=self.device.type == "cuda")
        if self.dist.main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.log("tensorboard is not installed: no event files are written")
            else:
                for run in self.runs:
                    run.writer = SummaryWriter(str(run.out / "tensorboard"))

    def _build_run(self, cfg: TrainConfig) -> _Run:
        net = build_network(cfg, self.log)
        if cfg.sync_bn and self.dist.world > 1 and self.device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net.to(self.device)
        optimizer = build_optimizer(net, cfg)
        amp = cfg.amp
        refused = precision_error("bf16", self.device) if amp and self.device.type == "cpu" else None
        if refused:   # CPU amp is bfloat16: where the device rules refuse it, it would slow training down
            self.log(f"amp: true left off, training in float32: {refused}")
            amp = False
        scaler = torch.amp.GradScaler(self.device.type, enabled=amp and self.device.type == "cuda")
        model: nn.Module = _MCEWrapper(net) if cfg.stage == "mce" else net
        if self.dist.world > 1:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return _Run(cfg, net, model, optimizer, scaler, amp)

    def log(self, msg: str) -> None:
        if getattr(self, "dist", DistInfo()).main:
            print(msg, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------------------------------ state
    def _state(self, run: _Run) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "optimizer": run.optimizer.state_dict(),
                "scaler": run.scaler.state_dict(), "train_config": run.cfg.to_dict()}

    def save(self, final: bool = False) -> Path:
        """Every run's checkpoint for the current epoch; returns the first run's (the fused one if it trains)."""
        paths = []
        for run in self.runs:
            run.ckpt_dir.mkdir(parents=True, exist_ok=True)
            path = run.ckpt_dir / f"CKD_ep{self.epoch:04d}.pth.tar"
            save_checkpoint(run.net.state_dict(), path, run.net.config, **self._state(run))
            save_checkpoint(run.net.state_dict(), run.ckpt_dir / "last.pth.tar", run.net.config, **self._state(run))
            if final and run.cfg.export_inference:
                export = Path(run.cfg.export_inference)
                export = export if export.is_absolute() else run.out / export
                save_checkpoint(run.net.inference_state_dict(), export, run.net.config,
                                epoch=self.epoch, train_config=run.cfg.to_dict())
            paths.append(path)
        return paths[0]

    def _resume(self) -> None:
        found = []
        for run in self.runs:
            path = run.ckpt_dir / "last.pth.tar"
            if not path.is_file():
                found.append(None)
                continue
            obj = torch.load(path, map_location="cpu", weights_only=True)
            run.net.load_state_dict(obj["net"], strict=True)
            run.optimizer.load_state_dict(obj["optimizer"])
            if obj.get("scaler"):
                run.scaler.load_state_dict(obj["scaler"])
            found.append((int(obj["epoch"]), int(obj["step"])))
            self.log(f"resumed {path} at epoch {obj['epoch']}, step {obj['step']}")
        if all(f is None for f in found):
            self.log(f"no checkpoint at {self.runs[0].ckpt_dir / 'last.pth.tar'}: starting from the beginning")
            return
        if len(set(found)) != 1:
            # a baseline that is behind (or missing) would silently train on a different schedule
            where = {r.modality: f for r, f in zip(self.runs, found)}
            raise ValueError(f"cannot resume: the runs are at different (epoch, step): {where}")
        self.epoch, self.step = found[0]

    # ------------------------------------------------------------------------------------------ loop
    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        for batch in self.loader:
            yield {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _train_step(self, run: _Run, batch: dict[str, torch.Tensor], factor: float) -> tuple[dict[str, float], float]:
        cfg = run.cfg
        for g in run.optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor
        with autocast(self.device, run.amp):
            loss, stats = compute_losses(run.model, modality_view(batch, run.modality), cfg.loss, cfg.stage)
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"{run.modality} model: loss became {float(loss)} at step {self.step}: {stats}")
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        params = [p for g in run.optimizer.param_groups for p in g["params"]]
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip))
        run.scaler.step(run.optimizer)
        run.scaler.update()
        return stats, gnorm

    def train(self) -> Path | None:
        cfg = self.cfg
        steps_per_epoch = len(self.loader)
        total = steps_per_epoch * cfg.optim.epochs
        use_bar = self.dist.main and sys.stderr.isatty()
        last = None
        for run in self.runs:
            run.net.train()
            if cfg.stage == "mce":  # frozen backbones keep eval behaviour; only the fused head trains
                for m in (run.net.rgb_branch, run.net.tir_branch, run.net.teacher_rgb, run.net.teacher_tir):
                    m.eval()
        t0 = time.time()
        while self.epoch < cfg.optim.epochs:
            self.dataset.set_epoch(self.epoch)
            if self.sampler is not None:
                self.sampler.set_epoch(self.epoch)
            bar = None
            if use_bar:
                from tqdm import tqdm

                bar = tqdm(total=steps_per_epoch, desc=f"epoch {self.epoch + 1}/{cfg.optim.epochs}",
                           dynamic_ncols=True)
            sums: list[dict[str, float]] = [{} for _ in self.runs]
            n = 0
            for batch in self._batches():
                f = lr_factor(self.step, total, cfg)
                shown: dict[str, float] = {}
                for i, run in enumerate(self.runs):
                    stats, gnorm = self._train_step(run, batch, f)
                    for k, v in stats.items():
                        sums[i][k] = sums[i].get(k, 0.0) + v
                    if run.writer is not None and (self.step + 1) % cfg.log_every == 0:
                        for k, v in stats.items():
                            run.writer.add_scalar(f"train/{k}", v, self.step + 1)
                        run.writer.add_scalar("train/grad_norm", gnorm, self.step + 1)
                        run.writer.add_scalar("train/lr_head", run.optimizer.param_groups[0]["lr"], self.step + 1)
                    shown.update(stats if self._is_fused(run) else
                                 {f"{run.modality}.iou": stats.get("iou", float("nan"))})
                self.step += 1
                n += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()}, refresh=False)
                elif self.dist.main and self.step % cfg.log_every == 0:
                    self.log(f"epoch {self.epoch + 1} step {self.step}/{total} "
                             f"({time.time() - t0:.0f} s) {self._averages(sums, n)}")
            if bar is not None:
                bar.close()
            self.epoch += 1
            if self.dist.main:
                self.log(f"epoch {self.epoch} done ({time.time() - t0:.0f} s): {self._averages(sums, n)}")
                for run, s in zip(self.runs, sums):
                    if run.writer is not None:
                        for k, v in s.items():
                            run.writer.add_scalar(f"epoch/{k}", v / max(n, 1), self.epoch)
                if self.epoch % cfg.save_every == 0 or self.epoch == cfg.optim.epochs:
                    last = self.save(final=self.epoch == cfg.optim.epochs)
        for run in self.runs:
            if run.writer is not None:
                run.writer.close()
        return last

    def _averages(self, sums: list[dict[str, float]], n: int) -> dict[str, float]:
        """The fused run's mean loss terms; a baseline's as `<modality>.<term>` (only its loss and IoU beside a
        fused run, every term when the baselines train alone)."""
        out: dict[str, float] = {}
        for run, s in zip(self.runs, sums):
            if self._is_fused(run):
                out.update({k: round(v / max(n, 1), 4) for k, v in s.items()})
            else:
                keys = ("loss", "iou") if self.cfg.train_fused else tuple(s)
                out.update({f"{run.modality}.{k}": round(s[k] / max(n, 1), 4) for k in keys if k in s})
        return out

    def _is_fused(self, run: _Run) -> bool:
        return run.cfg is self.cfg

    def close(self) -> None:
        if self.dist.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
