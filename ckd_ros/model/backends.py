"""Where the network's forward runs: PyTorch, or an exported ONNX graph under ONNX Runtime, OpenVINO or TensorRT.

Every back end gives a module with CKDNet's call signature and its ``score_map`` / ``size_map`` /
``offset_map`` / ``pred_boxes`` outputs as torch tensors on the tracker's device, so the tracker, its crops
and its decoding stay the same; only the network call differs.

* ``torch``: :func:`ckd_ros.model.optimize` (every precision).
* ``onnxruntime``: CPU execution provider on the CPU (precision int8: the graph's MatMul weights quantised
  to int8 per channel, dynamic activations); on CUDA the CUDA provider (``pip install
  onnxruntime-gpu``), the TensorRT provider first when asked for and present (on the fp16 graph).
* ``openvino``: the CPU plug-in in float32 (its default on CPUs with bf16 units would be bf16).
* ``tensorrt``: a strongly typed engine built on the target GPU from the ONNX graph, for precision fp16
  with its matrix products in float16 (:mod:`ckd_ros.model.fp16_graph`), for fp32 in float32 without
  TF32; cached next to the model under a name keyed by GPU, TensorRT version, graph hash and precision;
  the builder's warnings are re-issued as :class:`TensorRTBuildWarning`.

The optional packages are imported only when their back end is chosen; a missing one is named with the
command that installs it (:func:`backend_error`), before any weights are read.
"""
from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .export import INPUT_NAMES, MAP_NAMES, OnnxMetadata, read_metadata

BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino", "tensorrt")
ONNX_BACKENDS: tuple[str, ...] = BACKENDS[1:]
_PACKAGE = {"onnxruntime": ("onnxruntime", "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA)"),
            "openvino": ("openvino", "pip install openvino"),
            "tensorrt": ("tensorrt", "pip install tensorrt (needs an NVIDIA driver and CUDA 12 or newer)")}
# the graph is float32: exact and fp32 name it; ONNX Runtime also runs it with int8 weights (CPU)
_PRECISIONS = {"torch": None, "onnxruntime": ("exact", "fp32", "int8"), "openvino": ("exact", "fp32"),
               "tensorrt": ("fp16", "fp32")}


class BackendUnavailableError(RuntimeError):
    """The chosen back end cannot run here; the message says what to install or change."""


class TensorRTBuildWarning(UserWarning):
    """A warning the TensorRT builder printed while building an engine (precision fallbacks, tactics)."""


def package_error(backend: str) -> str | None:
    """Why ``backend``'s Python package cannot be imported here (with the install command), or None."""
    if backend == "torch":
        return None
    if backend not in _PACKAGE:
        return f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}"
    module, install = _PACKAGE[backend]
    try:
        importlib.import_module(module)
    except ImportError as e:
        return f"backend {backend} needs the Python package {module}, which is not installed ({e}): {install}"
    return None


def backend_error(backend: str, device: torch.device | str, precision: str = "exact") -> str | None:
    """Why ``backend`` cannot run the network on ``device`` (resolved) with ``precision``, or None."""
    problem = package_error(backend)
    if problem or backend == "torch":
        return problem
    allowed = _PRECISIONS[backend]
    if precision not in allowed:
        return (f"backend {backend} runs the exported float32 graph{' as an engine' if backend == 'tensorrt' else ''}:"
                f" precision must be {' or '.join(allowed)}, got {precision!r} (the other precisions are torch "
                "back-end paths)")
    kind = torch.device(device).type
    if precision == "int8" and kind != "cpu":
        return f"backend {backend} with precision int8 runs on the CPU; got device {device}"
    if backend == "openvino" and kind != "cpu":
        return f"backend openvino runs on the CPU here; got device {device} (use device cpu, or onnxruntime / tensorrt)"
    if backend == "tensorrt" and kind != "cuda":
        return f"backend tensorrt builds an engine for an NVIDIA GPU; got device {device} (use device cuda)"
    if backend == "onnxruntime" and kind == "cuda":
        import onnxruntime as ort
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return ("backend onnxruntime on CUDA needs the CUDA execution provider, which this onnxruntime "
                    f"({ort.__version__}, providers {ort.get_available_providers()}) lacks: "
                    "pip uninstall onnxruntime && pip install onnxruntime-gpu")
    return None


