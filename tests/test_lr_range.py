"""The LR range test: its suggestions train, its rules read the curve as fastai's do, its figure and CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from dlopt_core.catalog.optimizers import OPTIMIZERS
from dlopt_core.config import OptimizerConfig, RunConfig, TrainingSetup
from dlopt_core.errors import ConfigError
from dlopt_core.engine.loop import run
from dlopt_core.experiments.lr_range import (
    SUGGESTIONS,
    LRRangeConfig,
    LRRangeCurve,
    LRRangeResult,
    Suggestions,
    lr_range_steps,
    minimum_over_10_lr,
    run_lr_range,
    smooth_losses,
    steepest_lr,
    suggest,
    valley_lr,
)
from dlopt_core.plots import lr_range_data, lr_range_figure
from cli_inprocess import run_main


def _config(name: str = "sgd", **options: object) -> LRRangeConfig:
    return LRRangeConfig.make(optimizer=OptimizerConfig.make(name=name), **options)


@pytest.fixture(scope="module")
def sgd_result() -> LRRangeResult:
    """The default test (200 steps, 1e-7 to 10, seeds 0, 1, 2) of SGD on digits with the MLP."""
    return run_lr_range(_config("sgd"))


def _final_val_loss(lr: float) -> float:
    config = RunConfig.make(optimizer=OptimizerConfig.make(name="sgd", lr=lr), epochs=2, seed=0)
    last = [rec for rec in run(config) if rec.is_eval][-1]
    assert last.status == "finished"
    return last.val_loss


def test_sgd_on_digits_suggests_rates_in_a_sensible_band_that_train(sgd_result: LRRangeResult) -> None:
    # The registry's SGD default (0.1) trains digits well; a sensible suggestion is within a
    # couple of decades of it and below the rate where the test saw the loss explode.
    for name in SUGGESTIONS:
        lr = getattr(sgd_result.suggestions, name)
        low, high = sgd_result.spread[name]
        assert 1e-3 <= low <= lr <= high <= 3, (name, low, lr, high)
        # What a user checks: training at the suggestion beats training at a rate 100x smaller.
        assert _final_val_loss(lr) < _final_val_loss(lr / 100), name
    exploded = [c for c in sgd_result.curves if c.exploded]
    assert len(exploded) >= 2 and all(len(c.lrs) < 200 for c in exploded)  # stopped before lr 10


def test_each_seed_has_its_own_curve_and_the_median_is_taken_across_seeds(sgd_result: LRRangeResult) -> None:
    assert [c.seed for c in sgd_result.curves] == [0, 1, 2]
    assert len({tuple(c.losses[:20]) for c in sgd_result.curves}) == 3  # other weights, other batches
    for name in SUGGESTIONS:
        per_seed = sorted(getattr(c.suggestions, name) for c in sgd_result.curves)
        assert getattr(sgd_result.suggestions, name) == pytest.approx(per_seed[1])
    again = list(lr_range_steps(_config("sgd"), 1))
    assert [p.loss for p in again] == sgd_result.curves[1].losses  # same config, same seed, same curve


def test_the_rates_grow_exponentially_and_the_loss_is_smoothed_with_bias_correction(sgd_result: LRRangeResult) -> None:
    curve = sgd_result.curves[0]
    assert curve.lrs[0] == pytest.approx(1e-7)
    ratios = np.diff(np.log(curve.lrs))
    assert np.allclose(ratios, math.log(1e8) / 199)  # 200 rates from 1e-7 to 10
    # The default window spans half a decade of lr: 200 steps over 8 decades, 12.5 steps.
    assert sgd_result.config.smoothing == pytest.approx(1 - 2 / 25)
    np.testing.assert_allclose(curve.smoothed, smooth_losses(curve.losses, 0.92), rtol=1e-12)
    assert curve.smoothed[0] == pytest.approx(curve.losses[0])  # no bias towards 0 at the start
    assert np.allclose(smooth_losses([2.0] * 50), 2.0)


def test_the_test_stops_when_the_smoothed_loss_exceeds_4x_its_best(sgd_result: LRRangeResult) -> None:
    for curve in sgd_result.curves:
        s = curve.smoothed
        if curve.exploded:
            assert s[-1] > 4 * min(s[:-1])
        assert all(s[i] <= 4 * min(s[: i + 1]) for i in range(len(s) - 1))
    calm = run_lr_range(_config("sgd", lr_max=1e-3, seeds=(0,), steps=60)).curves[0]
    assert len(calm.lrs) == 60 and not calm.exploded and calm.lrs[-1] == pytest.approx(1e-3)


def test_a_loss_that_stops_being_finite_ends_the_test() -> None:
    # With no factor (inf), only a non-finite loss can stop SGD on its way to lr 1000.
    # Least squares: its loss grows without bound once the lr passes 2 / the largest curvature.
    config = _config("sgd", lr_max=1e3, explode_factor=math.inf, steps=100, data={"name": "linear"}, model={"name": "linear"})
    points = list(lr_range_steps(config, 0))
    assert points[-1].exploded and not math.isfinite(points[-1].smoothed)
    assert all(math.isfinite(p.smoothed) and not p.exploded for p in points[:-1])


def test_steepest_is_the_slope_against_log_lr_not_the_step_index() -> None:
    # Rates unevenly spaced: a big drop across two decades (steep per step, gentle per decade)
    # and a small drop across a hundredth of a decade (gentle per step, steep per decade).
    log_lr = np.array([-7, -6, -5, -3, -2, -1.5, -1.0, -0.99, -0.5, 0.0])
    loss = np.array([2.3, 2.3, 2.3, 1.3, 1.3, 1.3, 1.3, 1.1, 1.1, 1.1])
    lrs = list(10**log_lr)
    by_index = int(np.argmin(np.gradient(loss)))
    by_log_lr = int(np.argmin(np.gradient(loss, log_lr)))
    assert by_index != by_log_lr  # the curve tells the two apart
    assert steepest_lr(lrs, loss) == pytest.approx(lrs[by_log_lr])
    assert steepest_lr(lrs, loss) in (pytest.approx(10**-1.0), pytest.approx(10**-0.99))


def _fastai_valley_index(losses: list[float]) -> int:
    """fastai's ``valley`` (fastai/callback/schedule.py) as written there, the loop kept."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def test_valley_on_a_curve_with_a_known_answer() -> None:
    # 10 points rising from 3.01 to 3.10, 31 falling from 3.0 to 1.0, then a climb above all.
    losses = [3.01 + 0.01 * i for i in range(10)] + list(np.linspace(3.0, 1.0, 31)) + [3.2 + i for i in range(19)]
    lrs = list(np.geomspace(1e-6, 1.0, len(losses)))
    # The longest decreasing run: one of the first ten points and the 31 falling ones (length
    # 32, ending at index 40), taken to start at 40 - 32 = 8; a third of 32 is 10.67, so the
    # suggestion is 8 + 10 + 5 = 23 points in: the middle of the descent.
    assert _fastai_valley_index(losses) == 23
    assert valley_lr(lrs, losses) == lrs[23]


