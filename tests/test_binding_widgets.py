"""The config binding through the widgets: for random valid settings of every page, a link put
into the widgets and read back out of them gives the same link (set_state, the form and
to_dict agree), whatever the link set and whatever it left to the page's defaults."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import ui.compare_form
import ui.compress_form
import ui.data_form
import ui.landscape_form
import ui.online_form
import ui.search_form
import ui.sweep_form
import ui.transfer_form
from apptest import open_page
from dlopt_core.config import ConfigError
from ui.binding import Binding, with_defaults

DATASETS = ["digits", "wine", "breast_cancer", "moons"]
OPTIMIZERS = ["sgd", "momentum", "adam", "rmsprop", "adagrad", "nadam"]
lrs = st.sampled_from([1e-4, 3e-4, 0.001, 0.003, 0.01, 0.05, 0.2])
setup = {
    "dataset": st.sampled_from(DATASETS),
    "model": st.sampled_from(["mlp", "linear"]),
    "epochs": st.integers(1, 40).map(str),
    "batch_size": st.sampled_from(["16", "32", "64", "128"]),
    "schedule": st.sampled_from(["constant", "cosine", "step"]),
}


def _specs(with_lr: bool) -> st.SearchStrategy[list[str]]:
    names = st.lists(st.sampled_from(OPTIMIZERS), min_size=1, max_size=3, unique=True)
    if not with_lr:
        return names
    return names.flatmap(lambda ns: st.tuples(*(lrs.map(lambda lr, n=n: f"{n}:lr={lr}") for n in ns)).map(list))


# Per page: its path, its binding, and what a link may set.
PAGES: dict[str, tuple[str, Binding[Any], dict[str, st.SearchStrategy[Any]]]] = {
    "compare": ("pages/1_Compare_optimizers.py", ui.compare_form.BINDING, {
        **setup, "optimizer": _specs(True), "seeds": st.sampled_from(["0", "0,1", "3,4,5"]),
        "engine": st.sampled_from(["auto", "sequential"]),
    }),
    "sweep": ("pages/3_LR_sensitivity.py", ui.sweep_form.BINDING, {
        **setup, "optimizer": _specs(False), "points": st.integers(2, 9).map(str),
        "lr_min": st.sampled_from(["1e-05", "0.0001"]), "lr_max": st.sampled_from(["0.1", "1.0"]),
    }),
    "search": ("pages/4_LR_search.py", ui.search_form.BINDING, {
        # No lr: the search tries its own (the page has no lr box, as the sweep's has none).
        **setup, "optimizer": _specs(False), "n_trials": st.integers(1, 30).map(str),
        "sampler": st.sampled_from(["tpe", "random", "qmc"]), "pruner": st.sampled_from(["none", "median"]),
    }),
    "compression": ("pages/7_Compression.py", ui.compress_form.BINDING, {
        **{k: v for k, v in setup.items() if k != "model"}, "methods": st.lists(
            st.sampled_from(["prune_unstructured:sparsity=0.5", "quantize_int8_weight", "fp16", "bf16"]),
            min_size=1, max_size=3, unique=True,
        ),
    }),
    "data": ("pages/5_Data.py", ui.data_form.BINDING, {
        **setup, "subset": st.sampled_from(["0.05", "0.1", "0.3", "1.0"]), "augment": st.sampled_from([["noise"], ["mixup"]]),
        "methods": st.lists(st.sampled_from(["subsample", "kmeans", "float16"]), min_size=1, max_size=3, unique=True),
    }),
    "landscape": ("pages/2_Loss_landscapes.py", ui.landscape_form.BINDING, {
        "function": st.sampled_from(["rosenbrock", "beale", "himmelblau", "saddle"]),
        "steps": st.integers(1, 300).map(str), "optimizer": _specs(True), "noise": st.sampled_from(["0.0", "0.1"]),
    }),
    "transfer": ("pages/8_Transfer_and_sharing.py", ui.transfer_form.TRANSFER, {
        "task": st.sampled_from(["digits-rotated", "digits-split", "moons-rotated"]),
        "target_fraction": st.sampled_from(["0.02", "0.2", "1.0"]), "arms": st.sampled_from(["probe,full", "scratch,lora,lp-ft"]),
        "epochs": st.integers(1, 40).map(str), "seeds": st.sampled_from(["0", "0,1"]),
        "optimizer": st.sampled_from(["adam", "sgd"]), "optimizer.lr": lrs.map(str),
        "lora_rank": st.sampled_from(["2", "8"]), "layer_decay": st.sampled_from(["0.5", "0.8"]),
    }),
    "share": ("pages/8_Transfer_and_sharing.py", ui.transfer_form.SHARE, {
        "family": st.sampled_from(["tied", "depth", "multitask"]), "combine": st.sampled_from(["equal", "pcgrad"]),
        "epochs": st.integers(1, 40).map(str), "seeds": st.sampled_from(["0", "0,1"]),
        "width": st.sampled_from(["8", "32"]), "depth": st.sampled_from(["1", "3"]),
        "optimizer": st.sampled_from(["adam", "sgd"]), "optimizer.lr": lrs.map(str),
    }),
    "stream": ("pages/9_Online_and_continual.py", ui.online_form.STREAM, {
        "stream": st.sampled_from(["sea", "rotating_moons", "cancer_shift"]),
        "learners": st.lists(st.sampled_from(["sgd:lr=0.1,policy=constant", "adam:lr=0.01,policy=reset",
                                              "sgd:lr=0.05,momentum=0.9,policy=decay"]), min_size=1, max_size=3, unique=True),
        "seeds": st.sampled_from(["0", "0,1"]), "batch_size": st.sampled_from(["10", "20", "50"]),
        "window": st.integers(1, 30).map(str), "reset_detector": st.sampled_from(["adwin", "page_hinkley", "kswin"]),
        "tolerance": st.sampled_from(["0", "25"]),
    }),
    "continual": ("pages/9_Online_and_continual.py", ui.online_form.CONTINUAL, {
        "sequence": st.sampled_from(["split-digits", "permuted-digits", "rotated-digits"]),
        "optimizer": _specs(True), "strategies": st.sampled_from(["naive", "replay,ewc", "naive,replay,ewc"]),
        "epochs": st.integers(1, 5).map(str), "seeds": st.sampled_from(["0", "0,1"]),
        "replay_size": st.sampled_from(["50", "200"]), "ewc_lambda": st.sampled_from(["10.0", "100.0"]),
    }),
}
# What a page's link always holds beside the config: the second tab of a page with two.
FIXED = {"share": {"tab": "share"}, "continual": {"tab": "continual"}}


def _same(cfg: Any) -> Any:
    """What makes two configs the same experiment: a search's bounds left to the registry and the
    same bounds written out (as its form does) search the same ranges."""
    if hasattr(cfg, "bounds"):
        return cfg.model_copy(update={"lr_min": None, "lr_max": None}), cfg.bounds()
    return cfg


def _as_url(flat: dict[str, Any]) -> dict[str, Any]:
    """A flat config as the URL holds it (every value text, lists of text)."""
    return {k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in flat.items()}


@pytest.mark.parametrize("page", list(PAGES))
def test_a_link_through_the_widgets_comes_back_unchanged(page: str) -> None:
    path, binding, fields = PAGES[page]

    # Each example opens the page (seconds): a few per page, the same ones every run, unshrunk.
    @settings(max_examples=3, deadline=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({}, optional=fields))
    def check(link: dict[str, Any]) -> None:
        try:
            expected = binding.parse(with_defaults(link, binding.default))
        except ConfigError:
            assume(False)
            return
        at = open_page(path, _as_url({**FIXED.get(page, {}), **link}))
        assert not at.exception, at.exception
        assert not any("link's settings were not valid" in w.value for w in at.warning)
        views = {v.url for v in binding.views}
        got = binding.parse({k: v for k, v in dict(at.query_params).items() if k not in views})
        assert _same(got) == _same(expected), (link, dict(at.query_params))

    check()
