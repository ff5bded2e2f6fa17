"""Which device and arithmetic a network may run with: the one place these rules live.

The tracker factory, the node (through it) and the fast paths all ask here, so that a device or precision
a machine cannot honour fails before any weights move, with a message that says what would work.
"""
from __future__ import annotations

import re

import torch

PRECISIONS: tuple[str, ...] = ("exact", "fp32", "int8", "bf16", "fp16")
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def device_error(device: str) -> str | None:
    """Why ``device`` is not a device name this package accepts (auto, cpu, cuda, cuda:N), or None."""
    return None if _DEVICE.match(str(device)) else f"device must be auto, cpu, cuda or cuda:N, got {device!r}"


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> cuda:0 when torch sees a GPU, else cpu; a CUDA device torch cannot use is an error."""
    name = str(device)
    problem = device_error(name)
    if problem:
        raise ValueError(problem)
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(name)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} requested but CUDA is not available to torch "
                               f"(torch {torch.__version__}); use device cpu or auto")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {name!r} requested but torch sees {torch.cuda.device_count()} GPU(s)")
    return resolved


def cpu_has_bf16_kernels() -> bool:
    """Whether oneDNN has bfloat16 kernels on this CPU (AVX-512 and newer). Without them torch emulates bf16
    element by element: the paper-size forward took 95 s instead of 0.7 s on an AVX2-only EPYC. An unknown
    answer (a torch build without the probe) counts as yes: nothing is refused on a guess."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def precision_error(precision: str, device: str | torch.device) -> str | None:
    """Why ``precision`` cannot run on ``device`` (a resolved device), or None."""
    if precision not in PRECISIONS:
        return f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
    kind = torch.device(device).type
    if precision == "fp16" and kind != "cuda":
        return "precision fp16 needs a CUDA device; use exact, fp32 or int8 on the CPU (bf16 where it has bfloat16 kernels)"
    if precision == "int8" and kind != "cpu":
        return "precision int8 (dynamic quantisation) runs on the CPU; use fp16 or bf16 on CUDA"
    if precision == "bf16" and kind == "cpu" and not cpu_has_bf16_kernels():
        return ("precision bf16 needs a CPU with bfloat16 kernels (AVX-512 or newer); this one has none and "
                "torch would emulate it about 100x slower than fp32: use exact, fp32 or int8")
    return None


def check_precision(precision: str, device: str | torch.device) -> None:
    problem = precision_error(precision, device)
    if problem:
        raise ValueError(problem)
