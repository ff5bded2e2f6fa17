"""Where the time of one CKD training step goes on this machine: rendering the pairs, and the network step
(forward, losses, backward, AdamW) in float32 against bfloat16 autocast (`amp: true`).

    python benchmarks/train_step.py [--config configs/demo_small.yaml] [--threads 1] [--repeats 7]

Fp32 and bf16 steps alternate on the same batch so that a noisy machine slows both alike; the medians and
their ratio come from that one run. The data time is that of building one batch in the main process
(the loader's workers pay it beside the step). Also prints how far the bf16 losses are from fp32 ones.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ckd_ros.training.config import load_config
from ckd_ros.training.data import collate
from ckd_ros.training.trainer import autocast, build_dataset, build_network, build_optimizer, compute_losses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/demo_small.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.set)
    ds = build_dataset(cfg)
    ds.set_epoch(0)
    bs = cfg.optim.batch_size
    data_s = []
    for r in range(3):
        t0 = time.perf_counter()
        samples = [ds[r * bs + i] for i in range(bs)]
        batch = collate(samples)
        data_s.append(time.perf_counter() - t0)
    cpu = torch.device("cpu")
    net = build_network(cfg, log=lambda *_: None)
    opt = build_optimizer(net, cfg)
    net.train()

    def step(amp: bool) -> tuple[float, float]:
        t0 = time.perf_counter()
        with autocast(cpu, amp):
            loss, _ = compute_losses(net, batch, cfg.loss, cfg.stage)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0, float(loss.detach())

    for amp in (False, True):  # warm-up: oneDNN picks its kernels on first use
        step(amp)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for amp in (False, True):
            times[amp].append(step(amp)[0])
    # loss agreement on one state: the same forward without a step in between
    with torch.no_grad():
        lf, _ = compute_losses(net, batch, cfg.loss, cfg.stage)
        with autocast(cpu, True):
            lb, _ = compute_losses(net, batch, cfg.loss, cfg.stage)
    fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
    print(f"config {args.config}, batch {bs}, {args.threads} thread(s), {args.repeats} steps each")
    print(f"data (render + crop + augment, one batch): median {1000 * statistics.median(data_s):.0f} ms")
    print(f"step fp32: median {1000 * fp32:.0f} ms")
    print(f"step bf16 autocast: median {1000 * bf16:.0f} ms  (bf16 / fp32 = {bf16 / fp32:.2f})")
    print(f"loss fp32 {float(lf):.4f}, bf16 {float(lb):.4f} (relative difference {abs(float(lb) - float(lf)) / abs(float(lf)):.1e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
