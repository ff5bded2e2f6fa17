"""Latency of the tracker node (image stamp -> ~/target receipt, over DDS between processes) next to the
tracker's own step time on the same frames (in process, no ROS).

    python benchmarks/node_latency.py [--checkpoint PATH] [--device cpu] [--fps 10] [--seconds 20]

The player stamps each pair with the clock when it publishes it; latency = receipt time - stamp, so it
includes serialisation, DDS transport, synchronisation, conversion, the tracker step and publishing.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="empty = the embedded default model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", type=int, nargs=2, default=(640, 512), metavar=("W", "H"))
    parser.add_argument("--domain-id", type=int, default=88)
    parser.add_argument("--reliable", action="store_true", help="reliable image QoS (default: sensor data)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    from ckd_ros.data.synthetic import generate_sequence
    from ckd_ros.ros.harness import NodeProcess, Probe, fastdds_major, set_large_images_transport
    from ckd_ros.tracking import TrackerSpec, build_tracker

    # this process publishes the camera images: the same Fast DDS profile as the node (read by the first
    # participant of the process, which is the probe below)
    set_large_images_transport(os.environ, fastdds_major())
    # and the node's discovery range: on Jazzy the default range does not discover a LOCALHOST node
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

    spec = TrackerSpec(checkpoint=args.checkpoint or None, device=args.device)
    checkpoint = str(spec.checkpoint_path)
    seq = generate_sequence(5, "normal", num_frames=60, size=tuple(args.size))

    # the tracker alone, same frames, same device
    tracker = build_tracker(spec)
    tracker.initialize(seq.rgb[0], seq.thermal[0], seq.boxes[0])
    for i in range(1, 6):
        tracker.track(seq.rgb[i], seq.thermal[i])          # warm-up
    steps = [tracker.track(seq.rgb[i], seq.thermal[i]).timing.total_s for i in range(6, len(seq))]
    del tracker

    with tempfile.TemporaryDirectory() as tmp:
        node = NodeProcess(args.domain_id, Path(tmp) / "node.log",
                           {"checkpoint": checkpoint, "device": args.device,
                            "qos.reliable": args.reliable,
                            "initial_box": [float(v) for v in seq.boxes[0]]}).start()
        try:
            with Probe(args.domain_id) as probe:
                if not node.wait_for_log("subscribed to", 180) or not probe.wait_for_subscribers(60):
                    raise SystemExit(f"node did not come up:\n{node.log()}")
                sent, start = 0, time.monotonic()
                while time.monotonic() - start < args.seconds:
                    i = sent % len(seq)
                    probe.publish_pair(seq.rgb[i], seq.thermal[i])
                    sent += 1
                    time.sleep(max(0.0, start + sent / args.fps - time.monotonic()))
                time.sleep(1.0)
                received = list(probe.recording.target)
                diagnostics = probe.diagnostics_values()
        finally:
            node.stop()
    latencies = np.array([(r.receipt_ns - (r.msg.header.stamp.sec * 10**9 + r.msg.header.stamp.nanosec)) * 1e-9
                          for r in received[3:]])
    result = {
        "fastdds_profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"], "device": args.device, "reliable": args.reliable, "image_size": list(args.size), "fps": args.fps, "pairs_sent": sent,
        "results_received": len(received), "pairs_dropped": int(diagnostics.get("pairs_dropped", -1)),
        "tracker_step_median_ms": 1e3 * float(np.median(steps)),
        "tracker_step_p95_ms": 1e3 * float(np.percentile(steps, 95)),
        "node_latency_median_ms": 1e3 * float(np.median(latencies)),
        "node_latency_p95_ms": 1e3 * float(np.percentile(latencies, 95)),
        "rgb_received": int(diagnostics.get("rgb_received", -1)),
        "thermal_received": int(diagnostics.get("thermal_received", -1)),
        "pairs_synchronised": int(diagnostics.get("pairs_synchronised", -1)),
        "node_step_median_ms_from_diagnostics": 1e3 * float(diagnostics.get("step_time_median_s", "nan")),
    }
    result["overhead_median_ms"] = result["node_latency_median_ms"] - result["tracker_step_median_ms"]
    result["latency_over_step_ratio"] = result["node_latency_median_ms"] / result["tracker_step_median_ms"]
    for key, value in result.items():
        print(f"{key:40s} {value:.2f}" if isinstance(value, float) else f"{key:40s} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
