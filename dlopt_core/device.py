"""Which device a run uses, how reproducible it is there, and how to describe it to a person."""

from __future__ import annotations

import os

import torch

# cuBLAS is deterministic only with a fixed workspace; it reads this when its first handle is
# made, so it is set before any CUDA work (harmless where there is no GPU).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def resolve_device(choice: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit choice must be available."""
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for but no CUDA GPU is available")
    if choice == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device: 'mps' was asked for but MPS is not available")
    return torch.device(choice)


def describe_device(device: torch.device) -> str:
    """A one-line description, e.g. ``CUDA: NVIDIA H200`` or ``CPU (2 cores)``."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "MPS: Apple GPU"
    import os

    return f"CPU ({os.cpu_count()} cores, 1 torch thread per job)"


def use_one_thread() -> None:
    """One intra-op thread for the calling thread (OpenMP's setting is per thread).

    On 2 cores a second thread made tiny models 1.15x slower idle and up to 100x slower
    under contention, because idle OpenMP workers spin.
    """
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def use_determinism(device: torch.device, deterministic: bool) -> None:
    """On CUDA: the same config and seed give the same curves, or the fastest kernels.

    Deterministic: cuDNN picks deterministic convolution algorithms, no autotuning, and
    torch's deterministic algorithms are on (warn-only, so an op with no deterministic
    kernel still runs and says so). These are process-wide settings: each run sets them
    at its start. Nothing changes on a CPU, where runs are deterministic already.
    """
    if device.type != "cuda":
        return
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
