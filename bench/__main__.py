"""``python -m bench [throughput] [first_point] [landscape]``: run the named benchmarks (default: all)."""

import sys

from bench import first_point, landscape, throughput

BENCHES = {"throughput": throughput.main, "first_point": first_point.main, "landscape": landscape.main}

names = sys.argv[1:] or list(BENCHES)
unknown = [n for n in names if n not in BENCHES]
if unknown:
    sys.exit(f"unknown benchmark {unknown[0]!r} (choose from: {', '.join(BENCHES)})")
for name in names:
    BENCHES[name]()