def test_valley_matches_fastai_on_noisy_curves_and_never_wraps_to_the_end() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(20, 120))
        losses = list(2 - np.tanh(np.linspace(-3, 3, n)) + rng.normal(0, 0.2, n))
        lrs = list(np.geomspace(1e-5, 1, n))
        assert valley_lr(lrs, losses) == lrs[_fastai_valley_index(losses)]
    # Two falling points: fastai's arithmetic gives index -1, the last point; the rule means the first.
    assert _fastai_valley_index([2.0, 1.0]) == -1
    assert valley_lr([0.01, 0.1], [2.0, 1.0]) == 0.01


def test_minimum_over_10_and_the_trimmed_window() -> None:
    lrs = list(np.geomspace(1e-4, 1, 30))
    losses = list(np.linspace(2, 1, 20)) + list(np.linspace(1.1, 5, 10))
    assert minimum_over_10_lr(lrs, losses) == pytest.approx(lrs[19] / 10)
    # The rules never read the last 5 points (the explosion) nor the first skip_start.
    exploding = losses[:25] + [0.0] * 5  # a fake "minimum" inside the last five points
    assert suggest(lrs, exploding, skip_start=3).minimum_over_10 == pytest.approx(lrs[19] / 10)
    # A curve that blew up almost at once is read whole; a single point says nothing.
    assert suggest(lrs[:4], [2.0, 1.5, 3.0, math.nan], skip_start=3).minimum_over_10 == pytest.approx(lrs[1] / 10)
    assert suggest(lrs[:1], [2.0]) == Suggestions(None, None, None)


