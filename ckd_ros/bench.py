"""Benchmark of the CKD network forward (batch 1): ``python -m ckd_ros.bench`` / ``ckd bench``.

Measures, in one run: the fp32 2048x2048 matmul rate of this machine, then the paper network (ViT-B/16,
weights regenerated from the reference seed, no file needed) with candidate elimination off and with MCE,
for the exact path and every fast path that applies to the device. Prints median / p90 latency, FPS, peak
memory, GFLOP/s, the ratio to the matmul rate, each path's deviation from the exact float32 maps, and the
ratios MCE / CE-off and path / exact.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from ckd_ros.model import CKDNet, ModelConfig, ctr_point_mask, seeded_state_dict
from ckd_ros.model.fast import optimize
from ckd_ros.model.flops import forward_flops

WEIGHT_SEED, INPUT_SEED = 2024, 2025  # the reference vectors' ViT-B seeds (WEIGHTS.md)


@dataclass
class Row:
    path: str
    ce: str
    median_ms: float
    p90_ms: float
    fps: float
    gflop: float
    gflops: float
    vs_matmul: float
    peak_mib: float
    max_dev_maps: float  # max |Δ| over score/size/offset maps vs the exact float32 forward
    max_dev_box_px: float  # max |Δ| of pred_boxes in pixels of the 256-px search crop
    iters: int
    extra: dict = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_kib(field_name: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak(device: torch.device) -> float:
    """Reset the peak-memory counter; returns the current level (MiB) to subtract."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2 ** 20
    try:  # Linux: writing 5 resets VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _rss_kib("VmRSS") / 1024


