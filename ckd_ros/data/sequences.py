"""Readers for RGB + thermal sequences: benchmark folder layouts, plain folders and pairs of video files.

Layouts (auto-detected from the folder's content; ``detect_layout`` says what it found or why not):

===========  ===========================  ===============================================================
layout       images                       ground truth
===========  ===========================  ===============================================================
lasher       ``visible/``, ``infrared/``  ``init.txt`` (+ identical ``visible.txt``/``infrared.txt``), ``x,y,w,h``
rgbt234      ``visible/``, ``infrared/``  ``visible.txt``, ``infrared.txt`` (one per modality)
rgbt210      ``visible/``, ``infrared/``  ``init.txt``
gtot         ``v/``, ``i/``               ``groundTruth_v.txt``/``groundTruth_i.txt`` (``x1 y1 x2 y2``), ``init.txt``
vtuav        ``rgb/``, ``ir/`` (or        ``rgb.txt``, ``ir.txt``: only every 10th frame (line k = frame 10 k)
             ``ir_gray/``)
plain        ``rgb/``, ``thermal/`` (or   optional ``groundtruth.txt`` (or ``init.txt``), ``x,y,w,h``
             ``tir/``)
===========  ===========================  ===============================================================

Image files are sorted by name and paired by position. Frames are read as the reference evaluation does:
``cv2.imread`` then BGR -> RGB, so a grey thermal JPG becomes 3 equal channels. Thermal files with more
than 8 bits (16-bit PNG/TIFF, float TIFF) keep their depth by default (``thermal_depth="native"``) so that
the tracker's gain control sees the raw counts; ``"8bit"`` reproduces ``cv2.imread``'s own reduction.
Ground truth is an ``N x 4`` float array of ``x, y, w, h`` with NaN rows for frames without annotation.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
LAYOUTS = ("lasher", "rgbt234", "rgbt210", "gtot", "vtuav", "plain")
ThermalDepth = Literal["native", "8bit"]
LIST_FILE_NAMES = ("list.txt", "sequences.txt", "testingsetList.txt", "test_set.txt", "sequencesName.txt")


class SequenceFormatError(ValueError):
    """A folder or file is not a sequence in any supported layout."""


@dataclass
class Frame:
    index: int
    rgb: np.ndarray         # H x W x 3 uint8, RGB order
    thermal: np.ndarray     # H x W x 3 (uint8, or uint16/float32 for deeper files with thermal_depth="native")


@dataclass
class Sequence:
    """One RGB + thermal sequence. Iterating yields ``Frame`` objects in order."""

    name: str
    layout: str
    path: Path
    rgb_files: list[Path]
    thermal_files: list[Path]
    ground_truth: np.ndarray | None = None            # N x 4 x, y, w, h (RGB annotation); NaN = not annotated
    ground_truth_thermal: np.ndarray | None = None    # the thermal annotation where the benchmark has one
    init_box: np.ndarray | None = None                # the box the tracker starts from (frame 0)
    thermal_depth: ThermalDepth = "native"
    annotation_stride: int = 1                         # VTUAV: 10

    def __len__(self) -> int:
        return len(self.rgb_files)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self.frame(i)

    def frame(self, index: int) -> Frame:
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} outside sequence {self.name!r} of {len(self)} frames")
        return Frame(index, read_rgb(self.rgb_files[index]),
                     read_thermal(self.thermal_files[index], self.thermal_depth))

    @property
    def annotated_frames(self) -> np.ndarray:
        """Indices of frames with a ground-truth box."""
        if self.ground_truth is None:
            return np.zeros(0, dtype=int)
        return np.nonzero(np.all(np.isfinite(self.ground_truth), axis=1))[0]


# ------------------------------------------------------------------------------------------ reading images
def read_rgb(path: str | Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_thermal(path: str | Path, depth: ThermalDepth = "native") -> np.ndarray:
    if depth == "8bit":
        return read_rgb(path)
    if depth != "native":
        raise ValueError(f"thermal_depth must be 'native' or '8bit', not {depth!r}")
    # IMREAD_COLOR | IMREAD_ANYDEPTH: identical to IMREAD_COLOR for 8-bit files (EXIF orientation
    # included), but keeps 16-bit / float pixels for the gain control.
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    return files


# ------------------------------------------------------------------------------------------ box files
def read_box_file(path: str | Path, corners: bool = False) -> np.ndarray:
    """``N x 4`` float64 from a comma/space/tab separated file; ``corners``: ``x1 y1 x2 y2`` -> x, y, w, h
    with w = x2 - x1 (as the GTOT toolkit's published numbers use). Blank lines and # comments skipped."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        values = [v for v in re.split(r"[,\s]+", line) if v]
        try:
            row = [float(v) for v in values]
        except ValueError as exc:
            raise SequenceFormatError(f"{path}:{number}: not numbers: {line!r}") from exc
        if len(row) != 4:
            raise SequenceFormatError(f"{path}:{number}: expected 4 values, found {len(row)}")
        rows.append(row)
    boxes = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    if corners:
        boxes = np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
    return boxes


def _sparse(boxes: np.ndarray, stride: int, length: int) -> np.ndarray:
    full = np.full((length, 4), np.nan)
    frames = np.arange(len(boxes)) * stride
    keep = frames < length
    full[frames[keep]] = boxes[keep]
    return full


# ------------------------------------------------------------------------------------------ layouts
_FOLDER_PAIRS = {
    "visible": ("visible", "infrared"),
    "gtot": ("v", "i"),
    "vtuav": ("rgb", ("ir", "ir_gray")),
    "plain": ("rgb", ("thermal", "tir")),
}


def _dir(folder: Path, names: str | tuple[str, ...]) -> Path | None:
    for name in (names,) if isinstance(names, str) else names:
        if (folder / name).is_dir():
            return folder / name
    return None


def detect_layout(folder: str | Path) -> str:
    """Which of ``LAYOUTS`` a sequence folder follows; ``SequenceFormatError`` says what was missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SequenceFormatError(f"{folder} is not a folder")
    has = lambda name: (folder / name).is_file()  # noqa: E731
    if _dir(folder, "visible") and _dir(folder, "infrared"):
        if has("visible.txt") and has("infrared.txt"):
            return "lasher" if has("init.txt") else "rgbt234"
        return "rgbt210" if has("init.txt") else "lasher"
    if _dir(folder, "v") and _dir(folder, "i"):
        return "gtot"
    if _dir(folder, "rgb") and _dir(folder, ("ir", "ir_gray")):
        return "vtuav"
    if _dir(folder, "rgb") and _dir(folder, ("thermal", "tir")):
        return "plain"
    found = sorted(p.name for p in folder.iterdir())[:12]
    raise SequenceFormatError(
        f"{folder} is not a known RGB-thermal sequence layout: expected visible/ + infrared/ (LasHeR, RGBT234, "
        f"RGBT210), v/ + i/ (GTOT), rgb/ + ir/ or ir_gray/ (VTUAV) or rgb/ + thermal/ (plain); found {found}")


def open_sequence(folder: str | Path, layout: str | None = None, thermal_depth: ThermalDepth = "native",
                  name: str | None = None) -> Sequence:
    """A sequence folder in any supported layout (auto-detected unless ``layout`` is given)."""
    folder = Path(folder)
    layout = layout or detect_layout(folder)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    key = {"lasher": "visible", "rgbt234": "visible", "rgbt210": "visible"}.get(layout, layout)
    rgb_dir = _dir(folder, _FOLDER_PAIRS[key][0])
    tir_dir = _dir(folder, _FOLDER_PAIRS[key][1])
    if rgb_dir is None or tir_dir is None:
        raise SequenceFormatError(f"{folder}: layout {layout} needs folders {_FOLDER_PAIRS[key]}")
    rgb_files, tir_files = list_images(rgb_dir), list_images(tir_dir)
    if not rgb_files or not tir_files:
        raise SequenceFormatError(f"{folder}: no images in {rgb_dir.name}/ or {tir_dir.name}/")
    if len(rgb_files) != len(tir_files):
        n = min(len(rgb_files), len(tir_files))
        warnings.warn(f"{folder}: {len(rgb_files)} RGB but {len(tir_files)} thermal images; using the first {n} "
                      "pairs", stacklevel=2)
        rgb_files, tir_files = rgb_files[:n], tir_files[:n]
    n = len(rgb_files)
    gt = gt_t = init = None
    stride = 1
    f = folder.__truediv__
    if layout in ("lasher", "rgbt234", "rgbt210"):
        rgb_gt = next((f(p) for p in ("visible.txt", "init.txt") if f(p).is_file()), None)
        tir_gt = next((f(p) for p in ("infrared.txt", "init.txt") if f(p).is_file()), None)
        gt = read_box_file(rgb_gt) if rgb_gt else None
        gt_t = read_box_file(tir_gt) if tir_gt else None
        init = read_box_file(f("init.txt"))[0] if f("init.txt").is_file() else (gt[0] if gt is not None else None)
    elif layout == "gtot":
        if f("groundTruth_v.txt").is_file():
            gt = read_box_file(f("groundTruth_v.txt"), corners=True)
        if f("groundTruth_i.txt").is_file():
            gt_t = read_box_file(f("groundTruth_i.txt"), corners=True)
        if f("init.txt").is_file():
            init = read_box_file(f("init.txt"))[0]
            if gt is None:
                gt = read_box_file(f("init.txt"))
        elif gt is not None:
            init = gt[0]
    elif layout == "vtuav":
        stride = 10
        if f("rgb.txt").is_file():
            gt = _sparse(read_box_file(f("rgb.txt")), stride, n)
        if f("ir.txt").is_file():
            gt_t = _sparse(read_box_file(f("ir.txt")), stride, n)
        init = gt[0] if gt is not None else (gt_t[0] if gt_t is not None else None)
    else:  # plain
        gt_file = next((f(p) for p in ("groundtruth.txt", "groundtruth_rect.txt", "init.txt") if f(p).is_file()), None)
        if gt_file is not None:
            gt = read_box_file(gt_file)
            init = gt[0] if len(gt) else None
    if gt is not None and gt_t is None:
        gt_t = gt
    return Sequence(name or folder.name, layout, folder, rgb_files, tir_files, gt, gt_t,
                    None if init is None else np.asarray(init, dtype=np.float64), thermal_depth, stride)


# ------------------------------------------------------------------------------------------ videos
@dataclass
class VideoPairSequence:
    """Two synchronised video files (RGB and thermal), read frame by frame with cv2.VideoCapture."""

    rgb_video: Path
    thermal_video: Path
    name: str = ""
    init_box: np.ndarray | None = None
    ground_truth: np.ndarray | None = None
    ground_truth_thermal: np.ndarray | None = None
    layout: str = "video"
    annotation_stride: int = 1
    _length: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        self.rgb_video, self.thermal_video = Path(self.rgb_video), Path(self.thermal_video)
        self.name = self.name or self.rgb_video.stem
        counts = []
        for path in (self.rgb_video, self.thermal_video):
            if not path.is_file():
                raise FileNotFoundError(f"video {path} does not exist")
            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                raise SequenceFormatError(f"OpenCV cannot open video {path}")
            counts.append(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
            cap.release()
        self._length = min(counts)

    @property
    def path(self) -> Path:
        return self.rgb_video.parent

    def __len__(self) -> int:
        """Frame count from the containers (an estimate for some codecs; iteration stops at the shorter)."""
        return self._length

    def __iter__(self) -> Iterator[Frame]:
        rgb_cap = cv2.VideoCapture(str(self.rgb_video))
        tir_cap = cv2.VideoCapture(str(self.thermal_video))
        try:
            index = 0
            while True:
                ok_rgb, rgb = rgb_cap.read()
                ok_tir, tir = tir_cap.read()
                if not (ok_rgb and ok_tir):
                    return
                yield Frame(index, cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB), cv2.cvtColor(tir, cv2.COLOR_BGR2RGB))
                index += 1
        finally:
            rgb_cap.release()
            tir_cap.release()

    @property
    def annotated_frames(self) -> np.ndarray:
        if self.ground_truth is None:
            return np.zeros(0, dtype=int)
        return np.nonzero(np.all(np.isfinite(self.ground_truth), axis=1))[0]


def open_video_pair(rgb_video: str | Path, thermal_video: str | Path, init_box=None,
                    ground_truth: str | Path | None = None, name: str = "") -> VideoPairSequence:
    gt = read_box_file(ground_truth) if ground_truth else None
    init = np.asarray(init_box, dtype=np.float64) if init_box is not None else (gt[0] if gt is not None else None)
    return VideoPairSequence(Path(rgb_video), Path(thermal_video), name, init, gt, gt)


# ------------------------------------------------------------------------------------------ benchmarks
def read_sequence_list(path: str | Path) -> list[str]:
    """Sequence names, one per line (blank lines and # comments skipped, CRLF tolerated)."""
    return [s.strip() for s in Path(path).read_text(encoding="utf-8").splitlines()
            if s.strip() and not s.strip().startswith("#")]


def list_sequences(root: str | Path, sequence_list: str | Path | list[str] | None = None) -> list[Path]:
    """Sequence folders of a benchmark root. With ``sequence_list`` (a file or names): those, in that order;
    otherwise a list file found in the root (``list.txt``, ``testingsetList.txt``, ...), else every
    sub-folder that is a sequence in a known layout, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark folder {root} does not exist")
    names: list[str] | None = None
    if isinstance(sequence_list, (str, Path)):
        names = read_sequence_list(sequence_list)
    elif sequence_list is not None:
        names = list(sequence_list)
    else:
        found = next((root / n for n in LIST_FILE_NAMES if (root / n).is_file()), None)
        names = read_sequence_list(found) if found is not None else None
    if names is not None:
        missing = [n for n in names if not (root / n).is_dir()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} listed sequences are not folders under {root}: {missing[:5]}")
        return [root / n for n in names]
    folders = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            detect_layout(sub)
        except SequenceFormatError:
            continue
        folders.append(sub)
    if not folders:
        raise SequenceFormatError(f"no sequence folders in a known layout under {root}")
    return folders


def open_benchmark(root: str | Path, sequence_list: str | Path | list[str] | None = None,
                   layout: str | None = None, thermal_depth: ThermalDepth = "native") -> list[Sequence]:
    """Every sequence of a benchmark root folder (see ``list_sequences``), opened lazily (no image read)."""
    return [open_sequence(p, layout, thermal_depth) for p in list_sequences(root, sequence_list)]
