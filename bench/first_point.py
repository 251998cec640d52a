"""Seconds from pressing Run to the first point on the chart, in Chromium, on a real server.

Starts ``streamlit run`` on a free port, opens the Compare page for a 2-optimizer comparison
(a fresh config each repeat, so no run is re-attached), and times click -> first curve point.
The first repeat is the server's first Run; the median is over all repeats.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser import CHROMIUM, CHROMIUM_ARGS, compare_url, run_and_time_first_point, streamlit_server  # noqa: E402

REPEATS = 7


def main() -> None:
    from playwright.sync_api import sync_playwright

    times = []
    with tempfile.TemporaryDirectory() as home, streamlit_server(Path(home)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for i in range(REPEATS):
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            seconds, _ = run_and_time_first_point(
                page, compare_url(url, ["sgd:lr=0.1", "adam:lr=0.001"], epochs=100 + i)
            )
            times.append(seconds)
            page.close()
        browser.close()
    print(f"first_point: Run -> first chart point in Chromium, {REPEATS} repeats")
    print(f"  first Run on a fresh server   {times[0]:.2f} s")
    print(f"  median                        {statistics.median(times):.2f} s   (target < 1.5 s)")
    print(f"  all                           {' '.join(f'{t:.2f}' for t in times)}")


if __name__ == "__main__":
    main()
