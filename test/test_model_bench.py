"""`python -m ckd_ros.model.bench --short` runs end to end and prints a well-formed table (the CI smoke run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ckd_ros.model.bench import COLUMNS, format_table

REPO = Path(__file__).resolve().parents[1]


def parse_table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert set(lines[1].replace("|", "").replace("-", "")) <= {""}, "second line must be the separator"
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells)))
    return rows


@pytest.mark.slow
def test_short_benchmark_prints_latency_fps_memory_and_ratios_for_every_path(tmp_path):
    out_json = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "ckd_ros.model.bench", "--short", "--json", str(out_json)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    assert "fp32 matmul 2048x2048:" in text
    rows = parse_table(text)
    assert [c.strip() for c in text.splitlines()[3].strip("|").split("|")] == list(COLUMNS)
    from ckd_ros.model.backends import backend_error
    backends = [p for p, b, prec in (("onnxruntime", "onnxruntime", "fp32"), ("onnxruntime-int8", "onnxruntime", "int8"),
                                     ("openvino", "openvino", "fp32")) if backend_error(b, "cpu", prec) is None]
    from ckd_ros.model import precision_error
    torch_paths = [p for p in ("exact", "fp32", "int8", "bf16") if precision_error(p, "cpu") is None]
    paths = (*torch_paths, *backends)
    assert {(r["path"], r["CE"]) for r in rows} == {(p, ce) for p in paths for ce in ("off", "MCE")}
    for r in rows:
        median, p90, fps = float(r["median ms"]), float(r["p90 ms"]), float(r["FPS"])
        assert 0 < median <= p90 and fps == pytest.approx(1000 / median, rel=0.02, abs=0.006)
        assert float(r["GFLOP"]) == pytest.approx(123.1 if r["CE"] == "off" else 90.0, abs=0.1)
        assert float(r["weights MiB"]) > 100 and float(r["x matmul"]) > 0
        # a back end's runtime allocates outside torch's view: no activation peak is claimed for it
        assert r["act. peak MiB"] == "n/a" if r["path"] in backends else float(r["act. peak MiB"]) > 0
    for r in rows:
        if r["path"] in ("onnxruntime", "openvino"):  # the exported float32 graph computes the exact maps
            assert float(r["max dev maps"]) <= 1e-4, r
    exact = [r for r in rows if r["path"] == "exact"]
    assert all(float(r["max dev maps"]) == 0.0 for r in exact)
    assert "MCE / CE-off" in text and "fp32 / exact" in text and "int8 / exact" in text
    # the float32 floor is the exact path's FLOPs at the measured matmul rate, set against the exact median
    by = {(r["path"], r["CE"]): r for r in rows}
    for ce in ("off", "MCE"):
        line = next(line for line in text.splitlines() if line.startswith(f"  CE {ce}: ") and "of exact" in line)
        floor_ms = float(by[("exact", ce)]["GFLOP"]) / float(text.split("fp32 matmul 2048x2048: ")[1].split()[0]) * 1e3
        ms, ratio = float(line.split()[2]), float(line.split()[5])
        assert ms == pytest.approx(floor_ms, rel=2e-3)
        assert ratio == pytest.approx(floor_ms / float(by[("exact", ce)]["median ms"]), rel=5e-3)
    result = json.loads(out_json.read_text())
    assert result["matmul_gflops"] > 0 and len(result["rows"]) == 2 * len(paths)
    assert format_table(result) == text.rstrip("\n")


def test_benchmark_refuses_a_cuda_device_that_is_not_there():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    proc = subprocess.run([sys.executable, "-m", "ckd_ros.model.bench", "--device", "cuda", "--short"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr
