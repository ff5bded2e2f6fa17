"""The CKD network as an ONNX graph: ``ckd export --checkpoint F --format onnx [--ce off|mce] -o model.onnx``.

The graph is the exact forward (both students, candidate elimination, head) for batch 1 with named inputs
``template_rgb, template_tir, search_rgb, search_tir`` and outputs ``score_map, size_map, offset_map,
pred_boxes`` (plus ``ce_kept_<i>``, the kept global search indices of each elimination layer). The template
mask of candidate elimination is part of the graph (the tracker always passes the same one), so it is no
input; the metadata says which. The model config, the mask and the measured deviation are stored as
metadata (``ckd.*`` keys), so that a back end rebuilds the tracker's view of the network from the file alone.

Before anything is written the graph is run (ONNX Runtime, else OpenVINO) on two seeded inputs, the one it
was traced with and a fresh one, and compared with the PyTorch maps: a data-dependent step recorded as a
constant (the token selection) would pass the first and fail the second.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from .ckd_net import CKDNet
from .config import ModelConfig
from .mce import ctr_point_mask

INPUT_NAMES: tuple[str, ...] = ("template_rgb", "template_tir", "search_rgb", "search_tir")
MAP_NAMES: tuple[str, ...] = ("score_map", "size_map", "offset_map")
OUTPUT_NAMES: tuple[str, ...] = MAP_NAMES + ("pred_boxes",)
TEMPLATE_MASKS: tuple[str, ...] = ("none", "ctr_point")
OPSET = 17  # LayerNormalization is one op from 17 on: the fp16 graph keeps it, whole, in float32
FORMAT_VERSION = "1"
DEFAULT_TOLERANCE = 1e-4
CHECK_SEEDS = (2025, 2026)


class ExportError(RuntimeError):
    """The network cannot be exported, or its export does not reproduce PyTorch; the message says why."""


@dataclass(frozen=True)
class OnnxMetadata:
    """What a back end needs to know about an exported graph (stored as ``ckd.*`` metadata properties)."""

    config: ModelConfig
    template_mask: str                    # none | ctr_point: the candidate-elimination template mask in the graph
    outputs: tuple[str, ...]
    max_deviation: float                  # max |ONNX - PyTorch| over the maps, measured at export
    source: str = ""                      # the checkpoint it came from, for people reading the file

    def to_props(self) -> dict[str, str]:
        return {"ckd.format_version": FORMAT_VERSION, "ckd.config": json.dumps(self.config.to_dict()),
                "ckd.template_mask": self.template_mask, "ckd.outputs": ",".join(self.outputs),
                "ckd.max_deviation": repr(self.max_deviation), "ckd.source": self.source}

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "the ONNX file") -> "OnnxMetadata":
        if "ckd.config" not in props:
            raise ExportError(f"{where} carries no ckd.config metadata: it was not written by `ckd export` "
                              f"(found keys {sorted(props)})")
        if props.get("ckd.format_version") != FORMAT_VERSION:
            raise ExportError(f"{where}: export format {props.get('ckd.format_version')!r}, this package reads "
                              f"{FORMAT_VERSION!r}; export the checkpoint again")
        try:
            config = ModelConfig.from_dict(json.loads(props["ckd.config"]))
        except (TypeError, ValueError) as e:
            raise ExportError(f"{where}: invalid ckd.config metadata: {e}") from e
        mask = props.get("ckd.template_mask", "none")
        if mask not in TEMPLATE_MASKS:
            raise ExportError(f"{where}: ckd.template_mask {mask!r} is not one of {TEMPLATE_MASKS}")
        return cls(config=config, template_mask=mask, outputs=tuple(props.get("ckd.outputs", "").split(",")),
                   max_deviation=float(props.get("ckd.max_deviation", "nan")), source=props.get("ckd.source", ""))


@dataclass
class ExportResult:
    onnx_bytes: bytes
    metadata: OnnxMetadata
    deviations: dict[str, float] = field(default_factory=dict)   # per output, max over the check inputs
    checked_with: str = ""
    sha256: str = ""


def template_mask_name(config: ModelConfig, use_mask: bool | None = None) -> str:
    """The mask the tracker passes for ``config``: the centre token when elimination is on (or when asked)."""
    use = bool(config.ce_loc) if use_mask is None else use_mask
    return "ctr_point" if use else "none"


def output_names(config: ModelConfig) -> tuple[str, ...]:
    # one kept-index output per layer that really eliminates (a keep ratio of 1 selects nothing)
    return OUTPUT_NAMES + tuple(f"ce_kept_{i}" for i in range(sum(r < 1.0 for r in config.ce_keep_ratio)))


class _Traced(nn.Module):
    """CKDNet's forward with the template mask fixed and the outputs as a flat tuple in OUTPUT order."""

    def __init__(self, net: CKDNet, mask: torch.Tensor | None) -> None:
        super().__init__()
        self.net = net
        self.mask = mask

    def forward(self, template_rgb: torch.Tensor, template_tir: torch.Tensor, search_rgb: torch.Tensor,
                search_tir: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(template_rgb, template_tir, search_rgb, search_tir, ce_template_mask=self.mask)
        return tuple(out[k] for k in OUTPUT_NAMES) + tuple(out.get("ce_kept", ()))


def seeded_inputs(config: ModelConfig, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sides = [config.template_size] * 2 + [config.search_size] * 2
    return [torch.randn((1, 3, s, s), generator=g) for s in sides]


def _refusal(net: CKDNet) -> str | None:
    if tuple(net.head_students) != (True, True):
        return ("the network feeds only one student to the head (head_students is a diagnostic, not a tracking "
                "mode); reset head_students to (True, True) before exporting")
    c = net.config
    counts = c.search_tokens_per_stage()
    if c.ce_enabled and counts[-1] < 1:
        return f"candidate elimination keeps no search token ({counts})"
    return None


def _cpu_float(net: CKDNet) -> CKDNet:
    """``net`` itself when it is a float32 CPU network, else a copy that is (the caller's stays as it was)."""
    p = next(net.parameters())
    if p.device.type != "cpu" or p.dtype != torch.float32:
        net = copy.deepcopy(net).float().cpu()
    return net.eval()


def trace_onnx(net: CKDNet, template_mask: str) -> bytes:
    """The traced graph (no check). Keep counts are static: ceil(ratio * n) of a fixed 256-token grid."""
    problem = _refusal(net)
    if problem:
        raise ExportError(f"cannot export: {problem}")
    if template_mask not in TEMPLATE_MASKS:
        raise ValueError(f"template_mask must be one of {TEMPLATE_MASKS}, got {template_mask!r}")
    net = _cpu_float(net)
    mask = ctr_point_mask(net.config) if template_mask == "ctr_point" else None
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter: the graph has no dynamic shapes, and it needs no onnxscript; its tracer
        # warnings are about the shape checks in forward, which are constants for batch 1
        warnings.simplefilter("ignore")
        torch.onnx.export(_Traced(net, mask).eval(), tuple(seeded_inputs(net.config, CHECK_SEEDS[0])), buf,
                          dynamo=False, opset_version=OPSET, input_names=list(INPUT_NAMES),
                          output_names=list(output_names(net.config)), do_constant_folding=True)
    return buf.getvalue()


def _with_metadata(onnx_bytes: bytes, props: dict[str, str]) -> bytes:
    try:
        import onnx
    except ImportError as e:
        raise ExportError("writing the model config into the ONNX file needs the onnx package: "
                          "pip install onnx") from e
    model = onnx.load_model_from_string(onnx_bytes)
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.doc_string = "CKD RGB-thermal tracking network (ckd_ros), exported by `ckd export`"
    return model.SerializeToString()


def read_metadata(onnx: bytes | str | os.PathLike) -> OnnxMetadata:
    """The ``ckd.*`` metadata of an exported file (or its bytes)."""
    try:
        import onnx as onnx_pkg
    except ImportError as e:
        raise ExportError("reading an ONNX file's metadata needs the onnx package: pip install onnx") from e
    where = "the ONNX bytes" if isinstance(onnx, bytes) else str(onnx)
    try:
        model = onnx_pkg.load_model_from_string(onnx) if isinstance(onnx, bytes) else \
            onnx_pkg.load_model(str(onnx), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises its own types for damaged files
        raise ExportError(f"{where} is not a readable ONNX model: {type(e).__name__}: {e}") from e
    return OnnxMetadata.from_props({p.key: p.value for p in model.metadata_props}, where)


def _runner_for_check(onnx_bytes: bytes) -> tuple[str, Callable[[dict], list]]:
    from . import backends

    for name in ("onnxruntime", "openvino"):
        if backends.package_error(name) is None:
            run = backends.cpu_runner(name, onnx_bytes)
            return name, run
    raise ExportError("checking the export against PyTorch needs an ONNX runtime: pip install onnxruntime "
                      "(or openvino)")


def export_network(net: CKDNet, template_mask: str | None = None, tolerance: float = DEFAULT_TOLERANCE,
                   source: str = "", log: Callable[[str], None] | None = None) -> ExportResult:
    """Trace ``net`` (its current elimination schedule), run the graph next to PyTorch on two inputs and
    return the graph with metadata; raises ExportError when any map deviates by more than ``tolerance``."""
    net = _cpu_float(net)
    config = net.config
    mask_name = template_mask or template_mask_name(config)
    raw = trace_onnx(net, mask_name)
    checked_with, run = _runner_for_check(raw)
    names = output_names(config)
    mask = ctr_point_mask(config) if mask_name == "ctr_point" else None
    deviations: dict[str, float] = {k: 0.0 for k in OUTPUT_NAMES}
    kept_agree = True
    for seed in CHECK_SEEDS:
        inputs = seeded_inputs(config, seed)
        with torch.no_grad():
            ref = _Traced(net, mask)(*inputs)
        got = run({k: v.numpy() for k, v in zip(INPUT_NAMES, inputs)})
        for name, r, o in zip(names, ref, got):
            if name in deviations:
                deviations[name] = max(deviations[name], float((torch.from_numpy(o) - r).abs().max()))
            else:
                kept_agree &= set(o.ravel().tolist()) == set(r.numpy().ravel().tolist())
    max_dev = max(deviations[k] for k in MAP_NAMES)
    if log:
        log(f"export check ({checked_with}, 2 seeded inputs): max |ONNX - PyTorch| over the maps {max_dev:.3g}"
            + (f"; kept token sets {'equal' if kept_agree else 'DIFFER'}" if config.ce_enabled else ""))
    if not max_dev <= tolerance:
        hint = (" Candidate elimination selects tokens by data; a graph that recorded the selection as a "
                "constant fails on the second input." if config.ce_enabled else "")
        raise ExportError(f"refusing the export: it deviates from the PyTorch maps by {max_dev:.3g} > "
                          f"{tolerance:g} ({deviations}).{hint}")
    meta = OnnxMetadata(config=config, template_mask=mask_name, outputs=names, max_deviation=max_dev, source=source)
    data = _with_metadata(raw, meta.to_props())
    return ExportResult(data, meta, deviations, checked_with, hashlib.sha256(data).hexdigest())


def write_atomically(data: bytes, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def apply_ce_choice(net: CKDNet, ce: str) -> None:
    """``checkpoint``: as stored; ``off``: none; ``mce``: the paper's placement (1/4, 1/2, 3/4 of the depth,
    keeping 70 %)."""
    if ce == "off":
        net.set_ce((), ())
    elif ce == "mce":
        net.set_ce(net.config.mce_layers(), 0.7)
    elif ce != "checkpoint":
        raise ValueError(f"--ce must be checkpoint, off or mce, got {ce!r}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ckd export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="", help="CKD checkpoint; empty = the embedded demonstration model")
    ap.add_argument("--format", default="onnx", choices=["onnx"], help="output format (onnx)")
    ap.add_argument("--ce", default="checkpoint", choices=["checkpoint", "off", "mce"],
                    help="candidate elimination in the graph: as stored, off, or the paper's MCE")
    ap.add_argument("--num-heads", type=int, default=None, help="for checkpoints without an embedded config")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                    help="largest accepted |ONNX - PyTorch| over the maps (default 1e-4)")
    ap.add_argument("-o", "--output", required=True, help="ONNX file to write")
    args = ap.parse_args(argv)
    from .checkpoint import CheckpointError, load_checkpoint
    from .default import default_checkpoint_path

    source = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path()
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    try:
        net = load_checkpoint(source, num_heads=args.num_heads)
        apply_ce_choice(net, args.ce)
        result = export_network(net, tolerance=args.tolerance, source=str(source), log=log)
    except (CheckpointError, ExportError, ValueError) as e:
        print(f"ckd export: error: {e}", file=sys.stderr)
        return 2
    out = write_atomically(result.onnx_bytes, args.output)
    c = result.metadata.config
    print(f"wrote {out} ({len(result.onnx_bytes) / 2 ** 20:.1f} MiB, sha256 {result.sha256[:12]}): embed "
          f"{c.embed_dim}, depth {c.depth}, candidate elimination at {list(c.ce_loc)}, template mask "
          f"{result.metadata.template_mask}; max deviation from PyTorch {result.metadata.max_deviation:.3g} "
          f"({result.checked_with})")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ExportError", "ExportResult", "OnnxMetadata", "export_network", "trace_onnx", "read_metadata",
           "write_atomically", "apply_ce_choice", "template_mask_name", "output_names", "INPUT_NAMES",
           "OUTPUT_NAMES", "MAP_NAMES"]
