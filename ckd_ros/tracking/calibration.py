"""Status calibration files: the fitted confidence head and thresholds of one checkpoint, as YAML.

``ckd calibrate`` writes them; :func:`ckd_ros.tracking.build_tracker` loads them. A checkpoint's own
calibration lives beside it as ``<name>.status.yaml`` (``ckd_demo_small.pth.tar`` ->
``ckd_demo_small.status.yaml``), so the embedded model ships with its own and a user's checkpoint picks up
the file ``ckd calibrate`` wrote next to it without any setting.

The file names the checkpoint it was fitted for by SHA-256: a head fitted on one model's score scale says
nothing about another's, so loading it for a different checkpoint is refused.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .confidence import ConfidenceHead
from .status import StatusConfig

FORMAT = "ckd_status_calibration"
VERSION = 1
SUFFIX = ".status.yaml"
# the `calibration` setting that turns the head off (raw windowed peak with the configured thresholds)
NO_CALIBRATION = "none"


@dataclass
class StatusCalibration:
    status: StatusConfig                            # thresholds and patience on the head's confidence
    checkpoint: str = ""                            # file name the calibration was fitted for
    checkpoint_sha256: str = ""                     # empty: not checked
    target_false_tracking: float = 0.05             # the share of frames TRACKING while off target aimed at
    fitted_on: dict[str, Any] = field(default_factory=dict)   # sequences, seeds, label rule, command
    measured: dict[str, Any] = field(default_factory=dict)    # numbers on the fitting sequences

    def __post_init__(self) -> None:
        if self.status.head is None:
            raise ValueError("a status calibration needs a confidence head")
        self.status.validate()


def checkpoint_calibration_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's own calibration lives: beside it, ``<name>.status.yaml``."""
    path = Path(checkpoint)
    name = path.name
    for ext in (".pth.tar", ".pth", ".pt", ".tar", ".ckpt"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return path.with_name(name + SUFFIX)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_calibration(path: str | Path, calibration: StatusCalibration, command: str = "") -> Path:
    s = calibration.status
    data = {
        "format": FORMAT, "version": VERSION,
        "checkpoint": calibration.checkpoint, "checkpoint_sha256": calibration.checkpoint_sha256,
        "target_false_tracking": float(calibration.target_false_tracking),
        "status": {"lost_threshold": float(s.lost_threshold), "recover_threshold": float(s.recover_threshold),
                   "lost_patience": int(s.lost_patience), "recover_patience": int(s.recover_patience),
                   "head": s.head.as_dict()},   # type: ignore[union-attr]
        "fitted_on": calibration.fitted_on, "measured": calibration.measured,
    }
    header = ("# Target-status calibration (ckd_ros.tracking.calibration), written by `ckd calibrate`.\n"
              + (f"# {command}\n" if command else ""))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110))
    return out


def load_calibration(path: str | Path) -> StatusCalibration:
    """Read a calibration file; any problem raises ValueError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"status calibration {path} does not exist (write one with `ckd calibrate`)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"status calibration {path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"status calibration {path}: not a {FORMAT} file (no 'format: {FORMAT}')")
    if data.get("version") != VERSION:
        raise ValueError(f"status calibration {path}: version {data.get('version')!r}, this package reads {VERSION}")
    try:
        s = data["status"]
        status = StatusConfig(lost_threshold=float(s["lost_threshold"]), recover_threshold=float(s["recover_threshold"]),
                              lost_patience=int(s["lost_patience"]), recover_patience=int(s["recover_patience"]),
                              head=ConfidenceHead.from_dict(s["head"]))
        return StatusCalibration(status, str(data.get("checkpoint", "")), str(data.get("checkpoint_sha256", "")),
                                 float(data.get("target_false_tracking", 0.05)), dict(data.get("fitted_on") or {}),
                                 dict(data.get("measured") or {}))
    except KeyError as exc:
        raise ValueError(f"status calibration {path}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"status calibration {path}: {exc}") from None


def resolve_calibration(setting: str | Path | None, checkpoint: Path) -> Path | None:
    """The calibration file a ``calibration`` setting selects for ``checkpoint``, or None for the raw peak.

    None / "": the checkpoint's own file when it exists; "none": no calibration; anything else: that file
    (which must exist)."""
    if setting is None or str(setting) == "":
        own = checkpoint_calibration_path(checkpoint)
        return own if own.is_file() else None
    if str(setting).lower() == NO_CALIBRATION:
        return None
    path = Path(setting)
    if not path.is_file():
        raise FileNotFoundError(f"status calibration {path} does not exist (write one with `ckd calibrate`, or "
                                f"give '{NO_CALIBRATION}' for the raw peak thresholds)")
    return path


def load_for_checkpoint(path: Path, checkpoint: Path) -> StatusCalibration:
    """Load ``path`` and refuse it when it was fitted for a different checkpoint file."""
    calibration = load_calibration(path)
    if calibration.checkpoint_sha256 and checkpoint.is_file():
        actual = file_sha256(checkpoint)
        if actual != calibration.checkpoint_sha256:
            raise ValueError(f"status calibration {path} was fitted for {calibration.checkpoint or 'another checkpoint'} "
                             f"(sha256 {calibration.checkpoint_sha256[:12]}...), not {checkpoint} "
                             f"(sha256 {actual[:12]}...): run `ckd calibrate --checkpoint {checkpoint}`")
    return calibration
