"""``make demo``: the CKD tracker node tracking a sequence over DDS, with a player and a recorder process.

    python -m ckd_ros.demo --output demo_output                 # synthetic sequence, embedded model
    python -m ckd_ros.demo --output out --sequence DIR          # rgb/ + thermal/ (+ groundtruth.txt), LasHeR, ...
    python -m ckd_ros.demo --output out --bag PATH --rgb-topic T1 --thermal-topic T2 --initial-box x y w h
    python -m ckd_ros.demo --output out --detector synthetic --condition occlusion   # started by a detector
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ckd_ros.assignment import parse_assignment
from ckd_ros.evaluation.metrics import overlap


def _node_parameter(text: str) -> tuple[str, object]:
    """``NAME:=VALUE`` with the value typed as ros2 run's ``-p`` types it (YAML: 5, 0.5, true, [1, 2], text)."""
    try:
        return parse_assignment(text, ":=")
    except ValueError as exc:  # argparse prints an ArgumentTypeError's own words, a ValueError's not
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("demo_output"))
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--sequence", type=Path,
                        help="sequence folder: rgb/ + thermal/ (or tir/) with groundtruth.txt, or a LasHeR, RGBT234, "
                             "RGBT210, GTOT or VTUAV sequence")
    source.add_argument("--bag", type=Path, help="ROS 2 bag (sqlite3 / mcap) with sensor_msgs/Image topics")
    parser.add_argument("--rgb-topic", default="/camera/rgb/image", help="bag topic of the RGB images")
    parser.add_argument("--thermal-topic", default="/camera/thermal/image", help="bag topic of the thermal images")
    parser.add_argument("--initial-box", type=float, nargs=4, metavar=("X", "Y", "W", "H"),
                        help="initial box for a bag (sequences use their first ground-truth box)")
    parser.add_argument("--seed", type=int, default=100000,
                        help="synthetic sequence seed (default: the first held-out seed; the embedded model trained on 0-4999)")
    parser.add_argument("--condition", default="normal", help="synthetic condition (normal, dark, glare, ...)")
    parser.add_argument("--frames", type=int, default=100, help="synthetic sequence length")
    parser.add_argument("--fps", type=float, default=10.0, help="player frame rate")
    parser.add_argument("--checkpoint", default="", help="empty = the embedded default model")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--detector", choices=("none", "synthetic"), default="none",
                        help="synthetic: a stand-in detector (noisy ground truth, misses, a distractor class) "
                             "starts the track and re-acquires it after a loss, instead of ~/initialize")
    parser.add_argument("--reacquire-after", type=float, default=0.5,
                        help="with --detector: seconds LOST before a detection restarts the track")
    parser.add_argument("--domain-id", type=int, default=int(os.environ.get("CKD_DEMO_DOMAIN_ID", 77)))
    parser.add_argument("--param", action="append", default=[], type=_node_parameter, metavar="NAME:=VALUE",
                        help="a tracker node parameter, as ros2 run's -p (value read as YAML), e.g. "
                             "--param backend:=onnxruntime; repeatable, applied last")
    args = parser.parse_args(argv)

    from ckd_ros.ros.harness import PROFILE_VARIABLES, NodeProcess, ros_environment

    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    boxes = None
    if args.bag is None:
        seq_dir = args.sequence
        if seq_dir is None:
            from ckd_ros.data.synthetic import generate_sequence, write_sequence
            seq_dir = out / "sequence"
            print(f"demo: writing synthetic sequence (seed {args.seed}, {args.condition}, {args.frames} frames) "
                  f"to {seq_dir}", flush=True)
            write_sequence(seq_dir, generate_sequence(args.seed, args.condition, num_frames=args.frames), ext="png")
        from .frames import FolderSequence
        sequence = FolderSequence(seq_dir)
        boxes = sequence.boxes
        n_frames = len(sequence)
    else:
        n_frames = 0
    py = sys.executable
    env = ros_environment(args.domain_id, log_dir=out / "ros_log")
    node_params = {"checkpoint": args.checkpoint, "device": args.device}
    remaps = {"rgb/image": "/camera/rgb/image", "thermal/image": "/camera/thermal/image"}
    if args.bag is not None:
        remaps = {"rgb/image": args.rgb_topic, "thermal/image": args.thermal_topic}
        if args.initial_box:
            node_params["initial_box"] = [float(v) for v in args.initial_box]
    detector = args.detector == "synthetic"
    if detector:
        if args.bag is not None:
            parser.error("--detector synthetic needs a sequence with ground truth, not a bag")
        node_params.update({"detections.init_from_detections": True, "detections.class_ids": ["target"],
                            "detections.min_score": 0.5, "detections.reacquire_after": args.reacquire_after})
        remaps["detections"] = "/detector/detections"
        if not args.checkpoint:
            # Re-acquisition starts from LOST. On this demo's occlusion scenes the embedded model's peak stays
            # 0.45-0.7 on a visible target and falls below 0.4 when it is hidden (test_ros_acquisition.py):
            # the raw-peak rule with those thresholds shows start and recovery (mean IoU 0.73 over 80 frames),
            # the calibration shipped at 49e82b9 stayed LOST too long there (0.17; not re-measured with the
            # current one, which keeps more on-target frames TRACKING)
            node_params.update({"status.calibration": "none", "status.lost_threshold": 0.4,
                                "status.recover_threshold": 0.6, "status.lost_patience": 2,
                                "status.recover_patience": 3})
    node_params.update(dict(args.param))
    node = NodeProcess(args.domain_id, out / "tracker_node.log", node_params, remaps=remaps)
    procs: list[subprocess.Popen] = []
    profile = ", ".join(f"{name}={env[name]}" for name in PROFILE_VARIABLES if name in env)
    print(f"demo: ROS_DOMAIN_ID={args.domain_id}, {profile}; starting tracker node, recorder and player processes",
          flush=True)
    try:
        node.start()
        recorder = subprocess.Popen([py, "-m", "ckd_ros.demo.recorder", "--output", str(out), "--domain-id",
                                     str(args.domain_id), "--expected", str(n_frames)], env=env)
        procs.append(recorder)
        if detector:   # started with the node, so that it answers from the first frame
            procs.append(subprocess.Popen([py, "-m", "ckd_ros.demo.detector", "--sequence", str(seq_dir),
                                           "--domain-id", str(args.domain_id), "--rgb-topic", remaps["rgb/image"],
                                           "--output-topic", remaps["detections"]], env=env))
        if not node.wait_for_log("subscribed to", 180.0):
            print(f"demo: the tracker node did not come up; its log:\n{node.log()}", file=sys.stderr)
            return 1
        player_cmd = [py, "-m", "ckd_ros.demo.player", "--domain-id", str(args.domain_id), "--fps", str(args.fps),
                      "--log", str(out / "published.jsonl")]
        player_cmd += ["--rgb-topic", remaps["rgb/image"], "--thermal-topic", remaps["thermal/image"]]
        player_cmd += ["--bag", str(args.bag)] if args.bag is not None else \
            ["--sequence", str(seq_dir)] + ([] if detector else ["--initialize"])
        player = subprocess.Popen(player_cmd, env=env)
        procs.append(player)
        try:
            player.wait(timeout=max(120.0, 5 * n_frames / args.fps + 60))
        except subprocess.TimeoutExpired:
            print("demo: the player did not finish in time; summarising what was recorded", file=sys.stderr)
        time.sleep(2.0)                      # the last results in flight
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(2)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        node.stop()
    return _summarise(out, boxes)


