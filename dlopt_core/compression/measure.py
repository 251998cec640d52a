"""What a compressed model costs and weighs, measured rather than computed from a formula.

- Sizes: parameters, non-zero parameters, the bytes ``torch.save`` writes for the state_dict
  (what a file on disk holds), the bytes of the tensor data alone, and for masked weights
  the bytes of the same state_dict with those weights in CSR form (what a sparse encoding
  saves, or costs: below about 2/3 zeros CSR with int64 indices is larger than dense).
- Latency: the median of repeated timed forward passes after a warm-up, at batch 1 and 256,
  on the CPU with one thread (as the app runs jobs), eager and optionally ``torch.compile``d,
  and on CUDA where there is a GPU. Any of them may be n/a, with the reason.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dlopt_core.compression.weights import state_dict_bytes

BATCHES = (1, 256)


@dataclass(frozen=True)
class Sizes:
    """How big a model is, four ways."""

    params: int
    nonzeros: int
    bytes: int  # torch.save of the state_dict: what a file holds
    payload_bytes: int  # the tensor data alone, no container
    sparse_bytes: int | None  # the state_dict with masked weights as CSR; None where nothing is masked


@dataclass(frozen=True)
class Latency:
    """Median milliseconds per forward pass at batch 1 and 256, or why there is no number."""

    b1_ms: float | None
    b256_ms: float | None
    note: str = ""


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of a tensor's data; for a tensor subclass (a torchao int8 tensor) the sum of its inner tensors."""
    if type(t) is not torch.Tensor and type(t) is not nn.Parameter and hasattr(t, "__tensor_flatten__"):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, name)) for name in names)
    if t.layout == torch.sparse_csr:
        return sum(tensor_bytes(x) for x in (t.crow_indices(), t.col_indices(), t.values()))
    return t.numel() * t.element_size()


def _dense(t: torch.Tensor) -> torch.Tensor:
    # A quantized weight counts its zeros after dequantizing: what the layer multiplies by.
    return t.dequantize() if type(t) is not torch.Tensor and hasattr(t, "dequantize") else t


def count_params(model: nn.Module) -> tuple[int, int]:
    """``(parameters, non-zero parameters)``."""
    total = nonzero = 0
    for p in model.parameters():
        total += p.numel()
        nonzero += int(torch.count_nonzero(_dense(p.detach())))
    return total, nonzero


def measure_sizes(model: nn.Module, *, masked: bool = False) -> Sizes:
    """Parameter counts and bytes of ``model``; ``masked``: also the sparse encoding's bytes."""
    params, nonzeros = count_params(model)
    state = model.state_dict()
    sparse = None
    if masked:
        sparse = len(state_dict_bytes({k: _csr(v) if _has_zeros(k, v) else v for k, v in state.items()}))
    return Sizes(
        params, nonzeros, len(state_dict_bytes(state)), sum(tensor_bytes(v) for v in state.values()), sparse,
    )


def _has_zeros(name: str, t: torch.Tensor) -> bool:
    return name.endswith("weight") and t.dim() >= 2 and bool((t == 0).any())


def _csr(t: torch.Tensor) -> torch.Tensor:
    # A convolution's filters as rows: (out, in x k x k).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta": we only store it
        return t.detach().reshape(t.shape[0], -1).to_sparse_csr()


def time_forward(model: nn.Module, x: torch.Tensor, *, repeats: int, warmup: int = 3,
                 sync: Callable[[], None] = lambda: None) -> float:
    """Median milliseconds of ``model(x)`` over ``repeats`` timed calls after ``warmup`` untimed ones."""
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            sync()  # a GPU runs ahead of Python: wait for it, or only the launch is timed
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def batches(x: torch.Tensor) -> dict[int, torch.Tensor]:
    """Inputs of batch 1 and 256 from ``x`` (rows repeated when there are fewer)."""
    need = max(BATCHES)
    rows = x if len(x) >= need else x.repeat((need + len(x) - 1) // len(x), *([1] * (x.dim() - 1)))
    return {b: rows[:b].contiguous() for b in BATCHES}


def cpu_latency(model: nn.Module, x: torch.Tensor, *, repeats: int) -> Latency:
    """Eager CPU latency at batch 1 and 256."""
    model = model.eval()
    try:
        b1, b256 = (time_forward(model, xb.cpu(), repeats=repeats) for xb in batches(x).values())
    except Exception as err:  # e.g. an op without a CPU kernel for this dtype
        return Latency(None, None, f"n/a: {type(err).__name__}: {_short(err)}")
    return Latency(b1, b256)


def compiled_latency(model: nn.Module, x: torch.Tensor, *, repeats: int) -> Latency:
    """CPU latency of ``torch.compile(model)``; n/a with the reason when compiling fails.

    Compiling takes seconds per model and batch shape (measured 10-12 s for a fresh process,
    then 2-3 s per shape): callers ask for it.
    """
    import torch._dynamo

    # A fresh cache per model: after 8 recompilations of one forward, dynamo quietly runs eager.
    torch._dynamo.reset()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchao's Int8Tensor: a note about inductor's cache keys
            compiled = torch.compile(model.eval())
            b1, b256 = (time_forward(compiled, xb.cpu(), repeats=repeats) for xb in batches(x).values())
    except Exception as err:
        return Latency(None, None, f"n/a: compile failed: {type(err).__name__}: {_short(err)}")
    finally:
        torch._dynamo.reset()
    return Latency(b1, b256)


def cuda_latency(model: nn.Module, x: torch.Tensor, *, repeats: int) -> Latency:
    """Latency on the GPU; n/a when there is none or the model's kernels do not run there."""
    if not torch.cuda.is_available():
        return Latency(None, None, "n/a: no CUDA GPU")
    try:
        on_gpu = copy.deepcopy(model).to("cuda").eval()
        b1, b256 = (
            time_forward(on_gpu, xb.to("cuda"), repeats=repeats, sync=torch.cuda.synchronize)
            for xb in batches(x).values()
        )
    except Exception as err:
        return Latency(None, None, f"n/a: {type(err).__name__}: {_short(err)}")
    return Latency(b1, b256)


def _short(err: Exception, limit: int = 160) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
