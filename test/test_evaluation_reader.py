"""Published result files as they come: every quirk the reader accepts, and what it does with files it cannot read."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ckd_ros.evaluation.benchmarks import GTOT, LASHER, RGBT234, Benchmark, SequenceTruth
from ckd_ros.evaluation.cli import score_main
from ckd_ros.evaluation.report import summary_table
from ckd_ros.evaluation.result_folder import guess_prefix, read_result_folder
from ckd_ros.data.box_files import CORNERS, LTRB, LTWH, parse_box_file, read_box_file, read_boxes
from ckd_ros.evaluation.scoring import ResultWarning, score_folder

GT = [[10, 20, 30, 40], [12, 20, 30, 40], [14, 21, 30, 40], [16, 22, 30, 40]]


def truth(name: str, boxes=GT) -> SequenceTruth:
    v = np.asarray(boxes, dtype=float)
    return SequenceTruth(name, v, v.copy(), np.arange(len(v)))


def bench(rules=RGBT234, names=("car", "blackcar")) -> Benchmark:
    return Benchmark(rules, {n: truth(n) for n in names})


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline=newline) as f:
        f.write(text)
    return path


def perfect_lines(sep: str = ",") -> str:
    return "".join(sep.join(str(v) for v in b) + "\n" for b in GT)


# ---------------------------------------------------------------- lines and values

def test_separators_comma_tab_space_semicolon_and_mixed_read_alike(tmp_path):
    f = write(tmp_path / "r.txt", "1,2,3,4\n5 6 7 8\n9\t10\t11\t12\n13, 14,\t15  16\n17;18;19;20\n")
    assert read_box_file(f).tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16],
                                         [17, 18, 19, 20]]


def test_windows_line_ends_a_byte_order_mark_and_trailing_commas_are_read(tmp_path):
    f = tmp_path / "r.txt"
    f.write_bytes(b"\xef\xbb\xbf1,2,3,4,\r\n5,6,7,8\r\n\r\n")
    assert read_box_file(f).tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_trailing_blank_lines_are_dropped_but_blank_rows_between_boxes_are_frames_without_a_box(tmp_path):
    f = write(tmp_path / "r.txt", "1 2 3 4\n\n5 6 7 8\n\n\n   \n")
    text = parse_box_file(f)
    assert text.values.shape == (3, 4)           # frame 1 has no box; the frames after it stay aligned
    assert np.isnan(text.values[1]).all() and text.values[2].tolist() == [5, 6, 7, 8]
    assert text.empty_rows == [2]


def test_nan_rows_and_rows_of_empty_fields_are_frames_without_a_box(tmp_path):
    f = write(tmp_path / "r.txt", "1,2,3,4\nNaN,NaN,NaN,NaN\n,,,\nnan\n5,6,7,8\n")
    text = parse_box_file(f)
    assert text.values.shape == (5, 4) and np.isnan(text.values[1:4]).all()
    assert text.empty_rows == [2, 3, 4]


def test_a_header_line_and_comment_lines_are_skipped(tmp_path):
    f = write(tmp_path / "r.txt", "x,y,w,h\n# frame 0 is the initial box\n1,2,3,4\n5,6,7,8\n")
    text = parse_box_file(f)
    assert text.header == "x,y,w,h" and text.values.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_words_after_the_first_box_are_refused_with_the_line_and_the_word(tmp_path):
    f = write(tmp_path / "r.txt", "x y w h\n1 2 3 4\n1 2 lost 4\n")
    with pytest.raises(ValueError, match=r"r.txt:3: 'lost' is not a number"):
        read_box_file(f)


def test_other_counts_of_values_are_refused_with_their_line(tmp_path):
    with pytest.raises(ValueError, match=r"r.txt:1: 5 values; expected 4 .* or 8"):
        read_box_file(write(tmp_path / "r.txt", "1 2 3 4 0.9\n"))
    with pytest.raises(ValueError, match=r"r.txt:3: lines hold different numbers of values: 3 here, 4 on line 1"):
        read_box_file(write(tmp_path / "r.txt", "1 2 3 4\n1 2 3 4\n1 2 3\n"))
    with pytest.raises(ValueError, match=r"no boxes in the file \(only NaN rows\)"):
        read_box_file(write(tmp_path / "r.txt", "nan nan nan nan\n"))


def test_polygons_become_their_bounding_box_in_any_corner_order(tmp_path):
    gtot_order = write(tmp_path / "a.txt", "10 20 40 20 40 60 10 60\n")
    rotated = write(tmp_path / "b.txt", "25 20 40 40 25 60 10 40\n")   # a diamond: top, right, bottom, left
    for f in (gtot_order, rotated):
        assert read_boxes(f, None, inclusive_width=False).tolist() == [[10, 20, 30, 40]], f.name
        assert read_boxes(f, CORNERS, inclusive_width=True).tolist() == [[10, 20, 31, 41]], f.name


# ---------------------------------------------------------------- layouts of a folder

def _corner_lines(inclusive: bool) -> str:
    extra = 1 if inclusive else 0
    return "".join(f"{x} {y} {x + w - extra} {y + h - extra}\n" for x, y, w, h in GT)


def test_x1y1x2y2_results_are_detected_from_the_ground_truth(tmp_path):
    for n in ("car", "blackcar"):
        write(tmp_path / "T" / f"T_{n}.txt", _corner_lines(inclusive=True))
    read = read_result_folder(tmp_path / "T", bench())
    assert read.layout == LTRB and read.layout_detected
    assert read.boxes["car"].tolist() == GT
    assert "x1 y1 x2 y2 (detected)" in read.describe()
    s = score_folder(tmp_path / "T", bench())
    assert s.overall.precision == 1.0


def test_xywh_results_stay_xywh_when_corners_would_not_fit(tmp_path):
    # every box here also reads as valid corners (x2 > x1, y2 > y1), so only the ground truth can tell
    gt = [[5, 5, 30, 40], [6, 5, 30, 40]]
    b = Benchmark(RGBT234, {"car": truth("car", gt)})
    write(tmp_path / "T" / "car.txt", "5,5,30,40\n6,5,30,40\n")
    read = read_result_folder(tmp_path / "T", b)
    assert read.layout == LTWH and read.boxes["car"].tolist() == gt


def test_format_chooses_the_layout_and_a_file_that_does_not_have_it_is_named(tmp_path):
    write(tmp_path / "T" / "car.txt", _corner_lines(inclusive=True))
    write(tmp_path / "T" / "blackcar.txt", "10 20 39 20 39 59 10 59\n" * 4)
    read = read_result_folder(tmp_path / "T", bench(), fmt="x1y1x2y2")
    assert read.layout == LTRB and not read.layout_detected and read.boxes["car"].tolist() == GT
    assert "blackcar" in read.unreadable and "8 values per line, but --format x1y1x2y2 needs 4" in read.unreadable[
        "blackcar"]
    forced = read_result_folder(tmp_path / "T", bench(), fmt="xywh")
    assert forced.boxes["car"][0].tolist() == [10, 20, 39, 59]     # taken as x y w h, as asked
    with pytest.raises(ValueError, match="unknown result format"):
        read_result_folder(tmp_path / "T", bench(), fmt="yolo")


def test_gtot_corner_results_take_x2_minus_x1_widths(tmp_path):
    write(tmp_path / "T" / "car.txt", _corner_lines(inclusive=False))
    b = Benchmark(GTOT, {"car": truth("car")})
    assert read_result_folder(tmp_path / "T", b).boxes["car"].tolist() == GT


# ---------------------------------------------------------------- file names

@pytest.mark.parametrize("pattern, prefix", [("{seq}.txt", ""), ("Tracker_{seq}.txt", "Tracker_"),
                                             ("Tracker_RGBT234_test_{seq}.txt", "Tracker_RGBT234_test_")])
def test_file_names_with_and_without_a_tracker_and_benchmark_prefix_are_found(tmp_path, pattern, prefix):
    folder = tmp_path / "Tracker"
    for n in ("car", "blackcar"):
        write(folder / pattern.format(seq=n), perfect_lines())
    write(folder / pattern.format(seq="car_time"), "0.1\n" * 4)    # timing files are not results
    read = read_result_folder(folder, bench())
    assert read.prefix == prefix and read.prefix_guessed
    assert read.files["blackcar"].name == pattern.format(seq="blackcar")
    s = score_folder(folder, bench())
    assert s.overall.precision == 1.0 and s.tracker == "Tracker"
    if prefix:
        assert f"prefix {prefix!r} guessed from the folder" in s.source


def test_the_prefix_that_matches_most_sequences_wins_and_ties_go_to_the_folder_and_benchmark_names(tmp_path):
    folder = tmp_path / "APFNet"
    for n in ("car", "blackcar", "bike"):
        write(folder / f"APFNet_RGBT210_{n}.txt", "1 2 3 4\n")
        write(folder / f"APFNet_RGBT234_{n}.txt", "1 2 3 4\n")
    write(folder / "other_car.txt", "1 2 3 4\n")
    names = ["car", "blackcar", "bike"]
    assert guess_prefix(folder, names, ("APFNet", "RGBT234")) == "APFNet_RGBT234_"
    assert guess_prefix(folder, names, ("APFNet", "RGBT210")) == "APFNet_RGBT210_"
    # "blackcar.txt" ends with "car" but "black" is no prefix: a prefix ends in "_" or "-"
    write(tmp_path / "plain" / "blackcar.txt", "1 2 3 4\n")
    assert guess_prefix(tmp_path / "plain", ["car", "blackcar"]) == ""


def test_a_given_prefix_is_used_as_given_and_missing_files_are_refused_by_name(tmp_path):
    write(tmp_path / "T" / "x-car.txt", perfect_lines())
    with pytest.raises(FileNotFoundError, match=r"no result file for 1 of 2 sequences \(looked for x-<seq>.txt\), "
                                                r"e.g. \['blackcar'\]; the folder holds e.g. \['x-car.txt'\]"):
        read_result_folder(tmp_path / "T", bench(), prefix="x-")


# ---------------------------------------------------------------- unreadable, short and long files

def _two_sequence_folder(tmp_path: Path) -> tuple[Path, Path]:
    for n in ("car", "blackcar"):
        seq = tmp_path / "gt" / n
        write(seq / "visible.txt", perfect_lines())
        write(seq / "infrared.txt", perfect_lines())
    res = tmp_path / "Mine"
    write(res / "Mine_car.txt", perfect_lines(" "))
    return tmp_path / "gt", res


def test_an_unreadable_file_is_named_with_line_and_reason_and_the_others_are_scored(tmp_path):
    gt, res = _two_sequence_folder(tmp_path)
    write(res / "Mine_blackcar.txt", "10,20,30,40\n12,20,30,forty\n")
    with pytest.warns(ResultWarning, match=r"1 of 2 result files could not be read .* \(1 sequences scored\): "
                                           r".*Mine_blackcar.txt:2: 'forty' is not a number"):
        s = score_folder(res, bench())
    assert list(s.per_sequence) == ["car"] and list(s.skipped) == ["blackcar"]
    assert s.overall.precision == 1.0
    header, rows = summary_table([s])
    assert rows[0][header.index("Sequences")] == "1/2"
    with pytest.raises(ValueError, match=r"Mine_blackcar.txt:2: 'forty' is not a number"):
        score_folder(res, bench(), strict=True)
    write(res / "Mine_car.txt", "")
    with pytest.raises(ValueError, match=r"none of the 2 RGBT234 results could be read: .*no boxes in the file"):
        score_folder(res, bench())


def test_short_and_long_results_are_scored_and_named_in_one_warning(tmp_path):
    _, res = _two_sequence_folder(tmp_path)
    write(res / "Mine_car.txt", perfect_lines()[: -len("16,22,30,40\n")])            # a line short
    write(res / "Mine_blackcar.txt", perfect_lines() + "900,900,5,5\n" * 2)          # two lines long
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = score_folder(res, bench())
    notes = [str(w.message) for w in caught if issubclass(w.category, ResultWarning)]
    assert notes == s.notes and len(notes) == 1
    assert notes[0] == ("Mine: of 2 results 1 shorter than the ground truth, scored over the frames both have: "
                        "car (3 boxes, 3 of 4 annotated frames scored); "
                        "1 longer than the ground truth, cut to it: blackcar (6 boxes for 4 frames)")
    assert s.per_sequence["car"].frames == 3 and s.per_sequence["blackcar"].frames == 4
    assert s.overall.precision == 1.0 and s.overall.frames == 7
    with pytest.raises(ValueError, match="sequence car: result has 3 boxes but the ground truth annotates frames "
                                         "up to 3"):
        score_folder(res, bench(), strict=True)


def test_empty_rows_are_reported_and_lasher_repairs_them_with_the_previous_box(tmp_path):
    res = tmp_path / "T"
    write(res / "car.txt", "10,20,30,40\n12,20,30,40\n\n16,22,30,40\n")
    b = Benchmark(LASHER, {"car": truth("car")})
    with pytest.warns(ResultWarning, match=r"1 blank or NaN rows read as frames without a box in 1 files: "
                                           r"car \(line 3\)"):
        s = score_folder(res, b)
    # frame 2 takes frame 1's box: 2 px from its ground truth, so precision holds and overlap drops
    assert s.per_sequence["car"].frames == 4 and s.overall.precision == 1.0
    assert s.per_sequence["car"].overlaps[2] < 1.0
    with pytest.warns(ResultWarning):
        r = score_folder(res, Benchmark(RGBT234, {"car": truth("car")}))
    assert np.isnan(r.per_sequence["car"].errors[2]) and r.overall.precision == 0.75   # a miss elsewhere


# ---------------------------------------------------------------- the command line

def test_score_cli_warns_scores_the_rest_and_counts_the_sequences_in_the_table(tmp_path, capsys):
    gt, res = _two_sequence_folder(tmp_path)
    write(res / "Mine_car.txt", perfect_lines(" ")[: -len("16 22 30 40\n")], newline="\r\n")
    write(res / "Mine_blackcar.txt", "x y w h\n10 20 30 40\n??\n")
    assert score_main([str(res), "-b", "rgbt234", "--gt", str(gt), "--no-plots", "-o", str(tmp_path / "rep")]) == 0
    captured = capsys.readouterr()
    assert "ckd score: warning: Mine: of 1 results 1 shorter than the ground truth" in captured.err
    assert "car (3 boxes, 3 of 4 annotated frames scored)" in captured.err
    assert "Mine_blackcar.txt:3: '??' is not a number" in captured.err
    assert "Mine: 2 files Mine_<seq>.txt (prefix 'Mine_' guessed from the folder), boxes x y w h" in captured.out
    row = (tmp_path / "rep" / "summary.csv").read_text().splitlines()[1].split(",")
    assert row == ["Mine", "100.0", "95.2", "1/2", "3"]
    assert score_main([str(res), "-b", "rgbt234", "--gt", str(gt), "--no-plots", "--strict"]) == 1
    assert "Mine_blackcar.txt:3: '??' is not a number" in capsys.readouterr().err
