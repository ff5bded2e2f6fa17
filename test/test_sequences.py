"""Sequence readers: every benchmark layout, plain folders, videos and benchmark roots."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ckd_ros.data import (SequenceFormatError, detect_layout, list_sequences, open_benchmark, open_sequence,
                          open_video_pair, read_box_file)

RNG = np.random.default_rng(7)


def _images(folder: Path, n: int, prefix: str = "", ext: str = "jpg", grey: bool = False) -> list[np.ndarray]:
    folder.mkdir(parents=True)
    frames = []
    for i in range(n):
        img = RNG.integers(0, 256, (24, 32) if grey else (24, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{prefix}{i:04d}.{ext}"), img)
        frames.append(img)
    return frames


def _boxes(n: int, sep: str = ",") -> str:
    return "".join(sep.join(str(v) for v in (2 + i, 3, 10, 8)) + "\n" for i in range(n))


def test_lasher_layout_reads_sorted_pairs_and_the_comma_separated_init(tmp_path):
    _images(tmp_path / "visible", 3, "v")
    _images(tmp_path / "infrared", 3, "i", grey=True)
    for name in ("init.txt", "visible.txt", "infrared.txt"):
        (tmp_path / name).write_text(_boxes(3))
    seq = open_sequence(tmp_path)
    assert seq.layout == "lasher" and len(seq) == 3
    assert seq.init_box.tolist() == [2, 3, 10, 8] and seq.ground_truth.shape == (3, 4)
    frame = seq.frame(1)
    assert frame.rgb.shape == (24, 32, 3) and frame.thermal.shape == (24, 32, 3)
    assert np.array_equal(frame.thermal[..., 0], frame.thermal[..., 2])     # grey -> 3 equal channels


def test_rgbt234_has_one_ground_truth_per_modality_and_rgbt210_only_init(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        _images(root / "visible", 2)
        _images(root / "infrared", 2)
    (a / "visible.txt").write_text(_boxes(2))
    (a / "infrared.txt").write_text("5,5,4,4\n6,6,4,4\n")
    (b / "init.txt").write_text(_boxes(2))
    sa, sb = open_sequence(a), open_sequence(b)
    assert (sa.layout, sb.layout) == ("rgbt234", "rgbt210")
    assert sa.ground_truth_thermal[1].tolist() == [6, 6, 4, 4] and sa.init_box.tolist() == [2, 3, 10, 8]
    assert sb.init_box.tolist() == [2, 3, 10, 8]


def test_gtot_corner_ground_truth_becomes_xywh_with_width_x2_minus_x1(tmp_path):
    _images(tmp_path / "v", 2)
    _images(tmp_path / "i", 2)
    (tmp_path / "groundTruth_v.txt").write_text("209 155 309 218\n203 154 298 217\n")
    (tmp_path / "groundTruth_i.txt").write_text("210 155 314 214\n204 155 306 214\n")
    (tmp_path / "init.txt").write_text("209\t155\t100\t63\n203\t154\t95\t63\n")
    seq = open_sequence(tmp_path)
    assert seq.layout == "gtot"
    assert seq.ground_truth[0].tolist() == [209, 155, 100, 63] and seq.ground_truth_thermal[1].tolist() == [204, 155, 102, 59]
    assert seq.init_box.tolist() == [209, 155, 100, 63]


def test_vtuav_ground_truth_is_sparse_every_tenth_frame(tmp_path):
    _images(tmp_path / "rgb", 21)
    _images(tmp_path / "ir", 21)
    (tmp_path / "rgb.txt").write_text("1 1 5 5\n2 2 5 5\n3 3 5 5\n")
    (tmp_path / "ir.txt").write_text("1 1 6 6\n2 2 6 6\n3 3 6 6\n\n")
    seq = open_sequence(tmp_path)
    assert seq.layout == "vtuav" and seq.annotation_stride == 10
    assert seq.annotated_frames.tolist() == [0, 10, 20]
    assert np.isnan(seq.ground_truth[5]).all() and seq.ground_truth_thermal[20].tolist() == [3, 3, 6, 6]


def test_plain_layout_keeps_16_bit_thermal_for_the_gain_control(tmp_path):
    _images(tmp_path / "rgb", 2, ext="png")
    (tmp_path / "thermal").mkdir()
    raw = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 50 + 20000).astype(np.uint16)
    for i in range(2):
        cv2.imwrite(str(tmp_path / "thermal" / f"{i:04d}.png"), raw)
    seq = open_sequence(tmp_path)
    assert seq.layout == "plain" and seq.init_box is None
    assert seq.frame(0).thermal.dtype == np.uint16 and np.array_equal(seq.frame(0).thermal[..., 1], raw)
    eight = open_sequence(tmp_path, thermal_depth="8bit").frame(0).thermal
    assert eight.dtype == np.uint8


def test_reading_equals_the_reference_imread_bgr_to_rgb(reference_dir):
    seq = open_sequence(reference_dir / "seq")
    for i in (0, 11):
        frame = seq.frame(i)
        for got, path in ((frame.rgb, seq.rgb_files[i]), (frame.thermal, seq.thermal_files[i])):
            assert np.array_equal(got, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))


def test_the_real_vtuav_sequence_is_detected_with_its_ir_gray_folder(shared_data_dir):
    seq = open_sequence(shared_data_dir / "vtuav_bus1")
    assert seq.layout == "vtuav" and len(seq) == 101
    assert seq.annotated_frames.tolist() == list(range(0, 101, 10))
    assert seq.init_box.tolist() == [585, 94, 66, 83]


def test_an_unknown_folder_layout_is_a_clear_error(tmp_path):
    _images(tmp_path / "colour", 1)
    with pytest.raises(SequenceFormatError, match="not a known RGB-thermal sequence layout.*colour"):
        detect_layout(tmp_path)
    (tmp_path / "bad.txt").write_text("1,2,3\n")
    with pytest.raises(SequenceFormatError, match="expected 4 values"):
        read_box_file(tmp_path / "bad.txt")


def test_benchmark_roots_list_their_sequences_from_a_list_file_or_by_detection(tmp_path):
    for name in ("b", "a"):
        _images(tmp_path / name / "visible", 1)
        _images(tmp_path / name / "infrared", 1)
        (tmp_path / name / "init.txt").write_text(_boxes(1))
    (tmp_path / "notes").mkdir()
    assert [p.name for p in list_sequences(tmp_path)] == ["a", "b"]
    (tmp_path / "list.txt").write_text("b\na\n")
    assert [s.name for s in open_benchmark(tmp_path)] == ["b", "a"]
    assert [p.name for p in list_sequences(tmp_path, ["a"])] == ["a"]
    with pytest.raises(FileNotFoundError, match="missing_one"):
        list_sequences(tmp_path, ["a", "missing_one"])


def test_a_pair_of_videos_yields_synchronised_rgb_frames(tmp_path):
    paths = [tmp_path / "rgb.avi", tmp_path / "tir.avi"]
    writers = [cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24)) for p in paths]
    if not all(w.isOpened() for w in writers):
        pytest.skip("this OpenCV build has no MJPG writer")
    for i in range(5):
        writers[0].write(np.full((24, 32, 3), (255, 0, 0), np.uint8))     # blue in BGR
        writers[1].write(np.full((24, 32, 3), 40 * i, np.uint8))
    for w in writers:
        w.release()
    seq = open_video_pair(*paths, init_box=[1, 2, 3, 4])
    frames = list(seq)
    assert len(frames) == 5 and seq.init_box.tolist() == [1, 2, 3, 4]
    assert frames[0].rgb[12, 16, 2] > 200 and frames[0].rgb[12, 16, 0] < 50     # RGB order
    assert abs(int(frames[3].thermal[12, 16, 0]) - 120) < 8
    with pytest.raises(FileNotFoundError):
        open_video_pair(tmp_path / "none.mp4", paths[1])
