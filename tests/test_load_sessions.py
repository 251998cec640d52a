"""Six browsers start a comparison each on one server: all finish, once each, first come first served.

The invariants of ``python -m bench load_sessions`` (ten sessions there, with page-load times and
the server's memory, threads and open files); six here, so that three times the two job slots
still queue, in a third of the time on a 2-core CI machine. No timing is asserted.
"""

import pytest

from bench.load_sessions import OPTIMIZERS, run_sessions

pytestmark = pytest.mark.browser


def test_sessions_at_once_all_finish_once_each_in_submit_order() -> None:
    result = run_sessions(sessions=6, epochs=30, job_timeout_s=240.0, measure=False)
    seeds = result.submit_order
    assert len(seeds) == 6
    assert result.stalled == {}  # seed -> what a page showed when it never reached "finished: 100%"
    # No tab broken: a queued tab once went blank for good ("Bad delta path index", issue 26).
    assert {page: errors for page, errors in result.page_errors.items() if errors} == {}
    assert sorted(result.finished_at) == sorted(seeds)
    # MLflow holds one comparison per session with one FINISHED run per optimizer: none lost,
    # none doubled (a page that submitted twice would have two comparison ids or four runs).
    for seed in seeds:
        assert sorted(r["optimizer"] for r in result.runs[seed]) == sorted(o.split(":")[0] for o in OPTIMIZERS), seed
        assert {r["status"] for r in result.runs[seed]} == {"FINISHED"}, seed
        assert len(result.comparisons[seed]) == 1, seed
    assert result.extra_runs == 0
    # First come, first served: no comparison started while one submitted before it still waited.
    # (Two slots take jobs at nearly the same moment; their workers may log the start in either
    # order within a fraction of a second.)
    assert result.inversions(tolerance=1.0) == []
