"""`ckd eval` and `ckd score` end to end: real checkpoint, real images, result files, tables, plots."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ckd_ros.evaluation.benchmarks import get_rules, load_benchmark
from ckd_ros.evaluation.cli import eval_main, score_main
from ckd_ros.data.box_files import read_box_file
from ckd_ros.evaluation.runner import EvalConfig, benchmark_sequences, parse_shard, run_benchmark, shard_sequences

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(reference_dir) -> Path:
    return reference_dir / "ckd_small.pth.tar"


@pytest.fixture(scope="module")
def synthetic_benchmark(tmp_path_factory) -> Path:
    synthetic = pytest.importorskip("ckd_ros.data.synthetic", reason="the synthetic generator is not available")
    root = tmp_path_factory.mktemp("synthetic_lasher")
    for seed, condition in ((1, "normal"), (2, "dark"), (3, "occlusion")):
        seq = synthetic.generate_sequence(seed, condition, num_frames=12, size=(192, 160))
        synthetic.write_sequence(root / f"syn{seed}_{condition}", seq, layout="lasher")
    return root


def _eval(root: Path, out: Path, checkpoint: Path, *extra: str) -> int:
    return eval_main([str(root), "-b", "lasher", "-o", str(out), "--checkpoint", str(checkpoint),
                      "--no-progress", *extra])


@pytest.mark.slow
def test_eval_then_score_a_synthetic_benchmark_writes_results_times_tables_and_plots(
        synthetic_benchmark, checkpoint, tmp_path, capsys):
    out = tmp_path / "CKD"
    assert _eval(synthetic_benchmark, out, checkpoint, "--score") == 0
    names = sorted(p.name for p in synthetic_benchmark.iterdir() if p.is_dir())
    for n in names:
        boxes = read_box_file(out / f"{n}.txt")
        assert boxes.shape == (12, 4)
        gt = read_box_file(synthetic_benchmark / n / "init.txt")
        assert np.allclose(boxes[0], gt[0], atol=1e-3)  # frame 0 is the given box
        times = np.loadtxt(out / f"{n}_time.txt")
        assert times.shape == (12,) and (times > 0).all()
    text = capsys.readouterr().out
    assert "3 sequences run, 0 already done" in text
    assert "PR" in text and "NPR" in text and "SR" in text and "CKD" in text
    for f in ("summary.md", "summary.csv", "per_sequence_CKD.csv", "LasHeR_precision.png",
              "LasHeR_success.png", "LasHeR_normalised.png"):
        assert (out / "scores" / f).stat().st_size > 0, f
    assert (out / "scores" / "LasHeR_success.png").read_bytes()[:4] == b"\x89PNG"

    # resuming does nothing; a sequence whose file was cut short is run again
    assert _eval(synthetic_benchmark, out, checkpoint) == 0
    assert "0 sequences run, 3 already done" in capsys.readouterr().out
    victim = out / f"{names[1]}.txt"
    victim.write_text("".join(victim.read_text().splitlines(keepends=True)[:5]))
    assert _eval(synthetic_benchmark, out, checkpoint) == 0
    assert "1 sequences run, 2 already done" in capsys.readouterr().out
    assert read_box_file(victim).shape == (12, 4)

    # a second tracker's folder scores beside the first: one row and one curve each
    other = tmp_path / "Shifted"
    shutil.copytree(out, other, ignore=shutil.ignore_patterns("scores"))
    for n in names:
        b = read_box_file(other / f"{n}.txt")
        b[1:, 0] += 15
        np.savetxt(other / f"{n}.txt", b, delimiter=",", fmt="%.2f")
    report = tmp_path / "report"
    assert score_main([str(out), str(other), "-b", "lasher", "--gt", str(synthetic_benchmark),
                       "-o", str(report)]) == 0
    table = (report / "summary.csv").read_text().splitlines()
    assert table[0].startswith("Tracker,PR,NPR,SR") and len(table) == 3


def test_shards_split_the_sequences_exactly_once_and_deterministically():
    names = [f"s{i:02d}" for i in range(10)]
    shards = [shard_sequences(list(reversed(names)), parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(sum(shards, [])) == names
    assert shards[0] == ["s00", "s03", "s06", "s09"]
    for bad in ("3/3", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


@pytest.mark.slow
def test_shards_run_in_separate_processes_cover_the_benchmark(synthetic_benchmark, checkpoint, tmp_path):
    out = tmp_path / "sharded"
    procs = [subprocess.run([sys.executable, "-m", "ckd_ros.cli", "eval", str(synthetic_benchmark), "-b", "lasher",
                             "-o", str(out), "--checkpoint", str(checkpoint), "--shard", f"{i}/2", "--no-progress",
                             "--max-frames", "4"],
                            cwd=REPO, capture_output=True, text=True, timeout=600) for i in range(2)]
    for p in procs:
        assert p.returncode == 0, p.stderr
    assert "2 sequences run" in procs[0].stdout and "1 sequences run" in procs[1].stdout
    assert sorted(p.name for p in out.glob("*_time.txt")) == sorted(
        f"{p.name}_time.txt" for p in synthetic_benchmark.iterdir() if p.is_dir())


@pytest.mark.slow
def test_eval_and_score_run_on_the_real_vtuav_bus_sequence(shared_data_dir, checkpoint, tmp_path, capsys):
    src = shared_data_dir / "vtuav_bus1"
    if not src.is_dir():
        pytest.skip(f"{src} is absent")
    # the first 21 frames (annotations on frames 0, 10, 20) keep the run short on a CPU
    seq = tmp_path / "bench" / "bus1"
    for sub in ("rgb", "ir_gray"):
        (seq / sub).mkdir(parents=True)
        for f in sorted((src / sub).glob("*.jpg"))[:21]:
            shutil.copy(f, seq / sub / f.name)
    for gt in ("rgb.txt", "ir.txt"):
        (seq / gt).write_text("".join((src / gt).read_text().splitlines(keepends=True)[:3]))
    out = tmp_path / "CKD"
    assert eval_main([str(tmp_path / "bench"), "-b", "vtuav", "-o", str(out), "--checkpoint", str(checkpoint),
                      "--no-progress", "--score"]) == 0
    assert read_box_file(out / "bus1.txt").shape == (21, 4)
    text = capsys.readouterr().out
    assert "MPR" in text and "MSR" in text
    assert (out / "scores" / "VTUAV_success.png").is_file()
    bench = load_benchmark("vtuav", tmp_path / "bench")
    assert bench.sequences["bus1"].frames.tolist() == [0, 10, 20]


def test_score_cli_refuses_missing_results_with_a_clear_message(tmp_path, capsys):
    seq = tmp_path / "gt" / "a"
    seq.mkdir(parents=True)
    (seq / "init.txt").write_text("1,1,10,10\n1,1,10,10\n")
    (tmp_path / "res").mkdir()
    assert score_main([str(tmp_path / "res"), "-b", "lasher", "--gt", str(tmp_path / "gt")]) == 1
    assert "no result file for 1 of 1 sequences" in capsys.readouterr().err


def test_score_cli_scores_a_small_folder_and_prints_the_table(tmp_path, capsys):
    for name, box in (("a", "11,11,10,10"), ("b", "21,21,8,8")):
        seq = tmp_path / "gt" / name
        seq.mkdir(parents=True)
        (seq / "visible.txt").write_text(f"{box}\n{box}\n")
        (seq / "infrared.txt").write_text(f"{box}\n{box}\n")
    res = tmp_path / "Mine"
    res.mkdir()
    (res / "Mine_a.txt").write_text("11 11 10 10\n11 11 10 10\n")   # perfect
    (res / "Mine_b.txt").write_text("21\t21\t8\t8\n200\t200\t8\t8\n")  # lost in frame 1
    assert score_main([str(res), "-b", "rgbt234", "--gt", str(tmp_path / "gt"), "--no-plots",
                       "-o", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "MPR" in out and "Mine" in out
    row = (tmp_path / "rep" / "summary.csv").read_text().splitlines()[1].split(",")
    assert row[:2] == ["Mine", "75.0"]  # (1 + 1/2) / 2
    assert not (tmp_path / "rep" / "RGBT234_success.png").exists()


def _gtot_sequence(folder: Path, seed: int) -> np.ndarray:
    """A GTOT-layout sequence (v/, i/, corner ground truth) from the synthetic generator; its x y w h boxes."""
    synthetic = pytest.importorskip("ckd_ros.data.synthetic", reason="the synthetic generator is not available")
    plain = synthetic.write_sequence(folder.parent / f"_{folder.name}", synthetic.generate_sequence(
        seed, "normal", num_frames=3, size=(192, 160)), ext="png")
    folder.mkdir(parents=True)
    (plain / "rgb").rename(folder / "v")
    (plain / "thermal").rename(folder / "i")
    boxes = np.round(read_box_file(plain / "groundtruth.txt"))
    corners = "".join(f"{x:.0f} {y:.0f} {x + w:.0f} {y + h:.0f}\n" for x, y, w, h in boxes)
    (folder / "groundTruth_v.txt").write_text(corners)
    (folder / "groundTruth_i.txt").write_text(corners)
    return boxes


def test_eval_finds_a_gtot_benchmarks_images_and_starts_from_its_corner_ground_truth(tmp_path):
    boxes = {name: _gtot_sequence(tmp_path / "GTOT" / name, seed) for seed, name in ((1, "b"), (2, "a"))}
    (tmp_path / "GTOT" / "no_truth" / "v").mkdir(parents=True)   # images but no ground truth: left out
    (tmp_path / "GTOT" / "no_truth" / "i").mkdir()
    found = benchmark_sequences(get_rules("gtot"), tmp_path / "GTOT")
    assert list(found) == ["a", "b"]
    for seq, truth in found.values():
        assert seq.layout == "gtot" and len(seq) == 3
        frame = seq.frame(2)
        assert frame.rgb.shape == (160, 192, 3) and frame.thermal.dtype == np.uint8
        assert np.array_equal(truth.visible, boxes[seq.name])  # GTOT widths: x2 - x1
    single = benchmark_sequences(get_rules("gtot"), tmp_path / "GTOT" / "a")
    assert list(single) == ["a"] and single["a"][0].path == tmp_path / "GTOT" / "a"
    assert list(benchmark_sequences(get_rules("gtot"), tmp_path / "GTOT", shard=(1, 2))) == ["b"]


def test_eval_refuses_a_named_sequence_without_ground_truth_or_images(tmp_path):
    _gtot_sequence(tmp_path / "GTOT" / "a", 1)
    (tmp_path / "GTOT" / "bare" / "v").mkdir(parents=True)
    (tmp_path / "GTOT" / "bare" / "i").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no GTOT ground truth for 1 sequences .*'bare'"):
        benchmark_sequences(get_rules("gtot"), tmp_path / "GTOT", ["a", "bare"])
    with pytest.raises(FileNotFoundError, match="not folders"):
        benchmark_sequences(get_rules("gtot"), tmp_path / "GTOT", ["a", "absent"])
    (tmp_path / "list.txt").write_text("a\nabsent\n")
    code = eval_main([str(tmp_path / "GTOT"), "-b", "gtot", "-o", str(tmp_path / "out"),
                      "--sequences", str(tmp_path / "list.txt"), "--no-progress"])
    assert code == 1 and not list((tmp_path / "out").glob("*.txt"))
