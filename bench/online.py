"""``python -m bench online [--repeats N]``: the Online and continual page's default experiments, timed and read.

The drift race's default (digits with a label swap, four learners x 3 seeds) and continual
learning's default (split digits, SGD and Adam x naive, replay and EWC x 3 seeds): medians of
``--repeats`` runs each, interleaved, nothing tracked. Then, from the last repeat, which learner
recovered fastest after each drift, the detectors' scores beside the always- and never-firing
baselines, and which optimizer x strategy forgot least.
"""

from __future__ import annotations

import argparse
import statistics
import time

from dlopt_core.device import use_one_thread
from dlopt_core.experiments.continual import Continual, ContinualConfig, summary_rows
from dlopt_core.experiments.stream import StreamConfig, StreamRace, detector_rows, recovery_rows


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench online", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    use_one_thread()
    race_cfg, cont_cfg = StreamConfig.make(), ContinualConfig.make()
    walls: dict[str, list[float]] = {"drift race": [], "continual": []}
    race: StreamRace | None = None
    cont: Continual | None = None
    for i in range(args.repeats):
        t0 = time.perf_counter()
        race = StreamRace(race_cfg).execute()
        walls["drift race"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cont = Continual(cont_cfg).execute()
        walls["continual"].append(time.perf_counter() - t0)
        print(f"repeat {i + 1}: race {walls['drift race'][-1]:.1f} s, continual {walls['continual'][-1]:.1f} s", flush=True)
    assert race is not None and cont is not None

    print(f"\n{'default experiment':<20} {'median s':>9}")
    for name, values in walls.items():
        print(f"{name:<20} {statistics.median(values):>9.2f}")

    print(f"\ndrift race ({race_cfg.stream}, drifts at steps {race.drifts}), last repeat, mean over seeds:")
    rows = recovery_rows(race)
    drifts = len(race.drifts)
    print(f"{'learner':<26} {'final':>6} {'average':>8} " + " ".join(f"{'recover ' + str(d + 1):>14}" for d in range(drifts)))
    for r in rows:
        recover = " ".join(f"{_cell(r[f'recover_{d + 1}'], '.1f') + ' (' + r[f'recovered_{d + 1}'] + ')':>14}" for d in range(drifts))
        print(f"{r['learner']:<26} {_cell(r['final_accuracy'], '.3f'):>6} {_cell(r['average_accuracy'], '.3f'):>8} {recover}")
    recovered = [(r["recover_1"], r["learner"]) for r in rows if r.get("recover_1") is not None]
    if recovered:
        print(f"fastest to recover after the first drift: {min(recovered)[1]} ({min(recovered)[0]:.1f} steps)")

    print(f"\n{'detector':<16} {'precision':>9} {'recall':>7} {'to detect':>10} {'false/1000':>11}")
    det = detector_rows(race)
    for r in det:
        print(f"{r['detector']:<16} {_cell(r['precision'], '.3f'):>9} {_cell(r['recall'], '.3f'):>7} "
              f"{_cell(r['mean_time_to_detect'], '.1f'):>10} {_cell(r['false_per_1000'], '.1f'):>11}")
    for b in ("always", "never"):
        r = det[0]
        print(f"{b + ' fires':<16} {_cell(r[f'{b}_precision'], '.3f'):>9} {_cell(r[f'{b}_recall'], '.3f'):>7} "
              f"{_cell(r[f'{b}_mean_time_to_detect'], '.1f'):>10} {_cell(r[f'{b}_false_per_1000'], '.1f'):>11}")

    print(f"\ncontinual ({cont_cfg.sequence}), last repeat, mean ± sd over seeds:")
    crow = summary_rows(cont)
    print(f"{'optimizer':<16} {'strategy':<8} {'avg acc':>15} {'forgetting':>15} {'runs':>5}")
    for r in crow:
        cells = [f"{_cell(r[m], '.3f')} ± {_cell(r[m + '_sd'], '.3f')}" for m in ("average_accuracy", "forgetting")]
        print(f"{r['optimizer']:<16} {r['strategy']:<8} {cells[0]:>15} {cells[1]:>15} {r['finished']:>5}")
    done = [(r["forgetting"], f"{r['optimizer']} + {r['strategy']}") for r in crow if r["forgetting"] is not None]
    if done:
        print(f"forgets least: {min(done)[1]} ({min(done)[0]:.3f})")


if __name__ == "__main__":
    main()
