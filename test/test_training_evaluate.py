"""Scoring checkpoints on held-out synthetic sequences (the command behind the embedded model's numbers)."""
from __future__ import annotations

import json

import numpy as np
import torch

from ckd_ros.data.synthetic import SyntheticConfig
from ckd_ros.model import default_checkpoint_path
from ckd_ros.training.evaluate_synthetic import (evaluate, evaluate_parallel, format_margins, format_table, load_models,
                                                 main, standard_error, success_auc)


def test_success_auc_counts_frames_above_each_of_21_thresholds_and_ignores_the_first_frame() -> None:
    gt = np.array([[10.0, 10.0, 20.0, 20.0]] * 3)
    assert success_auc(gt, gt) == 20 / 21  # IoU 1 exceeds every threshold but 1 itself (OTB convention)
    shifted = gt + [10.0, 0.0, 0.0, 0.0]  # half a width off: IoU 1/3, above 0 .. 0.30
    assert abs(success_auc(shifted, gt) - 7 / 21) < 1e-12
    first_wrong = gt.copy()
    first_wrong[0] = [500.0, 500.0, 1.0, 1.0]
    assert success_auc(first_wrong, gt) == 20 / 21


def test_command_scores_fused_and_single_modality_models_and_prints_the_margins(tmp_path, capsys) -> None:
    ckpt = str(default_checkpoint_path())
    out = tmp_path / "scores.json"
    assert main(["--checkpoint", f"rgbt={ckpt}", "--checkpoint", f"rgb={ckpt}:rgb", "--seeds", "100000,100001",
                 "--conditions", "dark,crossover", "--frames", "6", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| rgbt |" in text and "| rgb |" in text and "| rgbt - rgb |" in text
    res = json.loads(out.read_text())
    assert set(res["auc"]) == {"rgbt", "rgb"} and set(res["auc"]["rgbt"]) == {"dark", "crossover", "all"}
    for model in res["auc"].values():
        assert all(0.0 <= v <= 20 / 21 for v in model.values())
    margin_row = next(line for line in text.splitlines() if line.startswith("| rgbt - rgb |"))
    expected = res["auc"]["rgbt"]["dark"] - res["auc"]["rgb"]["dark"]
    paired = standard_error(np.subtract(res["per_sequence"]["rgbt"]["dark"], res["per_sequence"]["rgb"]["dark"]))
    assert margin_row.split("|")[2].strip() == f"{expected:+.3f} ± {paired:.3f}"
    assert f"{res['auc']['rgb']['crossover']:.3f} ± {res['sem']['rgb']['crossover']:.3f}" in text


def test_generator_settings_select_the_scenes_the_models_are_scored_on(tmp_path, capsys) -> None:
    tir = f"tir={default_checkpoint_path()}:tir"
    common = ["--checkpoint", tir, "--seeds", "100000,100001", "--conditions", "crossover", "--frames", "8"]
    scores = {}
    for profile in ("constant", "dusk"):
        out = tmp_path / f"{profile}.json"
        assert main(common + ["--generator", f"crossover_profile={profile}", "--json", str(out)]) == 0
        scores[profile] = json.loads(out.read_text())["auc"]["tir"]["crossover"]
    # a dusk crossover leaves the target warm in the first frames: thermal alone follows it there
    assert scores["dusk"] > scores["constant"] + 0.15, scores  # measured: 0.32 against 0.07
    assert main(common + ["--generator", "crossover_profile=sunset"]) == 2
    assert main(common + ["--generator", "no_such_knob=1"]) == 2
    assert "--generator" in capsys.readouterr().err


def test_a_fused_model_can_be_scored_with_its_head_seeing_one_student(tmp_path, capsys) -> None:
    ckpt = str(default_checkpoint_path())
    out = tmp_path / "heads.json"
    assert main(["--checkpoint", f"rgbt={ckpt}", "--checkpoint", f"no_tir={ckpt}:fused-rgb", "--seeds", "100000",
                 "--conditions", "glare", "--frames", "8", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    # in glare RGB is washed out: the head that sees the RGB student only loses what thermal gave it
    assert res["auc"]["no_tir"]["glare"] < res["auc"]["rgbt"]["glare"] - 0.2, res["auc"]
    assert "| rgbt - no_tir |" in capsys.readouterr().out


def test_means_carry_their_standard_error_and_margins_the_paired_one() -> None:
    assert abs(standard_error([0.9, 0.1, 0.9, 0.1]) - 0.4 / np.sqrt(3)) < 1e-12  # std (n - 1) 0.462 / sqrt(4)
    per_seq = {"f": {"dark": [0.9, 0.1, 0.9, 0.1]}, "s": {"dark": [0.8, 0.0, 0.8, 0.1]}}
    auc = {m: {"dark": float(np.mean(v["dark"])), "all": float(np.mean(v["dark"]))} for m, v in per_seq.items()}
    table = format_table(auc, ["dark"], {m: {"dark": 0.2, "all": 0.2} for m in auc})
    assert "| f | 0.500 ± 0.200 | 0.500 ± 0.200 |" in table
    margins = format_margins(auc, {"f": "rgbt", "s": "rgb"}, ["dark"], per_seq)
    # differences 0.1, 0.1, 0.1, 0.0: a lead of 0.075 whose paired error (0.025) is far below either mean's
    assert "| f - s | +0.075 ± 0.025 | +0.075 ± 0.025 |" in margins
    assert "±" not in format_margins(auc, {"f": "rgbt", "s": "rgb"}, ["dark"])


def test_two_fused_models_are_compared_with_each_other_as_well() -> None:
    per_seq = {"new": {"dark": [0.9, 0.5, 0.2]}, "old": {"dark": [0.7, 0.5, 0.3]}, "s": {"dark": [0.1, 0.1, 0.1]}}
    auc = {m: {"dark": float(np.mean(v["dark"])), "all": float(np.mean(v["dark"]))} for m, v in per_seq.items()}
    margins = format_margins(auc, {"new": "rgbt", "old": "rgbt", "s": "rgb"}, ["dark"], per_seq)
    rows = [line.split(" |")[0] for line in margins.splitlines()[2:]]
    assert rows == ["| new - s", "| new - old", "| old - s"]
    # differences +0.2, 0, -0.1: mean +0.033, paired error 0.088
    assert "| new - old | +0.033 ± 0.088 |" in margins


def test_sequences_shared_among_processes_score_exactly_as_in_one_process() -> None:
    ckpt = str(default_checkpoint_path())
    specs = {"rgbt": (ckpt, "rgbt"), "tir": (ckpt, "tir")}
    seeds, conditions, config = [100000, 100001, 100002], ["normal", "crossover"], SyntheticConfig(num_frames=8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count: the same arithmetic, bit for bit
    try:
        serial = evaluate(load_models(specs), seeds, conditions, config)
    finally:
        torch.set_num_threads(threads)
    shared = evaluate_parallel(specs, seeds, conditions, config, jobs=4, threads=1)  # 6 sequences, 4 processes
    assert shared["per_sequence"] == serial["per_sequence"]
    assert shared["auc"] == serial["auc"] and shared["seeds"] == seeds and shared["conditions"] == conditions
    # the per-sequence lists really are in (condition, seed) order: thermal-only loses crossover scenes
    assert len(set(serial["per_sequence"]["rgbt"]["normal"])) > 1
    assert serial["auc"]["tir"]["crossover"] < serial["auc"]["tir"]["normal"]


def test_command_refuses_a_job_count_below_one(capsys) -> None:
    assert main(["--checkpoint", f"rgbt={default_checkpoint_path()}", "--jobs", "0"]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err
