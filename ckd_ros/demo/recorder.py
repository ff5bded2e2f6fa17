"""Recorder process: writes every ~/target message (with its receipt time) and the debug images."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--tracker", default="/ckd_tracker")
    parser.add_argument("--domain-id", type=int, required=True)
    parser.add_argument("--expected", type=int, default=0, help="frames the player sends (progress line)")
    args = parser.parse_args(argv)

    import cv2

    from ckd_ros.ros.harness import Probe
    from ckd_ros.ros.images import rgb_to_array

    overlay = args.output / "overlay"
    overlay.mkdir(parents=True, exist_ok=True)
    probe = Probe(args.domain_id, tracker=args.tracker, name="ckd_demo_recorder", debug_image=True)
    stop: list[int] = []    # after rclpy.init, which installs its own handlers
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    done_targets = done_images = 0
    last_print = 0.0
    try:
        with open(args.output / "targets.jsonl", "w") as out:
            while not stop:
                time.sleep(0.05)
                targets = probe.recording.target[done_targets:]
                for item in targets:
                    m = item.msg
                    out.write(json.dumps({"stamp_ns": m.header.stamp.sec * 10**9 + m.header.stamp.nanosec,
                                          "frame_id": m.header.frame_id, "status": int(m.status), "id": m.id,
                                          "box": [m.x, m.y, m.width, m.height], "score": float(m.score),
                                          "init_source": getattr(m, "init_source", ""),
                                          "receipt_ns": item.receipt_ns}) + "\n")
                done_targets += len(targets)
                out.flush()
                images = probe.recording.debug_image[done_images:]
                for item in images:
                    stamp = item.msg.header.stamp.sec * 10**9 + item.msg.header.stamp.nanosec
                    cv2.imwrite(str(overlay / f"{stamp}.png"), rgb_to_array(item.msg)[..., ::-1])
                    item.msg = None  # free the pixels
                done_images += len(images)
                status = _tracker_status(probe)
                if status is not None:
                    (args.output / "node_diagnostics.json").write_text(json.dumps(status, indent=1) + "\n")
                if time.monotonic() - last_print > 1.0:
                    last_print = time.monotonic()
                    tracking = sum(1 for r in probe.recording.target if r.msg.status == 1)
                    print(f"recorder: {done_targets} results ({tracking} tracking) of ~{args.expected} frames, "
                          f"{done_images} overlay images", flush=True)
    finally:
        probe.close()
    return 0


def _tracker_status(probe) -> dict[str, str] | None:
    """Key/values of the tracker's newest /diagnostics status, or None when none arrived yet."""
    for item in reversed(probe.recording.diagnostics[-5:]):
        for status in item.msg.status:
            if status.name.startswith(probe.tracker):
                return {kv.key: kv.value for kv in status.values}
    return None


if __name__ == "__main__":
    sys.exit(main())
