"""What the fp16 graph (the one a TensorRT fp16 engine is built from) computes, measured on the CPU.

For the embedded model and the paper-size network (seeded weights, as `ckd bench`), CE off and MCE: the
checked float32 export, its float16-products rewrite (ckd_ros/model/fp16_graph.py), and the rewrite run
under ONNX Runtime and OpenVINO on fresh seeded inputs against the float32 PyTorch forward: largest map
deviation, whether the kept token sets agree, graph sizes and how many products compute in float16. A GPU
engine built from that graph should land near these deviations (its kernels differ in summation order).

    python benchmarks/fp16_graph.py [--seeds 7 8] [--skip-paper] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ckd_ros.model import CKDNet, ModelConfig, ctr_point_mask, load_default_model
from ckd_ros.model.backends import OnnxModel, backend_error, exported, load_backend
from ckd_ros.model.export import MAP_NAMES, seeded_inputs
from ckd_ros.model.fp16_graph import fp16_node_count, to_fp16_compute


def _paper_net() -> CKDNet:
    from ckd_ros.model import seeded_state_dict
    from ckd_ros.model.bench import WEIGHT_SEED
    config = ModelConfig()
    net = CKDNet(config)
    net.load_state_dict(seeded_state_dict(config, WEIGHT_SEED))
    return net.eval()


def measure(name: str, net: CKDNet, seeds: list[int], backends: list[str]) -> list[dict]:
    rows = []
    for ce in ("off", "MCE"):
        if ce == "MCE":
            net.set_ce(net.config.mce_layers(), 0.7)
        else:
            net.set_ce((), 1.0)
        mask = ctr_point_mask(net.config) if ce == "MCE" else None
        model = exported(net)
        t0 = time.perf_counter()
        half = to_fp16_compute(model.onnx_bytes)
        convert_s = time.perf_counter() - t0
        done, total = fp16_node_count(half)
        for backend in backends:
            runner = load_backend(backend, OnnxModel(half, model.metadata))
            worst, kept_equal = 0.0, True
            for seed in seeds:
                inputs = seeded_inputs(net.config, seed)
                with torch.no_grad():
                    expected = net(*inputs, ce_template_mask=mask)
                got = runner(*inputs, ce_template_mask=mask)
                worst = max([worst] + [float((got[k] - expected[k]).abs().max()) for k in MAP_NAMES])
                for j, kept in enumerate(got.get("ce_kept", [])):
                    kept_equal &= set(kept[0].tolist()) == set(expected["ce_kept"][j][0].tolist())
            rows.append(dict(model=name, ce=ce, backend=backend, max_map_deviation=worst,
                             kept_tokens_equal=kept_equal if ce == "MCE" else None, fp16_products=done,
                             products=total, fp32_graph_mib=len(model.onnx_bytes) / 2 ** 20,
                             fp16_graph_mib=len(half) / 2 ** 20, convert_s=convert_s))
            print(f"# {name}, CE {ce}, {backend}: {worst:.2e}", file=sys.stderr, flush=True)
        del model, half
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8], help="input seeds (not the export's own)")
    ap.add_argument("--skip-paper", action="store_true", help="only the embedded model")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    backends = [b for b in ("onnxruntime", "openvino") if backend_error(b, "cpu", "fp32") is None]
    if not backends:
        print("fp16_graph: neither onnxruntime nor openvino is installed", file=sys.stderr)
        return 2
    rows = measure("embedded", load_default_model(), args.seeds, backends)
    if not args.skip_paper:
        rows += measure("paper ViT-B/16 (seeded)", _paper_net(), args.seeds, backends)
    print("| model | CE | runtime | max map deviation vs float32 PyTorch | kept tokens equal | float16 products |"
          " graph MiB fp32 -> fp16 | rewrite s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        kept = "-" if r["kept_tokens_equal"] is None else ("yes" if r["kept_tokens_equal"] else "NO")
        print(f"| {r['model']} | {r['ce']} | {r['backend']} | {r['max_map_deviation']:.2e} | {kept} | "
              f"{r['fp16_products']}/{r['products']} | {r['fp32_graph_mib']:.0f} -> {r['fp16_graph_mib']:.0f} | "
              f"{r['convert_s']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"seeds": args.seeds, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
