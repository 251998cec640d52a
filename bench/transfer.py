"""``python -m bench transfer [--repeats N]``: the Transfer page's default experiments, timed and read.

The transfer lab's default (digits -> rotated digits, 5 % of the target, every arm x 3 seeds):
the whole experiment's seconds with the source model pretrained (the first) and cached (the
rest), each arm's training seconds as a ratio to training from scratch (a frozen backbone needs
no backward pass through it), and each arm's accuracies, with whether LP-FT beat full
fine-tuning on the shifted test here. Then each parameter-sharing family's default (every
variant x 3 seeds): seconds, and each variant's training seconds as a ratio to its family's
first. Medians of ``--repeats`` runs, interleaved; nothing is tracked.
"""

from __future__ import annotations

import argparse
import statistics
import time

from dlopt_core.device import use_one_thread
from dlopt_core.experiments.share import Share, ShareConfig, summarize
from dlopt_core.experiments.transfer import Transfer, TransferConfig, summary_rows


def _train_seconds(transfer: Transfer) -> dict[str, float]:
    """Per arm, the mean over seeds of the run's own training time (steps only)."""
    by_arm: dict[str, list[float]] = {}
    for r in transfer.runs:
        by_arm.setdefault(r.arm, []).append(r.records[-1].wall_time if r.records else float("nan"))
    return {arm: statistics.fmean(v) for arm, v in by_arm.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench transfer", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    use_one_thread()

    config = TransferConfig.make()
    families = {f: ShareConfig.make(family=f) for f in ("tied", "depth", "multitask")}
    walls: dict[str, list[float]] = {"transfer": []} | {f"share {f}": [] for f in families}
    ratios: dict[str, list[float]] = {}
    last: Transfer | None = None
    shares: dict[str, Share] = {}
    for i in range(args.repeats):
        t0 = time.perf_counter()
        last = Transfer(config).execute()
        walls["transfer"].append(time.perf_counter() - t0)
        seconds = _train_seconds(last)
        for arm, s in seconds.items():
            ratios.setdefault(f"transfer {arm} / scratch", []).append(s / seconds["scratch"])
        for family, cfg in families.items():
            t0 = time.perf_counter()
            shares[family] = Share(cfg).execute()
            walls[f"share {family}"].append(time.perf_counter() - t0)
            rows = summarize(shares[family])
            for row in rows:
                ratios.setdefault(f"share {row.variant} / {rows[0].variant}", []).append(
                    (row.seconds or float("nan")) / (rows[0].seconds or float("nan"))
                )
        print(f"repeat {i + 1}: transfer {walls['transfer'][-1]:.1f} s", flush=True)

    print(f"\n{'experiment':<22} {'median s':>9}  (first transfer repeat pretrains the source model: "
          f"{walls['transfer'][0]:.1f} s)")
    for name, values in walls.items():
        print(f"{name:<22} {statistics.median(values):>9.2f}")
    print(f"\n{'training time ratio':<36} {'median':>7}")
    for name, values in ratios.items():
        print(f"{name:<36} {statistics.median(values):>7.2f}")

    assert last is not None
    print("\ntransfer default, last repeat (mean ± sd over 3 seeds):")
    print(f"{'arm':<12} {'params':>7} {'target':>13} {'shifted':>13} {'source kept':>13}")
    rows = {r["arm"]: r for r in summary_rows(last)}
    for arm, r in rows.items():
        cells = [f"{r[k]:.3f} ± {r[k + '_sd'] or 0:.3f}" for k in ("target_accuracy", "shifted_accuracy", "source_accuracy")]
        print(f"{arm:<12} {r['trainable_params']:>7,} " + " ".join(f"{c:>13}" for c in cells))
    lp, full = rows["lp-ft"]["shifted_accuracy"], rows["full"]["shifted_accuracy"]
    verdict = "beats" if lp > full + (rows["full"]["shifted_accuracy_sd"] or 0) else "does not beat"
    print(f"LP-FT {verdict} full fine-tuning on the shifted test here ({lp:.3f} vs {full:.3f}; "
          "'beats' means by more than full fine-tuning's sd over seeds)")


if __name__ == "__main__":
    main()