def test_the_median_over_seeds_is_taken_in_log_space() -> None:
    config = _config("sgd", seeds=(0, 1))

    def curve(seed: int, steepest: float | None) -> LRRangeCurve:
        return LRRangeCurve(seed, [], [], [], False, Suggestions(steepest, 0.5, 0.1), 0.0)

    result = LRRangeResult.from_curves(config, [curve(0, 1e-3), curve(1, 1e-1)], 0.0)
    assert result.suggestions.steepest == pytest.approx(1e-2)  # geometric mean of the middle two
    assert result.spread["steepest"] == (1e-3, 1e-1) and result.spread["valley"] == (0.5, 0.5)
    lone = LRRangeResult.from_curves(config, [curve(0, None), curve(1, 0.2)], 0.0)
    assert lone.suggestions.steepest == pytest.approx(0.2) and lone.spread["steepest"] == (0.2, 0.2)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_registry_optimizer_runs_a_short_range_test(name: str) -> None:
    config = _config(name, steps=20, seeds=(0,), lr_min=1e-5, lr_max=1.0)
    full_batch = OPTIMIZERS[name].full_batch_only
    assert (config.run_batch_size is None) == full_batch and config.run_config(0).batch_size == config.run_batch_size
    result = run_lr_range(config)
    curve = result.curves[0]
    assert 2 <= len(curve.lrs) <= 20 and curve.lrs[0] == pytest.approx(1e-5)
    assert all(math.isfinite(v) for v in curve.smoothed[:-1])
    for lr in result.suggestions.as_dict().values():
        assert lr is not None and 1e-6 <= lr <= 1.0


def test_bad_configs_name_the_field() -> None:
    with pytest.raises(ConfigError, match="lr_min: must be below lr_max"):
        _config(lr_min=1.0, lr_max=0.1)
    with pytest.raises(ConfigError, match="lr_max: must be at least 10x lr_min"):
        _config(lr_min=0.1, lr_max=0.5)
    with pytest.raises(ConfigError, match="steps"):
        _config(steps=5)
    with pytest.raises(ConfigError, match="seeds: repeated seed"):
        _config(seeds="0,0")
    with pytest.raises(ConfigError, match="precision"):
        _config("lbfgs", precision="fp16")


def test_a_setup_becomes_a_range_test_and_its_flat_form_reads_back() -> None:
    setup = TrainingSetup.make(data={"name": "wine"}, batch_size=32, epochs=7)
    config = LRRangeConfig.from_setup(setup, OptimizerConfig.make(name="adam", lr=0.3), steps=50)
    assert config.data.name == "wine" and config.batch_size == 32 and config.steps == 50
    assert config.optimizer.lr == OPTIMIZERS["adam"].default_lr  # the test sets every rate itself
    flat = config.to_dict()
    assert "epochs" not in flat and "schedule" not in flat and "optimizer.lr" not in flat
    assert LRRangeConfig.from_dict(flat).to_dict() == flat


