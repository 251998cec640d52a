"""``python -m bench [NAME [OPTIONS]] ...``: run the named benchmarks (default: all, in order).

Options after a name go to that benchmark (``python -m bench concurrency --epochs 20``);
``python -m bench concurrency --help`` lists them.
"""

import sys

from bench import (
    app_times, augment_cost, batched, compression, concurrency, first_point, landscape, layering, load_sessions, online, runs_page,
    study_storage, study_vs_grid, throughput, transfer, work_setup,
)

# name -> (main, takes options)
BENCHES = {
    "throughput": (throughput.main, False),
    "concurrency": (concurrency.main, True),
    "first_point": (first_point.main, False),
    "landscape": (landscape.main, False),
    "batched": (batched.main, True),
    "app_times": (app_times.main, True),
    "study_storage": (study_storage.main, True),
    "study_vs_grid": (study_vs_grid.main, True),
    "augment_cost": (augment_cost.main, True),
    "compression": (compression.main, True),
    "load_sessions": (load_sessions.main, True),
    "runs_page": (runs_page.main, True),
    "layering": (layering.main, True),
    "work_setup": (work_setup.main, True),
    "transfer": (transfer.main, True),
    "online": (online.main, True),
}

runs: list[tuple[str, list[str]]] = []
for arg in sys.argv[1:]:
    if arg in BENCHES:
        runs.append((arg, []))
    elif runs and (arg.startswith("-") or runs[-1][1]):  # an option, or an option's value
        runs[-1][1].append(arg)
    else:
        sys.exit(f"unknown benchmark {arg!r} (choose from: {', '.join(BENCHES)})")
for name, options in runs or [(name, []) for name in BENCHES]:
    main, takes_options = BENCHES[name]
    if options and not takes_options:
        sys.exit(f"benchmark {name!r} takes no options (got {' '.join(options)})")
    main(options) if takes_options else main()
