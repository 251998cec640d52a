"""Demo presets: links that open a page with a config that shows one lesson.

Data only: each link is a page and the query its URL carries (the page's own flat config keys,
as a copied link would have them). The home page draws them; a test opens every one.
"""

from __future__ import annotations

from dataclasses import dataclass

COMPARE = "pages/1_Compare_optimizers.py"
LANDSCAPES = "pages/2_Loss_landscapes.py"

Query = dict[str, str | list[str]]


@dataclass(frozen=True)
class PresetLink:
    label: str
    page: str
    query: Query


@dataclass(frozen=True)
class Preset:
    title: str
    lesson: str
    links: tuple[PresetLink, ...]


_LINEAR = {"dataset": "linear", "model": "linear", "epochs": "20", "optimizer": ["sgd:lr=0.05"], "seeds": "0"}

PRESETS: tuple[Preset, ...] = (
    Preset(
        "Full-batch GD vs SGD vs mini-batch",
        "One optimizer, three batch sizes on least squares: full batch descends smoothly, one sample "
        "a step is noisy but gets far per epoch, mini-batches sit between. Run each, then overlay them on "
        "the Runs page aligned by epoch or by seconds.",
        (
            PresetLink("full batch", COMPARE, {**_LINEAR, "batch_size": "full"}),
            PresetLink("SGD (batch 1)", COMPARE, {**_LINEAR, "batch_size": "1", "epochs": "5"}),
            PresetLink("mini-batch 32", COMPARE, {**_LINEAR, "batch_size": "32"}),
        ),
    ),
    Preset(
        "Momentum on an ill-conditioned problem",
        "Least squares whose Hessian has condition number 100, full batch, the same small lr: plain "
        "gradient descent crawls along the flat direction; momentum and Nesterov reach the optimum.",
        (PresetLink("open", COMPARE, {
            "dataset": "ill_conditioned", "dataset.condition_number": "100.0", "model": "linear",
            "batch_size": "full", "epochs": "100", "seeds": "0", "log_y": "true",
            "optimizer": ["sgd:lr=0.001", "momentum:lr=0.001", "nesterov:lr=0.001"],
        }),),
    ),
    Preset(
        "Adam vs SGD",
        "A digits MLP over three seeds, each optimizer at a learning rate that suits it: the bands "
        "show whether the difference is larger than the spread over seeds.",
        (PresetLink("open", COMPARE, {
            "dataset": "digits", "model": "mlp", "epochs": "20", "batch_size": "64", "seeds": "0,1,2",
            "optimizer": ["sgd:lr=0.1", "adam:lr=0.001"],
        }),),
    ),
    Preset(
        "Learning-rate schedules",
        "SGD with a step schedule that cuts the lr tenfold three times: each drop shows as a drop in "
        "the loss just after it (the lr chart under the curves has the plan and the rate used).",
        (PresetLink("open", COMPARE, {
            "dataset": "digits", "model": "mlp", "epochs": "30", "batch_size": "64", "seeds": "0",
            "schedule": "step", "schedule.drops": "3", "schedule.gamma": "0.1",
            "optimizer": ["sgd:lr=0.1", "momentum:lr=0.05"],
        }),),
    ),
    Preset(
        "Rosenbrock race",
        "Five optimizers from the same start down the curved valley of the Rosenbrock function: "
        "plain gradient descent zig-zags, momentum overshoots, the adaptive methods follow the floor.",
        (PresetLink("open", LANDSCAPES, {
            "function": "rosenbrock", "start": "-1.5,2.0", "steps": "1000", "noise": "0.0", "seed": "0",
            "optimizer": ["sgd:lr=0.001", "momentum:lr=0.001", "nesterov:lr=0.001", "adam:lr=0.05", "rmsprop:lr=0.01"],
        }),),
    ),
)