def test_the_figure_draws_each_seed_and_marks_the_suggestions(sgd_result: LRRangeResult) -> None:
    data = lr_range_data(sgd_result)
    assert [line.seed for line in data.lines] == [0, 1, 2]
    assert [m.name for m in data.marks] == list(SUGGESTIONS)
    valley = data.marks[1]
    assert valley.lr == sgd_result.suggestions.valley
    assert valley.label == f"valley {float(f'{valley.lr:.3g}'):g}"
    assert (valley.low, valley.high) == sgd_result.spread["valley"]
    # The explosion is clipped: the axis shows the untrained loss and the descent, not the blow-up.
    top = data.y_range[1]
    assert max(c.smoothed[0] for c in sgd_result.curves) < top < max(max(c.smoothed) for c in sgd_result.curves)
    assert data.y_range[0] < min(min(c.smoothed) for c in sgd_result.curves)

    fig = lr_range_figure(sgd_result)
    names = [t.name for t in fig.data]
    assert {"seed 0", "seed 1", "seed 2", "seed 0 raw loss", valley.label} <= set(names)
    raw = next(t for t in fig.data if t.name == "seed 0 raw loss")
    assert "0.25" in raw.line.color  # faint
    marker = next(t for t in fig.data if t.name == valley.label)
    assert list(marker.x) == [valley.lr, valley.lr] and marker.line.dash == "dash"
    assert fig.layout.xaxis.type == "log" and tuple(fig.layout.yaxis.range) == data.y_range
    assert fig.layout.title.text == "LR range test: SGD (seeds 0,1,2)"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlopt_core", *args], capture_output=True, text=True, timeout=240)


def test_cli_prints_the_suggestions_and_every_curve_as_json() -> None:
    out = _cli("lr-range", "--dataset", "digits", "--model", "mlp", "--optimizer", "sgd", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result["suggestions"]) == {"steepest", "valley", "minimum_over_10"}
    assert [s["seed"] for s in result["seeds"]] == [0, 1, 2]
    for name, lr in result["suggestions"].items():
        per_seed = sorted(s["suggestions"][name] for s in result["seeds"])
        assert lr == pytest.approx(per_seed[1]) and result["spread"][name] == [per_seed[0], per_seed[-1]]
    curve = result["seeds"][0]["curve"]
    assert len(curve["lr"]) == len(curve["loss"]) == len(curve["smoothed"]) == result["seeds"][0]["steps"]
    assert result["config"]["optimizer"] == "sgd" and result["config"]["steps"] == 200
    assert result["elapsed_s"] > 0


def test_cli_text_summary_help_and_bad_input() -> None:
    out = run_main("lr-range", "--optimizer", "adam", "--seeds", "0,1", "--steps", "80", "--lr-min", "1e-6", "--lr-max", "1")
    assert out.returncode == 0, out.stderr
    assert "LR range test of Adam on digits (mlp): 80 steps from lr 1e-06 to 1, seeds 0,1" in out.stdout
    for label in ("steepest slope", "valley", "minimum / 10", "seed 0:", "seed 1:"):
        assert label in out.stdout
    bad = run_main("lr-range", "--optimizer", "sgd", "--lr-min", "1", "--lr-max", "0.1")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: lr_min: must be below lr_max, got 1 >= 0.1"
    assert run_main("lr-range", "--optimizer", "nosuch").returncode == 2
    usage = run_main("lr-range", "--help").stdout
    for option in ("--optimizer", "--seeds", "--steps", "--lr-min", "--lr-max", "--json", "--batch-size"):
        assert option in usage
    assert "--epochs" not in usage and "--schedule" not in usage  # the test sets every rate itself


def test_the_range_test_trains_with_the_setups_augmentation() -> None:
    plain = run_lr_range(_config("sgd", seeds=(0,), steps=40)).curves[0].losses
    noisy = run_lr_range(_config("sgd", seeds=(0,), steps=40, augment=[{"name": "noise", "params": {"std": 2.0}}]))
    assert noisy.curves[0].losses != plain
