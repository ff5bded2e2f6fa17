"""Search-crop cost at 1920x1080 as the target grows: the reference's padded crop against the direct resample.

    python benchmarks/crop.py [--iters 20]

Prints, per box size (share of the frame's side), the crop side, the median time of the reference crop
(whole zero-padded crop materialised, then cv2.resize) and of the direct resample used above
TrackerConfig.exact_crop_limit, their ratio, and the largest grey-level difference between the two.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import cv2
import numpy as np

from ckd_ros.tracking import sample_target


def _median_ms(fn, iters: int) -> float:
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1, like one tracker step)")
    args = p.parse_args(argv)
    cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(0)
    frame = cv2.resize(rng.integers(0, 256, (135, 240, 3), dtype=np.uint8), (1920, 1080),
                       interpolation=cv2.INTER_CUBIC)
    print("| box (share of frame side) | crop side | reference crop | direct resample | ratio | max diff |")
    print("| --- | --- | --- | --- | --- | --- |")
    for share in (0.05, 0.1, 0.25, 0.5, 1.0):
        w, h = 1920 * share, 1080 * share
        box = [960 - w / 2, 540 - h / 2, w, h]
        ref, g = sample_target(frame, box, 4.0, 256)
        direct, _ = sample_target(frame, box, 4.0, 256, exact_limit=1)
        t_ref = _median_ms(lambda: sample_target(frame, box, 4.0, 256), args.iters)
        t_dir = _median_ms(lambda: sample_target(frame, box, 4.0, 256, exact_limit=1), args.iters)
        diff = int(np.abs(ref.astype(int) - direct.astype(int)).max())
        print(f"| {share:.2f} | {g.crop_size} | {t_ref:.2f} ms | {t_dir:.2f} ms | {t_ref / t_dir:.1f} | {diff} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