def _summarise(out: Path, boxes: np.ndarray | None) -> int:
    published = [json.loads(line) for line in (out / "published.jsonl").read_text().splitlines()] \
        if (out / "published.jsonl").exists() else []
    results = [json.loads(line) for line in (out / "targets.jsonl").read_text().splitlines()] \
        if (out / "targets.jsonl").exists() else []
    diagnostics_path = out / "node_diagnostics.json"
    diagnostics = json.loads(diagnostics_path.read_text()) if diagnostics_path.exists() else {}
    frame_of = {p["stamp_ns"]: p["frame"] for p in published if "stamp_ns" in p}
    detections = [r for r in results if r["status"] in (1, 2)]
    latencies = np.array([(r["receipt_ns"] - r["stamp_ns"]) * 1e-9 for r in results], dtype=float)
    ious = np.zeros(0)
    if boxes is not None:
        pairs = [(r["box"], boxes[f]) for r in detections
                 if (f := frame_of.get(r["stamp_ns"])) not in (None, 0) and f < len(boxes)
                 and np.isfinite(boxes[f]).all()]
        if pairs:
            # the benchmarks' overlap (inclusive pixel edges), so the number reads like their success rate
            ious = overlap(np.array([p for p, _ in pairs]), np.array([g for _, g in pairs]))
    summary = {
        "frames_published": len(published),
        # what reached the node: well below frames_published means frames lost in transport
        "node_rgb_received": int(diagnostics["rgb_received"]) if "rgb_received" in diagnostics else None,
        "node_thermal_received": int(diagnostics["thermal_received"]) if "thermal_received" in diagnostics else None,
        "node_pairs_synchronised": (int(diagnostics["pairs_synchronised"]) if "pairs_synchronised" in diagnostics
                                    else None),
        "pairs_processed": len(results),
        "detections": len(detections),
        "mean_iou": float(np.mean(ious)) if ious.size else None,
        "iou_frames": len(ious),
        "latency_median_s": float(np.median(latencies)) if latencies.size else None,
        "latency_p95_s": float(np.percentile(latencies, 95)) if latencies.size else None,
        # how each track started: initialize / initial_box, or the detector (detections, reacquired)
        "track_starts": _track_starts(results),
        "overlay_dir": str(out / "overlay"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _video(out)
    print("demo summary: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in summary.items()), flush=True)
    return 0 if results else 1


def _track_starts(results: list[dict]) -> str:
    sources: dict[str, str] = {}
    for r in results:
        if r.get("id") and r["id"] not in sources:
            sources[r["id"]] = r.get("init_source", "")
    counts: dict[str, int] = {}
    for source in sources.values():
        counts[source] = counts.get(source, 0) + 1
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"


def _video(out: Path) -> None:
    """overlay.mp4 from the recorded debug images (skipped silently where OpenCV has no mp4 writer)."""
    import cv2
    frames = sorted((out / "overlay").glob("*.png"), key=lambda p: int(p.stem))
    if not frames:
        return
    first = cv2.imread(str(frames[0]))
    writer = cv2.VideoWriter(str(out / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0,
                             (first.shape[1], first.shape[0]))
    if writer.isOpened():
        for path in frames:
            writer.write(cv2.imread(str(path)))
    writer.release()


if __name__ == "__main__":
    sys.exit(main())
