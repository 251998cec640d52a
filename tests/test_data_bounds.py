"""Data sets stay within the limits of a shared server, and their sizes are known up front."""

import dataclasses
import threading

import numpy as np
import pytest
import torch

from dlopt_core.catalog.datasets import (
    DATASETS, MAX_VALUES, SPLIT_CACHE, ArrayCache, check_options, load_dataset, split_sizes,
)

CPU = torch.device("cpu")
GENERATED = [n for n, s in DATASETS.items() if s.n_samples is None]


def _real_sizes(name: str, options: dict, val_fraction: float) -> tuple[int, int]:
    data = load_dataset(name, options, val_fraction=val_fraction, split_seed=0, device=CPU)
    return len(data.x_train), len(data.x_val)


@pytest.mark.parametrize("val_fraction", [0.2, 0.5, 0.01])
@pytest.mark.parametrize("name", list(DATASETS))
def test_split_sizes_match_the_real_split_without_making_the_data(name: str, val_fraction: float) -> None:
    sizes = [{}] if DATASETS[name].n_samples is not None else [{"n_samples": n} for n in (20, 21, 101, 1000, 1001)]
    for options in sizes:
        assert split_sizes(name, options, val_fraction) == _real_sizes(name, options, val_fraction), options


@pytest.mark.parametrize("name", GENERATED)
def test_a_generated_set_has_exactly_n_samples_rows_odd_or_even(name: str) -> None:
    for n in (20, 21, 333):
        x, y = DATASETS[name].make(check_options(name, {"n_samples": n}))
        assert len(x) == len(y) == n


def test_split_sizes_do_not_make_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(options: dict) -> None:
        raise AssertionError("data was made")

    for name, spec in DATASETS.items():
        monkeypatch.setitem(DATASETS, name, dataclasses.replace(spec, make=refuse))
    assert split_sizes("digits", {}, 0.2) == (1438, 359)
    assert split_sizes("linear", {"n_samples": 1001}, 0.2) == (801, 200)


@pytest.mark.parametrize("name", GENERATED)
def test_a_generated_set_at_its_largest_fits_the_value_limit_or_is_refused_by_name(name: str) -> None:
    spec = DATASETS[name]
    largest = {p.name: int(p.high) for p in spec.hyperparams if p.name in ("n_samples", "n_features")}
    values = largest["n_samples"] * largest.get("n_features", 2)
    if values <= MAX_VALUES:
        check_options(name, largest)
        return
    with pytest.raises(ValueError) as err:
        check_options(name, largest)
    assert str(err.value) == (
        f"dataset.n_samples x dataset.n_features: {largest['n_samples']} x {largest['n_features']} = "
        f"{values:,} values is over the limit of {MAX_VALUES:,}"
    )


@pytest.mark.parametrize("name", ["linear", "ill_conditioned"])
def test_the_value_limit_is_exact(name: str) -> None:
    check_options(name, {"n_samples": 200_000, "n_features": 10})  # 2,000,000: allowed
    with pytest.raises(ValueError, match=r"^dataset\.n_samples x dataset\.n_features: 200000 x 11 = 2,200,000"):
        load_dataset(name, {"n_samples": 200_000, "n_features": 11}, val_fraction=0.2, split_seed=0, device=CPU)


def _arrays(n_bytes: int) -> tuple[np.ndarray, ...]:
    return (np.zeros(n_bytes // 8), np.zeros(0))


def test_array_cache_evicts_the_least_recently_used_by_bytes() -> None:
    cache = ArrayCache(max_bytes=1000)
    cache.put("a", _arrays(400))
    cache.put("b", _arrays(400))
    assert cache.nbytes == 800
    assert cache.get("a") is not None  # now "b" is the least recently used
    cache.put("c", _arrays(400))
    assert "b" not in cache and "a" in cache and "c" in cache and cache.nbytes == 800
    cache.put("d", _arrays(1000))  # exactly the budget: everything else goes
    assert cache.nbytes == 1000 and "d" in cache and "a" not in cache and "c" not in cache
    cache.put("e", _arrays(1008))  # larger than the budget: not kept, nothing else dropped
    assert "e" not in cache and "d" in cache and cache.nbytes == 1000
    cache.put("d", _arrays(200))  # replacing a key frees its old bytes
    assert cache.nbytes == 200


def test_array_cache_keeps_its_byte_count_under_concurrent_use() -> None:
    cache = ArrayCache(max_bytes=10_000)

    def work(worker: int) -> None:
        for i in range(300):
            cache.put((worker, i % 7), _arrays(8 * (1 + (i * worker) % 300)))
            cache.get((worker, (i + 3) % 7))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = sum(a.nbytes for key in list(cache._items) for a in cache.get(key))
    assert cache.nbytes == held <= 10_000


def test_loaded_data_is_cached_read_only_and_copied_onto_the_device() -> None:
    options = check_options("moons", {"n_samples": 123, "seed": 7})
    data = load_dataset("moons", options, val_fraction=0.2, split_seed=3, device=CPU)
    key = ("moons", tuple(sorted(options.items())), 0.2, 3)
    cached = SPLIT_CACHE.get(key)
    assert cached is not None and not any(a.flags.writeable for a in cached)
    data.y_train[:] = 0  # a run may do anything with its tensors; the cache keeps its data
    assert load_dataset("moons", options, val_fraction=0.2, split_seed=3, device=CPU).y_train.sum() > 0