def check_backend(backend: str, device: torch.device | str, precision: str = "exact") -> None:
    problem = backend_error(backend, device, precision)
    if problem:
        raise BackendUnavailableError(problem)


# ---------------------------------------------------------------------------------------------------------
# runners: feed dict of numpy arrays (CPU) or torch tensors (CUDA) -> outputs in graph order

def quantize_int8(onnx_bytes: bytes) -> bytes:
    """The graph with every MatMul / Gemm weight quantised to int8 per output channel and activations
    quantised per call (ONNX Runtime's dynamic quantisation; the counterpart of the torch int8 path)."""
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with tempfile.TemporaryDirectory(prefix="ckd_int8_") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(onnx_bytes)
        # its root-logger hint to run shape pre-processing does not apply: every shape here is static
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gemm"])
        finally:
            logging.disable(previous)
        model = onnx.load(str(dst))
    return model.SerializeToString()


def cpu_runner(backend: str, onnx_bytes: bytes, threads: int | None = None) -> Callable[[dict], list[np.ndarray]]:
    """A CPU session for ``onnx_bytes``: ``run({input name: float32 array}) -> [output arrays]``."""
    check_backend(backend, "cpu", "fp32")
    if backend == "onnxruntime":
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        return lambda feed: sess.run(names, feed)
    if backend == "openvino":
        import openvino as ov
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = core.compile_model(core.read_model(model=onnx_bytes), "CPU", config)
        request = compiled.create_infer_request()
        ports = list(compiled.outputs)

        def run(feed: dict) -> list[np.ndarray]:
            result = request.infer(feed)
            return [np.array(result[p]) for p in ports]
        return run
    raise ValueError(f"{backend} has no CPU runner")


