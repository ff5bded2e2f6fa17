"""Benchmark of the CKD network forward (batch 1): ``python -m ckd_ros.model.bench`` / ``ckd bench``.

Measures, in one run: the fp32 2048x2048 matmul rate of this machine, then the paper network (ViT-B/16,
weights regenerated from the reference seed, no file needed) with candidate elimination off and with MCE,
for the exact path, every fast path that applies to the device and every inference back end installed
(the exported ONNX graph under ONNX Runtime and OpenVINO on the CPU; ONNX Runtime's CUDA provider and a
TensorRT fp16 engine on CUDA; ckd_ros.model.backends), all timed round-robin in one run. Prints median / p90 latency, FPS, peak
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

from ckd_ros.model import CKDNet, ModelConfig, ctr_point_mask, precision_error, seeded_state_dict
from ckd_ros.model.backends import backend_error, exported, load_backend
from ckd_ros.model.fast import build_paths, with_ce_schedule
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
    weights_mib: float
    act_peak_mib: float | None  # None: a back end's runtime allocates outside torch's view
    max_dev_maps: float  # max |Δ| over score/size/offset maps vs the exact float32 forward
    max_dev_box_px: float  # max |Δ| of pred_boxes in pixels of the 256-px search crop
    iters: int
    extra: dict = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def activation_peak_mib(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """Peak of the memory a forward allocates on top of what exists before it (activations, workspaces).

    CUDA: the caching allocator's max_memory_allocated. CPU: the profiler's allocation records (the CPU
    allocator reports each allocation on its op and each free as a [memory] event), replayed in time order;
    RSS cannot show this once malloc has cached the first call's memory."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20, result
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events = []
    for e in prof.events():
        if e.name == "[memory]":
            events.append((e.time_range.start, 1, e.cpu_memory_usage))
        elif e.self_cpu_memory_usage:
            events.append((e.time_range.start, 0, e.self_cpu_memory_usage))
    current = peak = 0
    for _, _, delta in sorted(events):
        current += delta
        peak = max(peak, current)
    return peak / 2 ** 20, result


def weights_mib(mod: torch.nn.Module) -> float:
    """Bytes of a module's state (int8 packed weights count one byte per value)."""
    def size(v: object) -> int:
        if isinstance(v, torch.Tensor):
            return v.numel() * v.element_size()
        if isinstance(v, (tuple, list)):
            return sum(size(x) for x in v)
        return 0

    seen: set[int] = set()
    total = 0
    for v in mod.state_dict(keep_vars=True).values():
        key = id(v)
        if key not in seen:
            seen.add(key)
            total += size(v)
    return total / 2 ** 20


def p90(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, math.ceil(0.9 * len(s)) - 1)]


TORCH_PATHS = ("exact", "fp32", "int8", "bf16", "fp16")
# path -> (back end, precision): the float32 graph, ONNX Runtime also with int8 weights, TensorRT as fp16 engine
BACKEND_OF = {"onnxruntime": ("onnxruntime", "fp32"), "onnxruntime-int8": ("onnxruntime", "int8"),
              "openvino": ("openvino", "fp32"), "tensorrt": ("tensorrt", "fp16")}
BACKEND_PATHS = tuple(BACKEND_OF)


def paths_for(device: torch.device) -> list[str]:
    """Torch paths for the device, then every back end that can run on it here."""
    paths = ["exact", "fp32", "int8", "bf16"] if device.type == "cpu" else ["exact", "fp32", "fp16", "bf16"]
    paths = [p for p in paths if precision_error(p, device) is None]
    return paths + [p for p, (b, prec) in BACKEND_OF.items() if backend_error(b, device, prec) is None]


def backend_variants(net: CKDNet, paths: list[str], schedules: list[tuple[str, ModelConfig]],
                     device: torch.device, log: Callable[[str], None]) -> dict[tuple[str, str], torch.nn.Module]:
    """(path, CE name) -> module: one checked export per schedule, shared by the back ends."""
    wanted = [p for p in paths if p in BACKEND_PATHS]
    out: dict[tuple[str, str], torch.nn.Module] = {}
    if not wanted:
        return out
    for ce_name, cfg in schedules:
        t0 = time.perf_counter()
        model = exported(with_ce_schedule(net, cfg), log=log)
        log(f"# exported the CE-{ce_name} graph ({len(model.onnx_bytes) / 2 ** 20:.0f} MiB) in "
            f"{time.perf_counter() - t0:.1f} s")
        for p in wanted:
            b, precision = BACKEND_OF[p]
            out[(p, ce_name)] = load_backend(b, model, device, precision,
                                             threads=torch.get_num_threads() if device.type == "cpu" else None)
        del model
    return out


