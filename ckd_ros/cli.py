"""`ckd` command line: one entry point, a sub-command per job, each implemented in its own layer."""
from __future__ import annotations

import importlib
import sys

# sub-command -> (module, function, one-line help); imported lazily so that `ckd score` never pays for torch.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "track": ("ckd_ros.tracking.cli", "main", "track a sequence folder or a pair of videos"),
    "eval": ("ckd_ros.evaluation.cli", "eval_main", "run a tracker over a benchmark (resumable, shardable)"),
    "calibrate": ("ckd_ros.evaluation.calibrate_cli", "main", "fit or measure (--report) the TRACKING / LOST status"),
    "score": ("ckd_ros.evaluation.cli", "score_main", "score result folders with a benchmark's official rules"),
    "train": ("ckd_ros.training.cli", "main", "train CKD (coupled knowledge distillation)"),
    "bench": ("ckd_ros.model.bench", "main", "benchmark the network forward"),
    "export": ("ckd_ros.model.export", "main", "export the network as ONNX (checked against PyTorch)"),
}


def _usage() -> str:
    lines = ["usage: ckd <command> [options]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ckd: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    result = getattr(importlib.import_module(module), func)(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
