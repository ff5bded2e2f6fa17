"""`ckd train`: CKD training from a YAML config, on one device or many (launch under torchrun for DDP).

Examples:
  ckd train --config configs/demo_small.yaml
  torchrun --nproc_per_node 2 -m ckd_ros.training.cli --config configs/paper.yaml --set data.root=/data/LasHeR
"""
from __future__ import annotations

import argparse
import sys
import time

from .config import load_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ckd train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training YAML (see configs/)")
    p.add_argument("--output", help="output folder (checkpoints/, tensorboard/); overrides output_dir")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--resume", action="store_true", help="continue from <output>/checkpoints/last.pth.tar")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.epochs=5 --set data.root=/data/LasHeR")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    args = p.parse_args(argv)
    overrides = list(args.set)
    if args.output:
        overrides.append(f"output_dir={args.output}")
    try:
        cfg = load_config(args.config, overrides)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"ckd train: {e}", file=sys.stderr)
        return 2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from .trainer import Trainer

    try:
        trainer = Trainer(cfg, device=args.device, resume=args.resume)
    except ValueError as e:  # e.g. a resume whose runs are not at the same epoch
        print(f"ckd train: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        last = trainer.train()
    finally:
        trainer.close()
    if trainer.dist.main:
        print(f"training finished in {time.time() - t0:.0f} s; last checkpoint: {last}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