def seeded_inputs(config: ModelConfig, device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(INPUT_SEED)
    shapes = [(1, 3, config.template_size, config.template_size)] * 2 + \
        [(1, 3, config.search_size, config.search_size)] * 2
    return [torch.randn(s, generator=g).to(device) for s in shapes]


def run(device: torch.device, iters: int, warmup: int, paths: list[str], compile: bool = False,
        config: ModelConfig | None = None, log: Callable[[str], None] = print) -> dict:
    """Every variant is timed round-robin (one call each per round, the matmul included) so that load from
    other processes hits all of them alike and the ratios stay meaningful on a shared machine."""
    config = (config or ModelConfig()).without_ce()
    t0 = time.perf_counter()
    net = CKDNet(config)
    net.load_state_dict(seeded_state_dict(config, WEIGHT_SEED))
    net = net.to(device).eval()
    inputs = seeded_inputs(config, device)
    base = build_paths(net, [p for p in paths if p not in BACKEND_PATHS])
    log(f"# built ViT-B CKDNet (seeded weights) and paths {paths} in {time.perf_counter() - t0:.1f} s")
    mce_cfg = config.with_ce((3, 6, 9), 0.7)
    schedules = [("off", config), ("MCE", mce_cfg)]
    backends = backend_variants(net, paths, schedules, device, log)
    variants = []  # (path, ce name, config, module, mask)
    for ce_name, cfg in schedules:
        mask = ctr_point_mask(cfg, 1, device) if cfg.ce_loc else None
        for path in paths:
            if path in BACKEND_PATHS:
                variants.append((path, ce_name, cfg, backends[(path, ce_name)], mask))
                continue
            mod = with_ce_schedule(base[path], cfg)
            if compile and path != "exact":
                mod = torch.compile(mod, mode="reduce-overhead" if device.type == "cuda" else None)
            variants.append((path, ce_name, cfg, mod, mask))
    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    calls = [lambda: a @ b] + [(lambda m=m, k=k: m(*inputs, ce_template_mask=k)) for _, _, _, m, k in variants]
    dev: dict[tuple[str, str], tuple[float, float]] = {}
    memory: dict[tuple[str, str], tuple[float, float]] = {}
    with torch.inference_mode():
        refs = {}
        for path, ce_name, cfg, mod, mask in variants:  # memory + deviation check, also the first warm-up
            peak, out = activation_peak_mib(lambda: mod(*inputs, ce_template_mask=mask), device)
            if path in BACKEND_PATHS:  # the runtime's own memory is invisible to torch: graph size, no peak
                memory[(path, ce_name)] = (backends[(path, ce_name)].graph_mib, None)
            else:
                memory[(path, ce_name)] = (weights_mib(base[path]), peak)
            if ce_name not in refs:
                refs[ce_name] = out if path == "exact" else \
                    with_ce_schedule(net, cfg)(*inputs, ce_template_mask=mask)
            ref = refs[ce_name]
            dev[(path, ce_name)] = (
                max(float((out[k].float() - ref[k].float()).abs().max()) for k in ("score_map", "size_map",
                                                                                   "offset_map")),
                float((out["pred_boxes"].float() - ref["pred_boxes"].float()).abs().max()) * cfg.search_size)
        del refs
        log(f"# deviation check done; timing {len(calls)} calls x {warmup} warm-up + {iters} rounds")
        times: list[list[float]] = [[] for _ in calls]
        gc.collect()
        for r in range(warmup + iters):
            for i, fn in enumerate(calls):
                t = time.perf_counter()
                fn()
                _sync(device)
                dt = time.perf_counter() - t
                if r >= warmup:
                    times[i].append(dt)
            if r >= warmup:
                log(f"# round {r - warmup + 1}/{iters}: " + ", ".join(f"{v[0]}/{v[1]} {times[i + 1][-1] * 1e3:.0f}"
                                                                     for i, v in enumerate(variants)) + " ms")
    rate = 2 * 2048 ** 3 / statistics.median(times[0]) / 1e9
    rows: list[Row] = []
    for i, (path, ce_name, cfg, _, _) in enumerate(variants):
        ts = times[i + 1]
        med = statistics.median(ts)
        flop = forward_flops(cfg)
        rows.append(Row(path=path, ce=ce_name, median_ms=med * 1e3, p90_ms=p90(ts) * 1e3, fps=1 / med,
                        gflop=flop / 1e9, gflops=flop / med / 1e9, vs_matmul=flop / med / 1e9 / rate,
                        weights_mib=memory[(path, ce_name)][0],
                        act_peak_mib=memory[(path, ce_name)][1], max_dev_maps=dev[(path, ce_name)][0],
                        max_dev_box_px=dev[(path, ce_name)][1], iters=iters))
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


COLUMNS = ("path", "CE", "median ms", "p90 ms", "FPS", "GFLOP", "GFLOP/s", "x matmul", "weights MiB", "act. peak MiB",
           "max dev maps", "max dev box px")


def format_table(result: dict) -> str:
    lines = [f"device: {result['device']} ({result['device_name']}), threads {result['threads']}, "
             f"torch {result['torch']}, batch 1",
             f"fp32 matmul 2048x2048: {result['matmul_gflops']:.1f} GFLOP/s", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in result["rows"]:
        lines.append(f"| {r['path']} | {r['ce']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['fps']:.2f} | "
                     f"{r['gflop']:.1f} | {r['gflops']:.1f} | {r['vs_matmul']:.3f} | {r['weights_mib']:.0f} | "
                     f"{'n/a' if r['act_peak_mib'] is None else format(r['act_peak_mib'], '.1f')} | "
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
    floors = fp32_floors(result)
    if floors:
        # A float32 runtime cannot beat the machine's GEMM rate on the network's own FLOPs: this bounds what
        # any float32 back end can win before anyone tries one, and tells a slow exact path from a slow CPU.
        lines.append("float32 floor (the network's FLOPs all at the measured matmul rate, i.e. exact's x matmul; "
                     "a float32 back end computing the same FLOPs stays above it):")
        for ce, (ms, ratio) in floors.items():
            lines.append(f"  CE {ce}: {ms:.1f} ms = {ratio:.3f} of exact")
    return "\n".join(lines)


def fp32_floors(result: dict) -> dict[str, tuple[float, float]]:
    """CE -> (ms, ratio to the exact median) of the exact path's FLOPs run entirely at the measured matmul rate."""
    floors = {}
    for r in result["rows"]:
        if r["path"] == "exact":
            ms = r["gflop"] / result["matmul_gflops"] * 1e3
            floors[r["ce"]] = (ms, ms / r["median_ms"])
    return floors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ckd bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    ap.add_argument("--short", action="store_true", help="few iterations (CI smoke run, < ~60 s on 2 cores)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per variant (default 20; short 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed iterations after the deviation check (default 2; short 0)")
    ap.add_argument("--paths", default=None,
                    help="comma list of exact,fp32,int8,bf16,fp16 and back ends onnxruntime,onnxruntime-int8,openvino,tensorrt "
                    "(default: all that apply to the device and are installed)")
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
    if args.compile and not args.short:
        warmup = max(warmup, 3)  # compiled graphs (and CUDA graphs) are recorded during the first calls
    paths = args.paths.split(",") if args.paths else paths_for(device)
    bf16_refused = None if args.paths else precision_error("bf16", device)
    if bf16_refused:
        print(f"ckd bench: bf16 left out: {bf16_refused}", file=sys.stderr)
    bad = [p for p in paths if p not in TORCH_PATHS + BACKEND_PATHS]
    if bad:
        ap.error(f"unknown path(s) {bad}")
    for p in paths:
        problem = backend_error(BACKEND_OF[p][0], device, BACKEND_OF[p][1]) if p in BACKEND_PATHS \
            else precision_error(p, device)
        if problem:
            print(f"ckd bench: {problem}", file=sys.stderr)
            return 2
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