class _OrtCuda:
    """ONNX Runtime on a GPU with inputs and outputs bound to torch's CUDA memory (no host round trip)."""

    def __init__(self, onnx_bytes: bytes, device: torch.device, tensorrt_provider: bool,
                 cache_dir: Path | None) -> None:
        import onnxruntime as ort
        index = device.index or 0
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": index})]
        if tensorrt_provider:
            if "TensorrtExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailableError("the TensorRT execution provider is not in this onnxruntime "
                                              f"({ort.get_available_providers()}): pip install onnxruntime-gpu "
                                              "tensorrt")
            # fp16 through the graph's types, as the tensorrt back end builds it (TensorRT 11 has no weak
            # typing for the provider's fp16 switch to ask for)
            from .fp16_graph import to_fp16_compute
            onnx_bytes = to_fp16_compute(onnx_bytes)
            trt_opts: dict[str, Any] = {"device_id": index}
            if cache_dir is not None:
                trt_opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
            providers.insert(0, ("TensorrtExecutionProvider", trt_opts))
        so = ort.SessionOptions()
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(onnx_bytes, so, providers=providers + ["CPUExecutionProvider"])
        self.device, self.index = device, index
        self.outputs = [(o.name, o.shape, _ORT_TYPES[o.type]) for o in self.sess.get_outputs()]

    def __call__(self, feed: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        binding = self.sess.io_binding()
        for name, t in feed.items():
            t = t.contiguous()
            binding.bind_input(name, "cuda", self.index, np.float32, list(t.shape), t.data_ptr())
        outs = [torch.empty([int(d) for d in shape], dtype=dtype, device=self.device)
                for _, shape, dtype in self.outputs]
        for (name, _, dtype), t in zip(self.outputs, outs):
            binding.bind_output(name, "cuda", self.index, _NP_OF[dtype], list(t.shape), t.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()  # ORT runs on its own stream
        self.sess.run_with_iobinding(binding)
        return outs


_TORCH_OF_TRT = {"FLOAT": torch.float32, "HALF": torch.float16, "INT32": torch.int32, "INT64": torch.int64,
                 "BOOL": torch.bool, "INT8": torch.int8, "UINT8": torch.uint8}
_ORT_TYPES = {"tensor(float)": torch.float32, "tensor(int64)": torch.int64, "tensor(float16)": torch.float16}
_NP_OF = {torch.float32: np.float32, torch.int64: np.int64, torch.float16: np.float16}


def engine_path(model_path: str | os.PathLike, onnx_bytes: bytes, precision: str, gpu_name: str,
                trt_version: str) -> Path:
    """Where the engine for this graph, GPU, TensorRT and precision is cached: next to the model file."""
    model_path = Path(model_path)
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower()
    digest = hashlib.sha256(onnx_bytes).hexdigest()[:16]
    return model_path.parent / f"{model_path.name}.{gpu}.trt{trt_version}.{digest}.{precision}.engine"


class _TensorRT:
    """An engine from the ONNX graph (built once per GPU / TensorRT / graph / precision, then cached)."""

    def __init__(self, onnx_bytes: bytes, device: torch.device, precision: str,
                 model_path: str | os.PathLike | None) -> None:
        import tensorrt as trt
        self.trt, self.device = trt, device
        self.messages: list[str] = []
        logger = _trt_logger(trt, self.messages)
        torch.cuda.set_device(device)
        name = torch.cuda.get_device_name(device)
        # precision lives in the graph's types (strong typing; TensorRT 11 has no FP16 builder flag)
        if precision == "fp16":
            from .fp16_graph import to_fp16_compute
            onnx_bytes = to_fp16_compute(onnx_bytes)
        cache = engine_path(model_path, onnx_bytes, precision, name, trt.__version__) if model_path else None
        runtime = trt.Runtime(logger)
        self.engine = None
        if cache is not None and cache.is_file():
            self.engine = runtime.deserialize_cuda_engine(cache.read_bytes())
            self.cache_hit = self.engine is not None
        if self.engine is None:
            self.cache_hit = False
            serialized = self._build(trt, logger, onnx_bytes, precision)
            self.engine = runtime.deserialize_cuda_engine(serialized)
            if cache is not None:
                try:
                    from .export import write_atomically
                    write_atomically(bytes(serialized), cache)
                except OSError as e:
                    warnings.warn(f"TensorRT engine not cached ({cache}: {e}); it is rebuilt on every start",
                                  TensorRTBuildWarning, stacklevel=3)
        self.cache_path = cache
        for msg in self.messages:
            warnings.warn(f"TensorRT: {msg}", TensorRTBuildWarning, stacklevel=3)
        self.context = self.engine.create_execution_context()
        self.inputs, self.outputs = [], []
        for i in range(self.engine.num_io_tensors):
            tname = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(tname))
            dtype = _TORCH_OF_TRT[self.engine.get_tensor_dtype(tname).name]
            is_input = self.engine.get_tensor_mode(tname) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append((tname, shape, dtype))

    def _build(self, trt: Any, logger: Any, onnx_bytes: bytes, precision: str) -> Any:
        builder = trt.Builder(logger)
        # Strongly typed: every layer computes in the type its graph gives it (the float16 products of an
        # fp16 graph, float32 elsewhere). The flag is needed on TensorRT 10 and is the only mode of 11.
        strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendUnavailableError(f"TensorRT cannot parse the exported graph: {errors}")
        config = builder.create_builder_config()
        if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)  # float32 means float32, not TF32's 10-bit products
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendUnavailableError("TensorRT failed to build an engine: " + "; ".join(self.messages[-5:]))
        return serialized

    def __call__(self, feed: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        keep = []
        for name, shape, dtype in self.inputs:
            t = feed[name].to(self.device, dtype).contiguous()
            keep.append(t)
            self.context.set_tensor_address(name, t.data_ptr())
        outs = [torch.empty(shape, dtype=dtype, device=self.device) for _, shape, dtype in self.outputs]
        for (name, _, _), t in zip(self.outputs, outs):
            self.context.set_tensor_address(name, t.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        return outs


def _trt_logger(trt: Any, sink: list[str]) -> Any:
    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR,
                            trt.ILogger.Severity.WARNING):
                sink.append(f"[{severity.name}] {msg}")
    return _Logger()


# ---------------------------------------------------------------------------------------------------------

class OnnxNetwork(nn.Module):
    """An exported graph with CKDNet's interface. ``config`` (from the file's metadata) tells the tracker the
    crop sizes and the elimination schedule; the template mask it passes must be the one in the graph."""

    def __init__(self, backend: str, onnx_bytes: bytes, metadata: OnnxMetadata, device: torch.device | str = "cpu",
                 precision: str = "fp32", model_path: str | os.PathLike | None = None, threads: int | None = None,
                 tensorrt_provider: bool = False) -> None:
        super().__init__()
        device = torch.device(device)
        check_backend(backend, device, precision)
        self.backend, self.metadata, self.config = backend, metadata, metadata.config
        self._device = device
        self.precision = precision if precision in ("fp16", "int8") else "fp32"
        self._names = metadata.outputs
        if device.type == "cpu":
            if self.precision == "int8":
                onnx_bytes = quantize_int8(onnx_bytes)
            self._run: Callable = cpu_runner(backend, onnx_bytes, threads)
        elif backend == "onnxruntime":
            cache = Path(model_path).parent if model_path else None
            self._run = _OrtCuda(onnx_bytes, device, tensorrt_provider, cache)
        else:
            self._run = _TensorRT(onnx_bytes, device, precision, model_path)
        self.graph_mib = len(onnx_bytes) / 2 ** 20   # the graph the runtime was given (int8: the quantised one)
        self._ctr = None
        if metadata.template_mask == "ctr_point":
            from .mce import ctr_point_mask
            self._ctr = ctr_point_mask(metadata.config, 1, "cpu")

    def _apply(self, fn: Callable, recurse: bool = True) -> "OnnxNetwork":
        # the session lives on its device; .to() with another device is an error, not a silent copy
        here = torch.zeros(0, device=self._device)
        probe = fn(here)
        if probe.device != here.device:
            raise ValueError(f"this {self.backend} network was built for {self._device}; build it for "
                             f"{probe.device} instead")
        return self

    def _check_mask(self, mask: torch.Tensor | None) -> None:
        if (mask is None) != (self._ctr is None) or (
                mask is not None and not torch.equal(mask.cpu().reshape(self._ctr.shape), self._ctr)):
            raise ValueError(f"the exported graph has the template mask {self.metadata.template_mask!r} built in; "
                             "the caller passed another (export with the tracker's ce_template_mask setting)")

    def forward(self, template_rgb: torch.Tensor, template_tir: torch.Tensor, search_rgb: torch.Tensor,
                search_tir: torch.Tensor, ce_template_mask: torch.Tensor | None = None) -> dict:
        self._check_mask(ce_template_mask)
        tensors = (template_rgb, template_tir, search_rgb, search_tir)
        if self._device.type == "cpu":
            feed = {k: t.detach().float().contiguous().numpy() for k, t in zip(INPUT_NAMES, tensors)}
            outs = [torch.from_numpy(np.ascontiguousarray(o)) for o in self._run(feed)]
        else:
            outs = self._run(dict(zip(INPUT_NAMES, tensors)))
        named = dict(zip(self._names, outs))
        out = {k: named[k].float() for k in MAP_NAMES + ("pred_boxes",)}
        kept = [named[k] for k in self._names if k.startswith("ce_kept_")]
        if kept:
            out["ce_kept"] = kept
        return out


@dataclass(frozen=True)
class OnnxModel:
    """An exported graph and where it came from (its path keys the TensorRT engine cache)."""

    onnx_bytes: bytes
    metadata: OnnxMetadata
    path: Path | None = None

    @classmethod
    def read(cls, path: str | os.PathLike) -> "OnnxModel":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model {path} does not exist")
        data = path.read_bytes()
        return cls(data, read_metadata(data), path)


def load_backend(backend: str, model: OnnxModel, device: torch.device | str = "cpu", precision: str = "fp32",
                 threads: int | None = None, tensorrt_provider: bool = False) -> OnnxNetwork:
    """The network of ``model`` under ``backend`` (onnxruntime | openvino | tensorrt) on ``device``."""
    if backend not in ONNX_BACKENDS:
        raise ValueError(f"load_backend runs exported graphs with {', '.join(ONNX_BACKENDS)}, got {backend!r}")
    return OnnxNetwork(backend, model.onnx_bytes, model.metadata, device, precision, model.path, threads,
                       tensorrt_provider)


def exported(net: nn.Module, template_mask: str | None = None, path: str | os.PathLike | None = None,
             log: Callable[[str], None] | None = None) -> OnnxModel:
    """``net`` (a CKDNet, its current schedule) exported and checked in memory (see ckd_ros.model.export)."""
    from .export import export_network
    result = export_network(net, template_mask, source=str(path or ""), log=log)
    return OnnxModel(result.onnx_bytes, result.metadata, Path(path) if path else None)


__all__ = ["BACKENDS", "ONNX_BACKENDS", "BackendUnavailableError", "TensorRTBuildWarning", "OnnxNetwork",
           "OnnxModel", "backend_error", "check_backend", "package_error", "load_backend", "exported",
           "engine_path", "cpu_runner"]
