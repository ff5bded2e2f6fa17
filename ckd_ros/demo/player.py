"""Camera player process: publishes an RGB + thermal sequence at its frame rate, stamped with the clock.

    python -m ckd_ros.demo.player --sequence DIR --fps 10 --initialize
    python -m ckd_ros.demo.player --bag PATH --rgb-topic /cam/rgb --thermal-topic /cam/thermal
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sequence", type=Path)
    parser.add_argument("--bag", type=Path)
    parser.add_argument("--rgb-topic", default="/camera/rgb/image")
    parser.add_argument("--thermal-topic", default="/camera/thermal/image")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--tracker", default="/ckd_tracker")
    parser.add_argument("--initialize", action="store_true", help="call ~/initialize with the first ground-truth box")
    parser.add_argument("--log", type=Path, required=True, help="JSON lines: stamp and frame index per pair sent")
    parser.add_argument("--domain-id", type=int, required=True)
    args = parser.parse_args(argv)

    from ckd_ros.ros.harness import Probe

    probe = Probe(args.domain_id, tracker=args.tracker, name="ckd_demo_player", rgb_topic=args.rgb_topic,
                  thermal_topic=args.thermal_topic)
    try:
        if not probe.wait_for_subscribers(120.0):
            print("player: the tracker never subscribed to the camera topics", file=sys.stderr)
            return 1
        period = 1.0 / args.fps
        with open(args.log, "w") as log:
            if args.bag is not None:
                return _play_bag(args, probe, log)
            from .frames import FolderSequence
            seq = FolderSequence(args.sequence)
            due = time.monotonic()
            for i in range(len(seq)):
                rgb, thermal = seq.frame(i)
                # like a camera: a frame read late goes out late, never in a catch-up burst (a burst of
                # 1080p frames overruns the transport and the best-effort subscriber loses them)
                time.sleep(max(0.0, due - time.monotonic()))
                stamp = probe.publish_pair(rgb, thermal)
                log.write(json.dumps({"frame": i, "stamp_ns": stamp}) + "\n")
                log.flush()
                if i == 0 and args.initialize and seq.init_box is not None:
                    _initialize(probe, seq.init_box, rgb, thermal, stamp)
                due = max(due + period, time.monotonic())
        return 0
        return 0
    finally:
        probe.close()


def _initialize(probe, box, rgb, thermal, stamp: int, attempts: int = 3) -> bool:
    """~/initialize on the frame with ``stamp``. A best-effort camera topic may lose that very frame (the
    node then answers that it holds no such frame): send the same frame, same stamp, again and retry."""
    for attempt in range(1, attempts + 1):
        answer = probe.initialize(box, stamp_ns=stamp)
        print(f"player: ~/initialize on frame 0 (attempt {attempt}): {answer.success} {answer.message}", flush=True)
        if answer.success:
            return True
        probe.publish_pair(rgb, thermal, stamp_ns=stamp)
    return False


def _play_bag(args: argparse.Namespace, probe, log) -> int:
    """Raw CDR straight to the publishers, paced by the bag's own timing (scaled to real time)."""
    from .frames import bag_messages
    first_bag = first_wall = None
    count = 0
    for role, raw, bag_ns in bag_messages(args.bag, args.rgb_topic, args.thermal_topic):
        if first_bag is None:
            first_bag, first_wall = bag_ns, time.monotonic()
        time.sleep(max(0.0, first_wall + (bag_ns - first_bag) * 1e-9 - time.monotonic()))
        (probe.rgb_pub if role == "rgb" else probe.thermal_pub).publish(raw)
        if role == "rgb":
            log.write(json.dumps({"frame": count, "bag_ns": bag_ns}) + "\n")
            count += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
