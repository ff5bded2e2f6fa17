"""``python -m ckd_ros.ros.stress``: every hostile case against a real node process, then an optional soak.

    python -m ckd_ros.ros.stress [--soak-s 600] [--cases rgb_data_short,bad_boxes] [--out build/stress]

Exit status 0 only when every case (and the soak) passed. The report is ``OUT/stress_report.json`` and a
table beside it (``.md``), also printed. Localhost only, on its own ROS_DOMAIN_ID.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--soak-s", type=float, default=0.0, help="soak seconds after the cases (0: none)")
    parser.add_argument("--soak-fps", type=float, default=30.0,
                        help="soak pair rate (default 30 Hz, the camera rate the node is specified for)")
    parser.add_argument("--soak-only", action="store_true", help="skip the hostile cases")
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("build/stress"))
    parser.add_argument("--domain-id", type=int, default=91)
    args = parser.parse_args(argv)
    if not args.soak_fps > 0:
        parser.error(f"--soak-fps must be positive, got {args.soak_fps}")

    from ..harness import fastdds_major, set_large_images_transport
    set_large_images_transport(os.environ, fastdds_major())  # this process's probes, as the node's
    from .bench import StressBench
    from .cases import CASES
    from .report import write_report
    from .soak import run_soak

    wanted = {c for c in args.cases.split(",") if c}
    cases = [] if args.soak_only else [c for c in CASES if not wanted or _case_name(c) in wanted]
    params = {"device": "cpu", "diagnostics_period": 0.25, "stale_input_timeout": 0.5}
    results, soak = [], None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ckd_stress_") as tmp:
        if cases:
            bench = StressBench(args.domain_id, Path(tmp) / "cases", params)
            try:
                if not bench.tracks():
                    raise SystemExit(f"the node does not track valid frames:\n{bench.node.log()[-3000:]}")
                for case in cases:
                    if not bench.node.alive():
                        break
                    result = case(bench)
                    results.append(result)
                    print(f"{'pass' if result.passed else 'FAIL'} {result.name} ({result.seconds:.1f} s)"
                          + ("" if result.passed else ": " + "; ".join(result.failures)), flush=True)
            finally:
                (args.out).mkdir(parents=True, exist_ok=True)
                (args.out / "cases_node.log").write_text(bench.node.log())
                bench.close()
        if args.soak_s > 0:
            bench = StressBench(args.domain_id, Path(tmp) / "soak", {"device": "cpu"}, size=(640, 512))
            try:
                soak = run_soak(bench, args.soak_s, fps=args.soak_fps)
            finally:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / "soak_node.log").write_text(bench.node.log())
                bench.close()
    meta = {"command": " ".join(["python -m ckd_ros.ros.stress"] + (argv if argv is not None else sys.argv[1:])),
            "host": platform.node(), "cpus": os.cpu_count(), "wall_s": round(time.monotonic() - started, 1),
            "load_average": os.getloadavg()}
    table = write_report(args.out / "stress_report.json", results, soak, meta)
    print(table)
    print(f"report: {args.out / 'stress_report.json'} ({meta['wall_s']} s)")
    ok = all(r.passed for r in results) and (soak is None or soak["passed"])
    ok = ok and (args.soak_only or len(results) == len(cases))
    return 0 if ok else 1


def _case_name(case) -> str:
    return getattr(case, "case_name", case.__name__.lstrip("_"))


if __name__ == "__main__":
    sys.exit(main())
