"""ONNX export and the ONNX back ends compute the network's function; the tracker on them gives the reference boxes.

Back ends whose package is absent are skipped with the reason; CI installs onnxruntime and openvino.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ckd_ros.model import ModelConfig, ctr_point_mask, load_checkpoint, load_default_model
from ckd_ros.model.backends import (BackendUnavailableError, OnnxModel, backend_error, check_backend, exported,
                                    load_backend)
from ckd_ros.model.export import ExportError, export_network, main as export_main, read_metadata, seeded_inputs
from ckd_ros.model.fp16_graph import FP16_OPS, fp16_node_count, to_fp16_compute
from ckd_ros.tracking import TrackerSpec, build_tracker

REPO = Path(__file__).resolve().parents[1]
INPUTS = ("template_rgb", "template_tir", "search_rgb", "search_tir")
MAPS = ("score_map", "size_map", "offset_map")
SMALL = dict(embed_dim=64, depth=4, num_heads=4, head_channels=32)
CPU_BACKENDS = ("onnxruntime", "openvino")


def _need(backend: str) -> str:
    pytest.importorskip(backend, reason=f"{backend} is not installed (pip install {backend})")
    return backend


@pytest.fixture(params=CPU_BACKENDS)
def backend(request) -> str:
    return _need(request.param)


def _small(reference_dir: Path, mce: bool):
    config = ModelConfig(**SMALL)
    config = config.with_ce((1, 2, 3), 0.7) if mce else config
    return load_checkpoint(reference_dir / "ckd_small.pth.tar", config=config)


@pytest.fixture(scope="module")
def small_exports(reference_dir: Path) -> dict[bool, OnnxModel]:
    pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
    return {mce: exported(_small(reference_dir, mce)) for mce in (False, True)}


@pytest.mark.parametrize("mce", [False, True], ids=["ce_off", "mce"])
def test_export_of_the_reference_model_reproduces_the_reference_maps_within_1e_4(reference_dir, small_exports,
                                                                                backend, mce):
    data = np.load(reference_dir / "inputs.npz")
    ref = np.load(reference_dir / ("forward_mce.npz" if mce else "forward_ce_off.npz"))
    net = load_backend(backend, small_exports[mce])
    out = net(*[torch.from_numpy(data[k]) for k in INPUTS],
              ce_template_mask=ctr_point_mask(net.config) if mce else None)
    for key in MAPS + ("pred_boxes",):
        np.testing.assert_allclose(out[key].numpy(), ref[f"{key}_f32"], rtol=0, atol=1e-4, err_msg=key)
    if mce:  # the token selection is computed from the data, not recorded as constants
        assert [k.shape[1] for k in out["ce_kept"]] == [180, 126, 89]
        for j, kept in enumerate(out["ce_kept"]):
            assert set(kept[0].tolist()) == set(ref[f"mce_kept_idx_ce{j}_f32"][0].tolist()), f"CE layer {j}"


@pytest.mark.parametrize("ce", ["off", "mce"])
def test_export_of_the_embedded_model_reproduces_pytorch_within_1e_4_on_fresh_inputs(backend, ce):
    net = load_default_model()
    if ce == "mce":
        net.set_ce(net.config.mce_layers(), 0.7)
    mask = ctr_point_mask(net.config) if ce == "mce" else None
    runner = load_backend(backend, exported(net))
    for seed in (7, 8):  # not the seeds the export was traced and checked with
        inputs = seeded_inputs(net.config, seed)
        with torch.no_grad():
            expected = net(*inputs, ce_template_mask=mask)
        got = runner(*inputs, ce_template_mask=mask)
        for key in MAPS:
            assert float((got[key] - expected[key]).abs().max()) <= 1e-4, (key, seed)


def test_onnxruntime_int8_runs_a_quantised_graph_close_to_the_reference_maps(reference_dir, small_exports):
    _need("onnxruntime")
    data = np.load(reference_dir / "inputs.npz")
    ref = np.load(reference_dir / "forward_ce_off.npz")
    fp32 = load_backend("onnxruntime", small_exports[False])
    int8 = load_backend("onnxruntime", small_exports[False], precision="int8")
    assert int8.precision == "int8" and int8.graph_mib < 0.7 * fp32.graph_mib   # int8 MatMul weights (the head's convs stay float)
    out = int8(*[torch.from_numpy(data[k]) for k in INPUTS])
    deviation = max(float(np.abs(out[k].numpy() - ref[f"{k}_f32"]).max()) for k in MAPS)
    assert 0 < deviation <= 2e-2   # quantised, so not exact; the benchmark states it for the paper network
    with pytest.raises(BackendUnavailableError, match="int8 runs on the CPU"):
        check_backend("onnxruntime", "cuda:0", "int8")


@pytest.fixture(scope="module")
def embedded_exports() -> dict[str, OnnxModel]:
    pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
    models = {}
    for ce in ("off", "mce"):
        net = load_default_model()
        if ce == "mce":
            net.set_ce(net.config.mce_layers(), 0.7)
        models[ce] = exported(net)
    return models


@pytest.mark.parametrize("ce", ["off", "mce"])
def test_the_fp16_graph_tensorrt_builds_has_float16_products_behind_the_float32_interface(embedded_exports, ce):
    import onnx
    from onnx import TensorProto

    model = embedded_exports[ce]
    half = to_fp16_compute(model.onnx_bytes)
    done, total = fp16_node_count(half)
    assert done == total == fp16_node_count(model.onnx_bytes)[1] > 0 and fp16_node_count(model.onnx_bytes)[0] == 0
    before, after = onnx.load_from_string(model.onnx_bytes).graph, onnx.load_from_string(half).graph
    interface = lambda g: [(v.name, v.type.tensor_type.elem_type) for v in (*g.input, *g.output)]  # noqa: E731
    assert interface(after) == interface(before)
    assert all(t == TensorProto.FLOAT for name, t in interface(after) if not name.startswith("ce_kept"))
    assert read_metadata(half) == model.metadata   # the file still rebuilds its tracker
    # nothing but the products (and the casts around them) computes in float16
    inferred = onnx.shape_inference.infer_shapes(onnx.load_from_string(half)).graph
    fp16_tensors = {v.name for v in inferred.value_info if v.type.tensor_type.elem_type == TensorProto.FLOAT16}
    producers = {o: n.op_type for n in inferred.node for o in n.output}
    assert fp16_tensors and {producers[t] for t in fp16_tensors} <= {"Cast", *FP16_OPS}
    assert len(half) < 0.7 * len(model.onnx_bytes)   # the product weights are stored in half precision
    assert to_fp16_compute(half) == half   # a graph rewritten already is left as it is


@pytest.mark.parametrize("ce", ["off", "mce"])
def test_the_fp16_graph_computes_the_network_at_half_precision_with_the_same_kept_tokens(embedded_exports,
                                                                                         backend, ce):
    model = embedded_exports[ce]
    net = load_default_model()
    if ce == "mce":
        net.set_ce(net.config.mce_layers(), 0.7)
    mask = ctr_point_mask(net.config) if ce == "mce" else None
    runner = load_backend(backend, OnnxModel(to_fp16_compute(model.onnx_bytes), model.metadata))
    for seed in (7, 8):
        inputs = seeded_inputs(net.config, seed)
        with torch.no_grad():
            expected = net(*inputs, ce_template_mask=mask)
        got = runner(*inputs, ce_template_mask=mask)
        deviation = max(float((got[k] - expected[k]).abs().max()) for k in MAPS)
        # measured 7e-5 to 8e-4 (the offset map): float16 rounding, not float32's 1e-7, and no worse
        assert 1e-6 < deviation <= 2e-3, (seed, deviation)
        for j, kept in enumerate(got.get("ce_kept", [])):
            assert set(kept[0].tolist()) == set(expected["ce_kept"][j][0].tolist()), (seed, j)


def test_the_fp16_graph_benchmark_measures_every_cpu_runtime_and_schedule(tmp_path):
    runtimes = [b for b in CPU_BACKENDS if backend_error(b, "cpu", "fp32") is None]
    if not runtimes:
        pytest.skip("neither onnxruntime nor openvino is installed")
    out = tmp_path / "fp16.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "fp16_graph.py"), "--skip-paper", "--seeds", "7",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert {(r["ce"], r["backend"]) for r in rows} == {(ce, b) for ce in ("off", "MCE") for b in runtimes}
    for r in rows:
        assert r["fp16_products"] == r["products"] > 0 and 1e-6 < r["max_map_deviation"] <= 2e-3
        assert r["kept_tokens_equal"] is (True if r["ce"] == "MCE" else None)
    assert done.stdout.count("| embedded |") == len(rows)


def test_ckd_export_writes_named_inputs_outputs_and_the_config_as_metadata(tmp_path, backend):
    out = tmp_path / "demo_mce.onnx"
    assert export_main(["--format", "onnx", "--ce", "mce", "-o", str(out)]) == 0
    meta = read_metadata(out)
    net = load_default_model()
    assert meta.config == net.config.with_ce(net.config.mce_layers(), 0.7)
    assert meta.template_mask == "ctr_point" and meta.max_deviation <= 1e-4
    assert meta.outputs == ("score_map", "size_map", "offset_map", "pred_boxes", "ce_kept_0", "ce_kept_1",
                            "ce_kept_2")
    import onnx
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == list(INPUTS)
    assert [o.name for o in graph.output] == list(meta.outputs)


def test_an_export_that_misses_the_tolerance_is_refused_and_nothing_is_written(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "refused.onnx"
    assert export_main(["--ce", "off", "--tolerance", "0", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "refusing the export: it deviates from the PyTorch maps by" in err and "> 0" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_single_student_diagnostic_network_is_refused_with_the_reason():
    net = load_default_model()
    net.head_students = (True, False)
    with pytest.raises(ExportError, match="only one student"):
        export_network(net)


def _reference_frames(reference_dir: Path):
    import cv2
    rgb = sorted((reference_dir / "seq" / "rgb").iterdir())
    tir = sorted((reference_dir / "seq" / "tir").iterdir())
    read = lambda p: cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)  # noqa: E731
    return [(read(a), read(b)) for a, b in zip(rgb, tir)]


def _track(tracker, frames, box) -> np.ndarray:
    boxes = [tracker.initialize(frames[0][0], frames[0][1], box).box]
    boxes += [tracker.track(rgb, tir).box for rgb, tir in frames[1:]]
    return np.asarray(boxes)


@pytest.mark.slow
def test_the_tracker_on_each_cpu_back_end_reproduces_the_reference_boxes_within_1e_2_px(reference_dir, backend):
    expected = np.loadtxt(reference_dir / "tracker_boxes.txt", delimiter=",", comments="#")
    frames = _reference_frames(reference_dir)
    tracker = build_tracker(TrackerSpec(checkpoint=reference_dir / "ckd_small.pth.tar", num_heads=4,
                                        backend=backend))
    assert type(tracker.net).__name__ == "OnnxNetwork" and tracker.net.backend == backend
    boxes = _track(tracker, frames, list(expected[0]))
    assert boxes.shape == expected.shape
    assert np.abs(boxes - expected).max() <= 1e-2


@pytest.mark.slow
def test_an_exported_file_runs_as_the_checkpoint_and_its_schedule_cannot_be_overridden(tmp_path, backend):
    from ckd_ros.data.synthetic import generate_sequence
    from ckd_ros.tracking import CandidateElimination

    path = tmp_path / "demo.onnx"
    assert export_main(["--ce", "mce", "-o", str(path)]) == 0
    seq = generate_sequence(3, "normal", num_frames=12, size=(320, 256))
    exact = build_tracker(TrackerSpec(candidate_elimination=CandidateElimination("on")))
    onnx = build_tracker(TrackerSpec(checkpoint=path, backend=backend))
    frames = list(zip(seq.rgb, seq.thermal))
    assert np.abs(_track(onnx, frames, seq.boxes[0]) - _track(exact, frames, seq.boxes[0])).max() <= 1e-2
    with pytest.raises(ValueError, match="part of the exported graph"):
        build_tracker(TrackerSpec(checkpoint=path, backend=backend, candidate_elimination=CandidateElimination("off")))
    with pytest.raises(ValueError, match="backend onnxruntime, openvino or tensorrt"):
        build_tracker(TrackerSpec(checkpoint=path))


def test_a_graph_is_refused_a_template_mask_other_than_its_own(small_exports):
    _need("onnxruntime")
    net = load_backend("onnxruntime", small_exports[True])
    inputs = seeded_inputs(net.config, 1)
    with pytest.raises(ValueError, match="template mask 'ctr_point' built in"):
        net(*inputs, ce_template_mask=None)


def test_back_end_choices_that_cannot_run_say_what_to_do_before_any_weights_are_read(tmp_path):
    missing = tmp_path / "never_read.pth.tar"   # the check comes first: the file need not exist
    with pytest.raises(ValueError, match="backend must be one of torch, onnxruntime, openvino, tensorrt"):
        build_tracker(TrackerSpec(checkpoint=missing, backend="tflite"))
    with pytest.raises(BackendUnavailableError, match="precision must be exact or fp32, got 'int8'"):
        build_tracker(TrackerSpec(checkpoint=missing, backend=_need("openvino"), precision="int8"))
    with pytest.raises(BackendUnavailableError, match="precision must be exact or fp32 or int8, got 'bf16'"):
        build_tracker(TrackerSpec(checkpoint=missing, backend=_need("onnxruntime"), precision="bf16"))
    # TensorRT on the CPU: without the package the install command is named, with it the device
    with pytest.raises(BackendUnavailableError, match="pip install tensorrt|builds an engine for an NVIDIA GPU"):
        build_tracker(TrackerSpec(checkpoint=missing, backend="tensorrt", precision="fp16"))
    with pytest.raises(BackendUnavailableError, match="openvino runs on the CPU|pip install openvino"):
        check_backend("openvino", "cuda:0")


@pytest.mark.parametrize("package", CPU_BACKENDS)
def test_a_missing_package_fails_the_build_naming_the_pip_install(package):
    # a fresh interpreter in which the package cannot be imported, as on a machine without it
    code = (f"import sys; sys.modules[{package!r}] = None\n"
            "from ckd_ros.tracking import TrackerSpec, build_tracker\n"
            "from ckd_ros.model.backends import BackendUnavailableError\n"
            "try:\n"
            f"    build_tracker(TrackerSpec(backend={package!r}))\n"
            "except BackendUnavailableError as e:\n"
            "    print('REFUSED', e)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"REFUSED backend {package} needs the Python package {package}, which is not installed" in done.stdout
    assert f"pip install {package}" in done.stdout


# ---- GPU back ends (run by benchmarks/gpu_check.sh on a machine with an NVIDIA GPU) ------------------------

def _need_gpu(backend: str, precision: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    problem = backend_error(backend, "cuda", precision)
    if problem:
        pytest.skip(problem)


@pytest.mark.parametrize("backend, precision, tolerance", [("onnxruntime", "fp32", 1e-4),
                                                           ("tensorrt", "fp32", 1e-3), ("tensorrt", "fp16", 2e-2)])
@pytest.mark.parametrize("mce", [False, True], ids=["ce_off", "mce"])
def test_gpu_back_ends_reproduce_the_reference_maps(reference_dir, small_exports, tmp_path, backend, precision,
                                                    tolerance, mce):
    _need_gpu(backend, precision)
    data = np.load(reference_dir / "inputs.npz")
    ref = np.load(reference_dir / ("forward_mce.npz" if mce else "forward_ce_off.npz"))
    model = OnnxModel(small_exports[mce].onnx_bytes, small_exports[mce].metadata, tmp_path / "small.onnx")
    net = load_backend(backend, model, "cuda:0", precision)
    out = net(*[torch.from_numpy(data[k]).cuda() for k in INPUTS],
              ce_template_mask=ctr_point_mask(net.config, 1, "cuda:0") if mce else None)
    for key in MAPS:
        assert out[key].device.type == "cuda"
        np.testing.assert_allclose(out[key].cpu().numpy(), ref[f"{key}_f32"], rtol=0, atol=tolerance, err_msg=key)


@pytest.mark.parametrize("mce", [False, True], ids=["ce_off", "mce"])
def test_the_tensorrt_fp16_engine_computes_what_its_fp16_graph_computes_on_the_cpu(small_exports, tmp_path, mce):
    _need_gpu("tensorrt", "fp16")
    _need("onnxruntime")
    model = OnnxModel(small_exports[mce].onnx_bytes, small_exports[mce].metadata, tmp_path / "small.onnx")
    engine = load_backend("tensorrt", model, "cuda:0", "fp16")
    on_cpu = load_backend("onnxruntime", OnnxModel(to_fp16_compute(model.onnx_bytes), model.metadata))
    config = model.metadata.config
    for seed in (7, 8):
        inputs = seeded_inputs(config, seed)
        got = engine(*[t.cuda() for t in inputs], ce_template_mask=ctr_point_mask(config, 1, "cuda:0") if mce else None)
        expected = on_cpu(*inputs, ce_template_mask=ctr_point_mask(config) if mce else None)
        for key in MAPS:  # the same float16 products; only the kernels' summation order differs
            assert float((got[key].cpu() - expected[key]).abs().max()) <= 2e-3, (key, seed)


def test_a_tensorrt_engine_is_cached_next_to_the_model_keyed_by_gpu_version_and_graph(small_exports, tmp_path):
    _need_gpu("tensorrt", "fp16")
    import tensorrt

    model = OnnxModel(small_exports[False].onnx_bytes, small_exports[False].metadata, tmp_path / "small.onnx")
    first = load_backend("tensorrt", model, "cuda:0", "fp16")
    cache = first._run.cache_path
    assert cache.parent == tmp_path and cache.is_file() and not first._run.cache_hit
    assert f"trt{tensorrt.__version__}" in cache.name and cache.name.endswith(".fp16.engine")
    assert torch.cuda.get_device_name(0).split()[-1].lower() in cache.name
    again = load_backend("tensorrt", model, "cuda:0", "fp16")
    assert again._run.cache_hit and again._run.cache_path == cache
    other = OnnxModel(small_exports[True].onnx_bytes, small_exports[True].metadata, tmp_path / "small.onnx")
    assert load_backend("tensorrt", other, "cuda:0", "fp16")._run.cache_path != cache   # another graph


@pytest.mark.slow
@pytest.mark.parametrize("backend, precision, tolerance", [("onnxruntime", "fp32", 1e-2), ("tensorrt", "fp16", 2.0)])
def test_the_tracker_on_a_gpu_back_end_follows_the_reference_boxes(reference_dir, tmp_path, backend, precision,
                                                                    tolerance):
    _need_gpu(backend, precision)
    import shutil
    checkpoint = shutil.copy(reference_dir / "ckd_small.pth.tar", tmp_path)   # the engine cache goes beside it
    expected = np.loadtxt(reference_dir / "tracker_boxes.txt", delimiter=",", comments="#")
    tracker = build_tracker(TrackerSpec(checkpoint=checkpoint, num_heads=4, device="cuda:0", precision=precision,
                                        backend=backend))
    boxes = _track(tracker, _reference_frames(reference_dir), list(expected[0]))
    assert np.abs(boxes - expected).max() <= tolerance


def test_the_engine_cache_name_changes_with_gpu_tensorrt_version_graph_and_precision(tmp_path):
    from ckd_ros.model.backends import engine_path
    model = tmp_path / "ckd.onnx"
    base = engine_path(model, b"graph", "fp16", "NVIDIA H100 80GB HBM3", "10.9.0")
    assert base.parent == tmp_path and base.name.startswith("ckd.onnx.nvidia-h100-80gb-hbm3.trt10.9.0.")
    assert base.name.endswith(".fp16.engine")
    others = {engine_path(model, b"graph", "fp16", "NVIDIA L4", "10.9.0"),
              engine_path(model, b"graph", "fp16", "NVIDIA H100 80GB HBM3", "10.10.0"),
              engine_path(model, b"other graph", "fp16", "NVIDIA H100 80GB HBM3", "10.9.0"),
              engine_path(model, b"graph", "fp32", "NVIDIA H100 80GB HBM3", "10.9.0")}
    assert len(others) == 4 and base not in others
