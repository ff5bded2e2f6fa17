"""Stand-in detector process for the demo: ground-truth boxes made noisy, as an object detector reports them.

    python -m ckd_ros.demo.detector --sequence DIR --domain-id 77 --rgb-topic /camera/rgb/image \\
        --output-topic /detector/detections

It subscribes to the RGB camera, recognises each frame of the sequence by its pixels (the player sends the
files' exact pixels), and publishes a vision_msgs/Detection2DArray with the image's header: the target's
ground-truth box jittered, missed now and then, plus boxes of a distractor class and low-score false
alarms of the target class, so that the node's class and score filters have something to refuse. It is
a test double for yolo_ros and the like, not a detector: it never looks at the image content.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Detections = list[tuple[tuple[float, float, float, float], str, float]]


@dataclass(frozen=True)
class SyntheticDetectorConfig:
    target_class: str = "target"
    distractor_class: str = "distractor"
    box_noise: float = 0.05          # std of the box jitter, as a share of the box's width / height
    miss_rate: float = 0.2           # share of frames where the target is not reported
    distractor_rate: float = 0.6     # share of frames with a distractor-class box (high score)
    false_alarm_rate: float = 0.3    # share of frames with a low-score target-class box elsewhere
    false_alarm_score: float = 0.3


class SyntheticDetector:
    """Per-frame detections from ground truth; the same seed gives the same detections."""

    def __init__(self, boxes: np.ndarray, image_hw: tuple[int, int], config: SyntheticDetectorConfig | None = None,
                 seed: int = 0) -> None:
        self.boxes = np.asarray(boxes, dtype=np.float64)
        self.image_hw = image_hw
        self.config = config or SyntheticDetectorConfig()
        self.seed = seed

    def detect(self, frame: int) -> Detections:
        cfg, (h, w) = self.config, self.image_hw
        rng = np.random.default_rng([self.seed, frame])
        out: Detections = []
        gt = self.boxes[frame] if 0 <= frame < len(self.boxes) else np.full(4, np.nan)
        if np.isfinite(gt).all() and rng.random() >= cfg.miss_rate:
            jitter = rng.normal(0.0, cfg.box_noise, 4) * np.array([gt[2], gt[3], gt[2], gt[3]])
            box = gt + jitter
            box[2:] = np.maximum(box[2:], 2.0)
            out.append((tuple(float(v) for v in box), cfg.target_class, float(rng.uniform(0.6, 0.95))))
        size = gt[2:] if np.isfinite(gt).all() else np.array([w / 8.0, h / 4.0])
        for rate, cls, score in ((cfg.distractor_rate, cfg.distractor_class, float(rng.uniform(0.7, 0.99))),
                                 (cfg.false_alarm_rate, cfg.target_class, cfg.false_alarm_score)):
            if rng.random() < rate:
                x, y = rng.uniform(0, max(1.0, w - size[0])), rng.uniform(0, max(1.0, h - size[1]))
                out.append(((float(x), float(y), float(size[0]), float(size[1])), cls, score))
        return out


def frame_key(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", type=Path, required=True)
    parser.add_argument("--domain-id", type=int, required=True)
    parser.add_argument("--rgb-topic", default="/camera/rgb/image")
    parser.add_argument("--output-topic", default="/detector/detections")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before each answer (detector time)")
    parser.add_argument("--miss-rate", type=float, default=SyntheticDetectorConfig.miss_rate)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import rclpy
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from ckd_ros.ros.harness import build_detection_array
    from ckd_ros.ros.images import array_to_image
    from ckd_ros.ros.messages import vision_msgs_module

    from .frames import FolderSequence

    vision = vision_msgs_module()
    if vision is None:
        print("detector: vision_msgs is not installed", file=sys.stderr)
        return 1
    seq = FolderSequence(args.sequence)
    if seq.boxes is None:
        print(f"detector: {args.sequence} has no ground truth to detect from", file=sys.stderr)
        return 1
    # the player publishes each file's pixels as tightly packed rgb8: the same bytes name the frame
    index = {frame_key(bytes(array_to_image(seq.frame(i)[0], "rgb8").data)): i for i in range(len(seq))}
    hw = seq.frame(0)[0].shape[:2]
    detector = SyntheticDetector(seq.boxes, hw, SyntheticDetectorConfig(miss_rate=args.miss_rate), args.seed)

    rclpy.init(domain_id=args.domain_id)
    node = Node("synthetic_detector")
    pub = node.create_publisher(vision.Detection2DArray, args.output_topic, 10)
    counts = {"frames": 0, "unknown": 0}

    def on_image(msg: Image) -> None:
        frame = index.get(frame_key(bytes(msg.data)))
        if frame is None:
            counts["unknown"] += 1          # the player's warm-up images and anything not of the sequence
            return
        time.sleep(args.latency)
        pub.publish(build_detection_array(vision, msg.header, detector.detect(frame)))
        counts["frames"] += 1

    node.create_subscription(Image, args.rgb_topic, on_image, qos_profile_sensor_data)
    print(f"detector: {len(seq)} frames known, answering {args.rgb_topic} on {args.output_topic}", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, Exception):  # noqa: BLE001 - SIGINT / external shutdown end the detector
        pass
    finally:
        print(f"detector: answered {counts['frames']} frames ({counts['unknown']} unknown images)", flush=True)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
