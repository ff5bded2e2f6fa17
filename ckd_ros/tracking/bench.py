"""Tracker-step benchmark: how much of one ``track()`` call is not the network.

A step = thermal gain/registration + both search crops + upload/normalisation (``preprocess``), the
network forward (``network``), and Hann window + argmax + decoding + mapping back (``postprocess``).
Measured with ``TrackerConfig(profile=True)`` (the device is synchronised between stages, so the stage
times are true on CUDA too). Frames are random images of the requested sizes; the tracker is
re-initialised (untimed) before every step so the crop size stays that of the initial box.

    python -m ckd_ros.tracking.bench --model small --checkpoint ../shared/reference/ckd/ckd_small.pth.tar --num-heads 4
    python -m ckd_ros.tracking.bench --model paper --device cuda --iters 50
"""
from __future__ import annotations

import argparse
import json
import platform
import sys

import numpy as np
import torch


def _parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _spec_and_net(args: argparse.Namespace):
    """The tracker spec of the command line, and the seeded paper network when no checkpoint is wanted."""
    from ckd_ros.model import ModelConfig, seeded_model
    from ckd_ros.tracking import TrackerConfig, TrackerSpec
    spec = TrackerSpec(checkpoint=args.checkpoint or None, device=args.device, precision=args.precision,
                       num_heads=args.num_heads, tracker=TrackerConfig(profile=True))
    if args.model == "paper":
        return spec, seeded_model(ModelConfig.paper_mce() if args.mce else ModelConfig(), seed=2024)
    return spec, None


def bench_size(tracker, size: tuple[int, int], iters: int, warmup: int, thermal_dtype: str,
               seed: int = 0) -> dict:
    w, h = size
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if thermal_dtype == "uint16":
        thermal = rng.integers(20000, 24000, (h, w), dtype=np.uint16)
    else:
        thermal = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    box = [w * 0.45, h * 0.45, w * 0.1, h * 0.1]
    rows = []
    for i in range(warmup + iters):
        tracker.initialize(rgb, thermal, box)
        t = tracker.track(rgb, thermal).timing
        if i >= warmup:
            rows.append((t.preprocess_s, t.network_s, t.postprocess_s, t.total_s))
    a = np.asarray(rows) * 1000.0
    med = np.median(a, axis=0)
    return {"size": f"{w}x{h}", "thermal": thermal_dtype, "iters": iters,
            "preprocess_ms": round(float(med[0]), 3), "network_ms": round(float(med[1]), 3),
            "postprocess_ms": round(float(med[2]), 3), "step_ms": round(float(med[3]), 3),
            "min_preprocess_ms": round(float(a[:, 0].min()), 3), "min_step_ms": round(float(a[:, 3].min()), 3),
            # share from the per-step sums, so that the three parts add up to the whole
            "non_network_share": round(float(np.median((a[:, 0] + a[:, 2]) / a[:, 3])), 4)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ckd_ros.tracking.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["small", "paper"], default="small",
                   help="small: a checkpoint (default: the embedded model); paper: ViT-B/16 with seeded weights")
    p.add_argument("--checkpoint", default="")
    p.add_argument("--num-heads", type=int, default=None,
                   help="heads for a checkpoint without embedded config whose heads are not 64 wide (the reference "
                   "small model has 4)")
    p.add_argument("--precision", default="exact", help="exact | fp32 | int8 | bf16 | fp16")
    p.add_argument("--mce", action="store_true", help="paper model with candidate elimination (3,6,9; 0.7)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", default="640x512,1920x1080")
    p.add_argument("--thermal", choices=["uint8", "uint16"], default="uint8")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)

    from ckd_ros.tracking import build_tracker
    tracker = build_tracker(*_spec_and_net(args))
    cfg = tracker.net.config
    header = {"model": args.model, "embed_dim": cfg.embed_dim, "depth": cfg.depth, "ce_loc": list(cfg.ce_loc),
              "device": str(tracker.device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu": platform.processor() or platform.machine()}
    if tracker.device.type == "cuda":
        header["gpu"] = torch.cuda.get_device_name(tracker.device)
    print(json.dumps(header))
    results = []
    for text in args.sizes.split(","):
        r = bench_size(tracker, _parse_size(text), args.iters, args.warmup, args.thermal)
        results.append(r)
        print(f"{r['size']:>10} thermal {r['thermal']:<6} step {r['step_ms']:8.2f} ms = preprocess "
              f"{r['preprocess_ms']:7.2f} + network {r['network_ms']:8.2f} + postprocess {r['postprocess_ms']:6.2f}"
              f"  non-network share {100 * r['non_network_share']:5.1f}%  (median of {r['iters']}; "
              f"fastest step {r['min_step_ms']:.2f} ms, fastest preprocess {r['min_preprocess_ms']:.2f} ms)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"setup": header, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
