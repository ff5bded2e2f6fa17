"""``ckd track``: run the CKD tracker on a sequence folder or a pair of videos.

Writes into ``--output`` (default ``results/track``):
  ``<name>.txt``         per-frame boxes in the benchmark result format (first line = initial box;
                         ``--result-format reference`` = the official writer's truncated integers, tab separated)
  ``<name>_time.txt``    seconds per frame (tracker call only, image reading excluded)
  ``<name>_scores.txt``  frame, windowed peak score, status confidence, status
  ``<name>_overlay.mp4`` (or ``<name>_overlay/`` PNGs) RGB | thermal with the box on both
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ckd_ros.model.device import PRECISIONS


def _floats(text: str, n: int, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be {n} numbers, got {text!r}") from None
    if len(values) != n:
        raise argparse.ArgumentTypeError(f"{what} must be {n} numbers, got {len(values)}: {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ckd track", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sequence", nargs="?", help="sequence folder (LasHeR, RGBT234, RGBT210, GTOT, VTUAV or "
                   "rgb/ + thermal/); omit when --rgb-video/--thermal-video are given")
    p.add_argument("--layout", choices=["lasher", "rgbt234", "rgbt210", "gtot", "vtuav", "plain"],
                   help="sequence layout (default: detected)")
    p.add_argument("--rgb-video", help="RGB video file (with --thermal-video)")
    p.add_argument("--thermal-video", help="thermal video file, frame-synchronised with --rgb-video")
    p.add_argument("--init-box", type=lambda s: _floats(s, 4, "--init-box"),
                   help="initial box 'x,y,w,h' (default: the sequence's first ground-truth box)")
    p.add_argument("--checkpoint", default="", help="CKD checkpoint (official or project format); "
                   "empty = the model embedded in the package")
    p.add_argument("--num-heads", type=int, help="attention heads, when the checkpoint embeds no config and "
                   "its heads are not 64 wide")
    p.add_argument("--ce-loc", type=lambda s: [int(v) for v in s.replace(",", " ").split()],
                   help="candidate-elimination blocks, e.g. '3,6,9' (the paper's MCE), '' for none; default: "
                   "the checkpoint's")
    p.add_argument("--ce-keep", type=float, default=0.7, help="keep ratio at every --ce-loc block (0.7)")
    p.add_argument("--device", default="cpu", help="torch device: auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", default="exact", choices=PRECISIONS,
                   help="network arithmetic (exact = the reference's; see ckd_ros.model.optimize)")
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "openvino", "tensorrt"],
                   help="what runs the network: torch, or the exported ONNX graph (a .onnx --checkpoint from "
                   "`ckd export`, or the checkpoint exported on the fly) under onnxruntime, openvino (CPU) or "
                   "tensorrt (fp16 engine, --precision fp16)")
    p.add_argument("--output", default="results/track", help="output folder")
    p.add_argument("--name", help="result file name (default: the sequence folder / RGB video name)")
    p.add_argument("--result-format", choices=["reference", "float"], default="reference")
    p.add_argument("--overlay", choices=["video", "png", "none"], default="video")
    p.add_argument("--fps", type=float, default=25.0, help="overlay video frame rate")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--thermal-depth", choices=["native", "8bit"], default="native",
                   help="keep 16-bit/float thermal files for the gain control (native) or reduce on reading")
    p.add_argument("--gain", choices=["percentile", "minmax", "fixed"], default="percentile",
                   help="thermal gain control for 16-bit/float thermal (8-bit passes through unchanged)")
    p.add_argument("--gain-percentiles", type=lambda s: _floats(s, 2, "--gain-percentiles"), default=[1.0, 99.0])
    p.add_argument("--gain-window", type=lambda s: _floats(s, 2, "--gain-window"),
                   help="fixed gain window 'min,max' in input units (counts or degrees)")
    p.add_argument("--homography", help="3x3 thermal->RGB homography file (.txt, .npy, .yaml)")
    p.add_argument("--on-size-mismatch", choices=["error", "resize"], default="error",
                   help="what to do when thermal and RGB sizes differ and no homography is given")
    p.add_argument("--calibration", default="",
                   help="status calibration YAML (`ckd calibrate`); default: the checkpoint's own <name>.status.yaml "
                        "when present (the embedded model ships one); 'none': the uncalibrated raw-peak thresholds")
    p.add_argument("--lost-search", action="store_true", help="search a wider region while the target is lost")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _open_input(args: argparse.Namespace):
    from ckd_ros.data import open_sequence, open_video_pair
    if args.rgb_video or args.thermal_video:
        if not (args.rgb_video and args.thermal_video):
            raise ValueError("--rgb-video and --thermal-video go together")
        if args.sequence:
            raise ValueError("give either a sequence folder or two videos, not both")
        return open_video_pair(args.rgb_video, args.thermal_video, init_box=args.init_box)
    if not args.sequence:
        raise ValueError("no input: give a sequence folder or --rgb-video and --thermal-video")
    return open_sequence(args.sequence, args.layout, args.thermal_depth)


def tracker_spec(args: argparse.Namespace):
    """The tracker the command line asks for."""
    from .factory import CandidateElimination, TrackerSpec
    from .registration import RegistrationConfig, load_homography
    from .thermal import ThermalGainConfig
    from .tracker import LostSearchConfig, TrackerConfig
    window = args.gain_window or [None, None]
    if args.gain == "fixed" and args.gain_window is None:
        raise ValueError("--gain fixed needs --gain-window min,max")
    elimination = (CandidateElimination() if args.ce_loc is None else
                   CandidateElimination("on" if args.ce_loc else "off", tuple(args.ce_loc), args.ce_keep))
    config = TrackerConfig(
        thermal_gain=ThermalGainConfig(mode=args.gain, low_percentile=args.gain_percentiles[0],
                                       high_percentile=args.gain_percentiles[1], window_min=window[0],
                                       window_max=window[1]),
        registration=RegistrationConfig(homography=load_homography(args.homography) if args.homography else None,
                                        on_size_mismatch=args.on_size_mismatch),
        lost_search=LostSearchConfig(enabled=args.lost_search))
    return TrackerSpec(checkpoint=args.checkpoint or None, device=args.device, precision=args.precision,
                       backend=args.backend, num_heads=args.num_heads, candidate_elimination=elimination,
                       tracker=config, calibration=args.calibration or None)


def run(args: argparse.Namespace) -> dict[str, Path]:
    from tqdm import tqdm

    from .overlay import OverlayWriter, draw_overlay
    from .status import TrackStatus
    from ckd_ros.data.box_files import LTWH, write_boxes, write_reference_boxes, write_times
    from .factory import build_tracker
    from .sequence_run import track_frames

    sequence = _open_input(args)
    init_box = args.init_box if args.init_box is not None else sequence.init_box
    if init_box is None:
        raise ValueError(f"{sequence.name}: no ground truth to initialise from; give --init-box x,y,w,h")
    spec = tracker_spec(args)
    tracker = build_tracker(spec)
    if not args.quiet:
        from .factory import describe
        print(f"ckd track: {describe(tracker, spec)}", file=sys.stderr)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = args.name or sequence.name
    total = len(sequence) if args.max_frames is None else min(len(sequence), args.max_frames)
    writer = None if args.overlay == "none" else OverlayWriter(out_dir / f"{name}_overlay", args.overlay, args.fps)
    truth = getattr(sequence, "ground_truth", None)
    bar = tqdm(total=total, desc=f"ckd track {name}", unit="frame", disable=args.quiet, file=sys.stderr)

    def on_frame(index, frame, result):
        bar.update(1)
        bar.set_postfix(score=f"{result.score:.3f}", status=result.status.value, refresh=False)
        if writer is not None:
            gt = truth[index] if truth is not None and index < len(truth) else None
            writer.write(draw_overlay(frame.rgb, tracker.last_thermal, result.box, result.status, result.score,
                                      index, gt))

    try:
        result = track_frames(tracker, sequence, init_box, on_frame, args.max_frames)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    boxes_path = out_dir / f"{name}.txt"
    if args.result_format == "reference":
        write_reference_boxes(boxes_path, result.boxes)
    else:
        write_boxes(boxes_path, result.boxes, LTWH, "\t")
    files = {"boxes": boxes_path,
             "times": write_times(out_dir / f"{name}_time.txt", result.times)}
    scores = out_dir / f"{name}_scores.txt"
    scores.write_text("# frame,score,confidence,status\n" + "".join(
        f"{i},{s:.6f},{c:.6f},{st.value}\n"
        for i, (s, c, st) in enumerate(zip(result.scores, result.confidences, result.statuses))))
    files["scores"] = scores
    if writer is not None:
        files["overlay"] = writer.output
    steps = np.asarray(result.times[1:]) if len(result.times) > 1 else np.asarray(result.times)
    print(f"{name}: {len(result.boxes)} frames, median {1000 * np.median(steps):.1f} ms/frame, "
          f"lost in {sum(s == TrackStatus.LOST for s in result.statuses)} frames -> {files['boxes']}")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
        print(f"ckd track: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
