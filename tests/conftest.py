"""Shared fixtures: an isolated data folder per test, a real streamlit server for browser tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One empty, migrated MLflow store that every new store of this session starts as a copy of
    (its migrations cost 1-2 s per test otherwise); the servers and CLIs the tests start inherit it."""
    from tracking.store import TEMPLATE_ENV, make_template

    path = make_template(tmp_path_factory.mktemp("store-template") / "mlflow.db")
    os.environ[TEMPLATE_ENV] = str(path)
    yield path
    os.environ.pop(TEMPLATE_ENV, None)


@pytest.fixture(autouse=True)
def dlopt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test stores runs in its own temporary folder."""
    home = tmp_path / "dlopt-home"
    monkeypatch.setenv("DLOPT_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


SERVER_LOG = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[str]:
    """``streamlit run app.py`` on a free port with its own data folder; yields the URL."""
    home = tmp_path_factory.mktemp("server-home")
    pytestconfig.stash[SERVER_LOG] = home / "server.log"
    with streamlit_server(home) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (see .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL cluster on a free local port for this test session (tests/postgres.py)."""
    from postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[object]:
    """When a browser test fails, keep what the pages showed and the server's log in the report.

    CI hands back only its output: a failure on a loaded machine that never shows up here
    must carry enough to tell a slow page from a wrong one.
    """
    report = yield
    if not report.failed or call.when != "call" or "app_server" not in item.fixturenames:
        return report
    browser = item.funcargs.get("browser")
    for i, context in enumerate(getattr(browser, "contexts", [])):
        for j, page in enumerate(context.pages):
            try:
                text = page.inner_text("body", timeout=5_000)
            except Exception as err:  # noqa: BLE001  (a closed or hung page still gets a line)
                text = f"(unreadable: {err})"
            report.sections.append((f"page {i}.{j} {page.url}", text[-4000:]))
    log = item.config.stash.get(SERVER_LOG, None)
    if log is not None and log.exists():
        report.sections.append(("streamlit server log (tail)", log.read_text(errors="replace")[-6000:]))
    return report


# Known-slow tests (seconds in loaded 2-worker runs, `--durations`; a parametrized test's
# slowest case), started first. pytest-xdist hands out tests in collection order, so a long
# test collected late (the files are alphabetical) keeps one worker busy after the other has
# run out of work: longest first, the last tests on both workers are short ones and they end
# close together. Only the order changes; a renamed test merely loses its place. (--dist
# loadgroup still sends a group, the team-topology tests, to one worker first: it is the
# largest scope.)
SLOW_FIRST = {
    "tests/test_load_sessions.py::test_sessions_at_once_all_finish_once_each_in_submit_order": 118,
    "tests/test_compare_browser.py::test_only_the_browser_that_started_a_comparison_can_stop_it": 66,
    "tests/test_runs_browser.py::test_past_comparisons_open_and_overlay_after_a_restart": 60,
    "tests/test_tracking_faults.py::test_processes_started_together_on_a_new_home_keep_every_run": 53,
    "tests/test_browser.py::test_a_second_tab_attaches_to_the_running_comparison": 45,
    "tests/test_signals.py::test_sigterm_ends_the_server_running_runs_killed_and_queued_work_never_starts": 41,
    "tests/test_mlflow_layout.py::test_the_runs_browser_lists_the_parent_once_and_reopens_it": 39,
    "tests/test_browser.py::test_compare_two_optimizers_shows_a_live_chart_with_both": 36,
    "tests/test_cli.py::test_compare_prints_json_and_logs_every_run": 31,
    "tests/test_explain.py::test_katex_renders_every_update_rule_and_schedule_formula": 30,
    "tests/test_compression_cli.py::test_compress_prints_one_row_per_variant_and_logs_each_as_a_run": 25,
    "tests/test_study_workers.py::test_three_workers_fill_one_study_with_exactly_its_trials": 24,
    "tests/test_study_workers.py::test_a_worker_killed_mid_trial_leaves_no_trial_running": 22,
    "tests/test_browser.py::test_home_page_links_to_the_compare_page": 22,
    "tests/test_cli_sweep.py::test_sweep_prints_every_point_and_the_best_lr_and_nests_the_runs_under_one_parent": 21,
    "tests/test_mlflow_layout.py::test_sweep_and_data_page_parents_log_their_own_config": 21,
    "tests/test_signals.py::test_a_signal_stops_the_cli_and_its_runs_end_as_killed": 20,
    "tests/test_signals.py::test_a_signal_to_the_process_group_cancels_every_run_of_a_batched_split": 20,
    "tests/test_study.py::test_the_cli_prints_the_study_as_json": 20,
    "tests/test_tracking_faults.py::test_writes_a_lost_server_missed_are_kept_and_replayed_when_it_is_back": 20,
    "tests/test_lr_range.py::test_cli_prints_the_suggestions_and_every_curve_as_json": 20,
    "tests/test_compare_page.py::test_each_schedule_with_its_defaults_runs_on_a_one_epoch_budget": 18,
    "tests/test_compare_browser.py::test_every_control_and_stop_fit_the_window": 17,
    "tests/test_landscape_browser.py::test_play_keeps_the_surface_under_the_moving_paths_and_a_click_works_after": 16,
    "tests/test_landscape_browser.py::test_title_legend_plot_and_controls_never_overlap_with_six_optimizers": 14,
    "tests/test_binding_widgets.py::test_a_link_through_the_widgets_comes_back_unchanged": 14,
    "tests/test_browser.py::test_seed_bands_are_drawn_without_markers": 13,
    "tests/test_mlflow_layout.py::test_a_cli_comparison_is_one_parent_with_a_child_per_optimizer_and_seed": 13,
    "tests/test_layering.py::test_package_imports_no_upper_layer": 13,
    "tests/test_batched.py::test_a_split_works_when_the_caller_uses_several_torch_threads": 11,
    "tests/test_data_browser.py::test_the_grid_shows_originals_and_augmented_versions_and_a_csv_joins_the_data_sets": 11,
    "tests/test_kit.py::test_a_second_browser_attaches_may_not_stop_and_sees_the_end": 11,
    "tests/test_landscape_browser.py::test_clicking_the_plot_moves_the_start_point": 11,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The known-slow tests first, longest first; the rest keep their order."""
    def seconds(item: pytest.Item) -> float:
        return SLOW_FIRST.get(item.nodeid.split("[")[0].split("@")[0], 0)

    items[:] = [item for _, item in sorted(enumerate(items), key=lambda pair: (-seconds(pair[1]), pair[0]))]
