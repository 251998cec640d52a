"""What a compression measures: a row per variant, the baseline's per-layer sensitivity, a sparsity curve."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dlopt_core.experiments.compress.config import BASELINE


@dataclass(frozen=True)
class CompressionRow:
    """One variant, measured. Sizes and latencies are ``None`` for a variant that failed (``error``)."""

    method: str  # registry name, "baseline" or "student_scratch"
    label: str
    badge: str
    settings: dict[str, Any]
    val_loss: float | None = None
    val_metric: float | None = None  # accuracy, or R^2 for regression
    params: int | None = None
    nonzeros: int | None = None
    bytes: int | None = None  # torch.save of the state_dict
    payload_bytes: int | None = None  # the tensor data alone
    sparse_bytes: int | None = None  # masked weights in CSR (masked-only variants)
    masked_only: bool = False
    sparsity: float | None = None  # the asked share (pruning methods)
    latency_b1_ms: float | None = None
    latency_b256_ms: float | None = None
    compiled_b1_ms: float | None = None
    compiled_b256_ms: float | None = None
    cuda_b1_ms: float | None = None
    cuda_b256_ms: float | None = None
    latency_note: str = ""
    compiled_note: str = ""
    cuda_note: str = ""
    note: str = ""
    seconds: float = 0.0  # compressing (and any training) time
    error: str | None = None

    @property
    def is_baseline(self) -> bool:
        return self.method == BASELINE

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON and CSV (``settings`` stays a dict)."""
        return asdict(self)


@dataclass(frozen=True)
class LayerSensitivity:
    """The validation metric when only ``layer`` is pruned (at ``sparsity``) or int8-quantized."""

    layer: str
    kind: str  # "linear" or "conv"
    params: int
    sparsity: float
    pruned_metric: float
    quantized_metric: float | None  # None: torchao quantizes linear layers only


@dataclass(frozen=True)
class SparsityPoint:
    sparsity: float
    val_metric: float