def _peak(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return _rss_kib("VmHWM") / 1024


def time_fn(fn: Callable[[], object], device: torch.device, iters: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def p90(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, math.ceil(0.9 * len(s)) - 1)]


def matmul_rate(device: torch.device, iters: int) -> float:
    """Median GFLOP/s of a 2048x2048 float32 matmul."""
    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    times = time_fn(lambda: a @ b, device, iters, warmup=2)
    return 2 * 2048 ** 3 / statistics.median(times) / 1e9


def paths_for(device: torch.device) -> list[str]:
    return ["exact", "fp32", "int8", "bf16"] if device.type == "cpu" else ["exact", "fp32", "fp16", "bf16"]


def seeded_inputs(config: ModelConfig, device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(INPUT_SEED)
    shapes = [(1, 3, config.template_size, config.template_size)] * 2 + \
        [(1, 3, config.search_size, config.search_size)] * 2
    return [torch.randn(s, generator=g).to(device) for s in shapes]


def run(device: torch.device, iters: int, warmup: int, paths: list[str], compile: bool = False,
        config: ModelConfig | None = None, log: Callable[[str], None] = print) -> dict:
    config = config or ModelConfig()
    t0 = time.perf_counter()
    net = CKDNet(config)
    net.load_state_dict(seeded_state_dict(config, WEIGHT_SEED))
    net = net.to(device).eval()
    inputs = seeded_inputs(config, device)
    log(f"# built ViT-B CKDNet with seeded weights in {time.perf_counter() - t0:.1f} s")
    rate = matmul_rate(device, iters=max(5, iters))
    log(f"# fp32 matmul 2048x2048: {rate:.1f} GFLOP/s")
    rows: list[Row] = []
    for ce_name, cfg in (("off", config.without_ce()), ("MCE", ModelConfig.paper_mce(**{
            k: v for k, v in config.to_dict().items() if k not in ("ce_loc", "ce_keep_ratio")}))):
        net.set_ce(cfg.ce_loc, cfg.ce_keep_ratio)
        mask = ctr_point_mask(cfg, 1, device) if cfg.ce_loc else None
        with torch.inference_mode():
            ref = net(*inputs, ce_template_mask=mask)
        flop = forward_flops(cfg)
        for path in paths:
            mod = optimize(net, path, compile=compile and path != "exact",
                           compile_mode="reduce-overhead" if device.type == "cuda" else None)
            with torch.inference_mode():
                fn = lambda: mod(*inputs, ce_template_mask=mask)  # noqa: E731
                out = ref if path == "exact" else fn()  # also the first warm-up call
                dev_maps = max(float((out[k].float() - ref[k].float()).abs().max())
                               for k in ("score_map", "size_map", "offset_map"))
                dev_box = float((out["pred_boxes"].float() - ref["pred_boxes"].float()).abs().max()) * \
                    cfg.search_size
                gc.collect()
                base = _reset_peak(device)
                times = time_fn(fn, device, iters, warmup)
                peak = _peak(device) - base
            med = statistics.median(times)
            row = Row(path=path, ce=ce_name, median_ms=med * 1e3, p90_ms=p90(times) * 1e3, fps=1 / med,
                      gflop=flop / 1e9, gflops=flop / med / 1e9, vs_matmul=flop / med / 1e9 / rate,
                      peak_mib=max(0.0, peak), max_dev_maps=dev_maps, max_dev_box_px=dev_box, iters=iters)
            rows.append(row)
            log(f"# {path:>5} CE {ce_name:<3}: median {row.median_ms:.1f} ms")
            del mod
    return {"device": str(device), "device_name": device_name(device), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "matmul_gflops": rate, "rows": [asdict(r) for r in rows]}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


COLUMNS = ("path", "CE", "median ms", "p90 ms", "FPS", "GFLOP", "GFLOP/s", "x matmul", "peak MiB",
           "max dev maps", "max dev box px")


def format_table(result: dict) -> str:
    lines = [f"device: {result['device']} ({result['device_name']}), threads {result['threads']}, "
             f"torch {result['torch']}, batch 1",
             f"fp32 matmul 2048x2048: {result['matmul_gflops']:.1f} GFLOP/s", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in result["rows"]:
        lines.append(f"| {r['path']} | {r['ce']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['fps']:.2f} | "
                     f"{r['gflop']:.1f} | {r['gflops']:.1f} | {r['vs_matmul']:.3f} | {r['peak_mib']:.0f} | "
                     f"{r['max_dev_maps']:.2e} | {r['max_dev_box_px']:.2e} |")
    by = {(r["path"], r["ce"]): r for r in result["rows"]}
    lines.append("")
    lines.append("ratios (median latency):")
    for path in dict.fromkeys(r["path"] for r in result["rows"]):
        if (path, "off") in by and (path, "MCE") in by:
            lines.append(f"  {path}: MCE / CE-off = {by[(path, 'MCE')]['median_ms'] / by[(path, 'off')]['median_ms']:.3f}")
    for ce in ("off", "MCE"):
        if ("exact", ce) in by:
            for path in dict.fromkeys(r["path"] for r in result["rows"]):
                if path != "exact" and (path, ce) in by:
                    lines.append(f"  CE {ce}: {path} / exact = "
                                 f"{by[(path, ce)]['median_ms'] / by[('exact', ce)]['median_ms']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ckd bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    ap.add_argument("--short", action="store_true", help="few iterations (CI smoke run, < ~60 s on 2 cores)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per variant (default 20; short 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed iterations after the deviation check (default 2; short 0)")
    ap.add_argument("--paths", default=None,
                    help="comma list of exact,fp32,int8,bf16,fp16 (default: all that apply to the device)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the fast paths (CUDA: with CUDA graphs)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        ap.error(f"bad --device {args.device!r}: {e}")
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"ckd bench: --device {args.device} requested but CUDA is not available", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    iters = args.iters or (2 if args.short else 20)
    warmup = args.warmup if args.warmup is not None else (0 if args.short else 2)
    paths = args.paths.split(",") if args.paths else paths_for(device)
    bad = [p for p in paths if p not in ("exact", "fp32", "int8", "bf16", "fp16")]
    if bad:
        ap.error(f"unknown path(s) {bad}")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731  progress; the table goes to stdout
    result = run(device, iters, warmup, paths, compile=args.compile, log=log)
    result.update(iters=iters, warmup=warmup, short=args.short, command=" ".join(sys.argv))
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
