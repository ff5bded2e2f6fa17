"""How far each inference back end moves the tracker's boxes from the exact PyTorch tracker.

Two sequences: the reference parity sequence with the reference small model (../shared/reference/ckd; also
compared with the reference implementation's own boxes) and a synthetic sequence tracked with the embedded
model, each with candidate elimination off and with MCE. For every back end (and the torch fast paths, for
comparison) the largest box-coordinate deviation in pixels is printed and written as JSON.

    python benchmarks/backend_parity.py [--device cpu|cuda] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ckd_ros.model.backends import backend_error
from ckd_ros.tracking import CandidateElimination, TrackerSpec, build_tracker

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ckd"
PRECISION = {"onnxruntime": "fp32", "openvino": "fp32", "tensorrt": "fp16"}


def _reference_frames(ref: Path):
    read = lambda p: cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)  # noqa: E731
    rgb, tir = sorted((ref / "seq" / "rgb").iterdir()), sorted((ref / "seq" / "tir").iterdir())
    return [(read(a), read(b)) for a, b in zip(rgb, tir)]


def _track(spec: TrackerSpec, frames, box) -> tuple[np.ndarray, float]:
    tracker = build_tracker(spec)
    t0 = time.perf_counter()
    boxes = [tracker.initialize(frames[0][0], frames[0][1], box).box]
    boxes += [tracker.track(rgb, tir).box for rgb, tir in frames[1:]]
    return np.asarray(boxes), (time.perf_counter() - t0) / max(1, len(frames) - 1)


def variants(device: str) -> list[tuple[str, str, str]]:
    """(name, backend, precision): torch fast paths and every back end that runs here."""
    torch_paths = ["fp32", "int8"] if device == "cpu" else ["fp32", "fp16"]
    out = [(f"torch {p}", "torch", p) for p in torch_paths]
    return out + [(b, b, PRECISION[b]) for b in PRECISION if backend_error(b, device, PRECISION[b]) is None]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=30, help="synthetic sequence length (30)")
    ap.add_argument("--reference", type=Path, default=REFERENCE, help="reference material (../shared/reference/ckd)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from ckd_ros.data.synthetic import generate_sequence

    sequences = []
    ref = args.reference
    if ref.is_dir():
        expected = np.loadtxt(ref / "tracker_boxes.txt", delimiter=",", comments="#")
        sequences.append(("parity (reference small model)", dict(checkpoint=ref / "ckd_small.pth.tar", num_heads=4),
                          _reference_frames(ref), list(expected[0]), expected))
    else:
        print(f"# {ref} is absent: parity sequence skipped", file=sys.stderr)
    seq = generate_sequence(5, "normal", num_frames=args.frames, size=(320, 256))
    sequences.append(("synthetic (embedded model)", {}, list(zip(seq.rgb, seq.thermal)), list(seq.boxes[0]), None))
    rows = []
    for name, model, frames, box, reference in sequences:
        for ce in ("off", "on"):
            elimination = CandidateElimination(ce)
            exact, exact_s = _track(TrackerSpec(device=args.device, candidate_elimination=elimination, **model),
                                    frames, box)
            if reference is not None and ce == "off":
                rows.append(dict(sequence=name, ce=ce, variant="torch exact", vs="reference boxes",
                                 max_dev_px=float(np.abs(exact - reference).max()), step_ms=exact_s * 1e3))
            for label, backend, precision in variants(args.device):
                spec = TrackerSpec(device=args.device, precision=precision, backend=backend,
                                   candidate_elimination=elimination, **model)
                boxes, step_s = _track(spec, frames, box)
                rows.append(dict(sequence=name, ce=ce, variant=label, vs="torch exact",
                                 max_dev_px=float(np.abs(boxes - exact).max()), step_ms=step_s * 1e3))
                if reference is not None and ce == "off":
                    rows.append(dict(sequence=name, ce=ce, variant=label, vs="reference boxes",
                                     max_dev_px=float(np.abs(boxes - reference).max()), step_ms=step_s * 1e3))
            print(f"# {name}, CE {ce}: done", file=sys.stderr, flush=True)
    print("| sequence | CE | variant | compared with | max box deviation px | mean step ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sequence']} | {r['ce']} | {r['variant']} | {r['vs']} | {r['max_dev_px']:.2e} | "
              f"{r['step_ms']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
