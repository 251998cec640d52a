"""What each compression method buys on the digits MLP and CNN: accuracy, parameters, bytes, latency.

For each model: train the baseline, apply every method (issue 9), and measure each variant as
``python -m dlopt_core compress`` does: validation accuracy, parameters (non-zero), the bytes of
the saved state_dict (CSR bytes for masked-only pruning), and the median CPU latency at batch 1
and 256 with one torch thread, eager and ``torch.compile``d (n/a with the reason if it fails).
"""

from __future__ import annotations

import argparse
import time

from dlopt_core.config import ModelConfig
from dlopt_core.experiments.compress.config import CompressionConfig, MethodConfig
from dlopt_core.experiments.compress.run import Compression

SETUPS = {
    "mlp": ("mlp:hidden=256", 20, "distill:student=mlp:hidden=32"),
    "cnn": ("cnn", 10, "distill:student=cnn:channels=4/8"),
}
METHODS = (
    "prune_structured:sparsity=0.5", "prune_unstructured:sparsity=0.9", "quantize_int8_weight",
    "quantize_int8_dynamic", "fp16", "bf16",
)


def _ms(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "n/a"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench compression", description=__doc__)
    parser.add_argument("--models", default="mlp,cnn", help="comma-separated: mlp, cnn")
    parser.add_argument("--repeats", type=int, default=50, help="timed forward passes per latency")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile latencies")
    args = parser.parse_args(argv)
    for name in args.models.split(","):
        model, epochs, distill = SETUPS[name]
        config = CompressionConfig.make(
            model=ModelConfig.parse(model),
            epochs=epochs, methods=tuple(MethodConfig.parse(m) for m in (*METHODS, distill)),
            latency_repeats=args.repeats, compile=not args.no_compile, sensitivity_sparsity=None,
        )
        started = time.perf_counter()
        c = Compression(config).execute()
        print(f"\ndigits {model}, {epochs} epochs, Adam; CPU, 1 thread; median of {args.repeats} passes "
              f"({time.perf_counter() - started:.0f} s in all)")
        print(f"{'variant':<34} {'acc':>6} {'params':>7} {'nonzero':>7} {'bytes':>7} {'CSR':>7} "
              f"{'b1 ms':>7} {'b256 ms':>8} {'cb1 ms':>7} {'cb256 ms':>8}  kind")
        for r in c.rows:
            if r.error:
                print(f"{r.label:<34} failed: {r.error}")
                continue
            print(f"{r.label[:34]:<34} {r.val_metric:6.3f} {r.params:7d} {r.nonzeros:7d} {r.bytes:7d} "
                  f"{r.sparse_bytes if r.sparse_bytes is not None else '-':>7} {_ms(r.latency_b1_ms):>7} "
                  f"{_ms(r.latency_b256_ms):>8} {_ms(r.compiled_b1_ms):>7} {_ms(r.compiled_b256_ms):>8}  {r.badge}")
        notes = {r.compiled_note for r in c.rows if r.compiled_note} | {r.note for r in c.rows if r.note}
        for note in sorted(notes):
            print(f"  note: {note}")


if __name__ == "__main__":
    main()
