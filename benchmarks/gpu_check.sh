#!/usr/bin/env bash
# One call on a machine with an NVIDIA GPU: install the GPU back ends, run the CUDA tests, the CUDA and
# TensorRT benchmarks and the box parity of every GPU back end, and write one JSON of everything.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default build/gpu_check; PY=python to choose the interpreter)
#
# Each step runs under its own time limit and records its exit status and output tail, so that one failing
# step (an install without network, a TensorRT that does not parse the graph) still leaves the others' results.
# The parity tests read the reference vectors from ../shared (or CKD_SHARED_DIR): on a machine that gets
# only this checkout, copy ../shared/reference into an ignored folder of it and point CKD_SHARED_DIR there.
# Without network, onnxruntime-gpu (a 244 MiB wheel at 1.31.1) and tensorrt (larger libraries) must already
# be installed or come as wheels brought along; otherwise the steps that need them skip with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build/gpu_check}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
STEPS="$OUT/steps.tsv"
: > "$STEPS"

step() {  # step NAME LIMIT_S command...
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "== $name" >&2
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$STEPS"
    tail -5 "$OUT/$name.log" >&2
    return 0
}

# ONNX Runtime's CUDA build replaces the CPU one (the two wheels conflict); TensorRT from its pip wheels.
# Without network the installs fail and are recorded; what is already installed is used.
step install_base 600 $PY -m pip install -q onnx "numpy>=1.24" opencv-python-headless pyyaml pytest pytest-timeout tqdm
if ! $PY -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())' 2>/dev/null; then
    step install_onnxruntime_gpu 600 bash -c "$PY -m pip uninstall -y -q onnxruntime; $PY -m pip install -q onnxruntime-gpu"
fi
$PY -c 'import tensorrt' 2>/dev/null || step install_tensorrt 900 $PY -m pip install -q tensorrt

step environment 120 $PY - <<'EOF'
import json, torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    info["gpu"] = torch.cuda.get_device_name(0)
for name in ("onnxruntime", "tensorrt", "openvino", "onnx"):
    try:
        mod = __import__(name)
        info[name] = mod.__version__
        if name == "onnxruntime":
            info["onnxruntime_providers"] = mod.get_available_providers()
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        info[name] = f"unavailable: {type(e).__name__}: {e}"
print(json.dumps(info))
EOF

# CUDA tests: the torch CUDA paths and every GPU back-end test (they skip, with the reason, what cannot run)
step cuda_tests 900 $PY -m pytest -q -rs -p no:cacheprovider test/test_model_fast.py test/test_model_backends.py \
    -k "cuda or gpu or tensorrt" --junitxml="$OUT/cuda_tests.xml"
# network forward: torch paths, ONNX Runtime (CUDA provider) and TensorRT fp16, one run, round-robin
step bench_cuda 900 $PY -m ckd_ros.model.bench --device cuda --iters 20 --warmup 3 --json "$OUT/bench_cuda.json"
# tracker boxes of every GPU back end against the exact tracker and the reference boxes
step parity_cuda 900 $PY benchmarks/backend_parity.py --device cuda --json "$OUT/parity_cuda.json"

$PY - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
result = {"steps": []}
for line in (out / "steps.tsv").read_text().splitlines():
    name, rc, seconds = line.split("\t")
    log = (out / f"{name}.log").read_text(errors="replace")
    result["steps"].append({"name": name, "rc": int(rc), "seconds": int(seconds), "tail": log[-3000:]})
    if name == "environment" and rc == "0":
        result["environment"] = json.loads(log.strip().splitlines()[-1])
for name in ("bench_cuda", "parity_cuda"):
    path = out / f"{name}.json"
    result[name] = json.loads(path.read_text()) if path.exists() else None
(out / "gpu_check.json").write_text(json.dumps(result, indent=1))
print(f"wrote {out / 'gpu_check.json'}: " + ", ".join(f"{s['name']} rc {s['rc']}" for s in result["steps"]))
EOF
