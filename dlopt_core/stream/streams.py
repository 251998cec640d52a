"""Drifting streams as registry entries: a fixed-length sample order with its true drift regions.

Each entry makes its arrays from a seed (the same seed, the same stream, sample for sample) and
says where its concept changes, in samples: a region ``(start, end)`` where the old concept gives
way to the new one (``start == end``: abrupt). Two kinds of entries:

- drifting versions of the bundled sets (rotating moons, a label swap on the digits, a gradual
  mean shift on the breast-cancer features), drawn from :data:`dlopt_core.catalog.datasets.DATASETS`;
- River's synthetic streams (:mod:`river.datasets.synth`): SEA with concept changes, a hyperplane
  that rotates for a while, and a ``ConceptDriftStream`` joining two hyperplanes at a chosen
  position and width.

Inputs are standardized with the mean and spread of the samples before the first drift (what
a learner could have known then), so a drift in the inputs stays visible after scaling.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from river.datasets import synth

from dlopt_core.catalog.datasets import DATASETS
from dlopt_core.catalog.hyperparams import lookup

Region = tuple[int, int]  # (start, end), in samples or steps; start == end for an abrupt change
Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class StreamSpec:
    """A named drifting stream: how to make it from a seed, its length and its true drift regions."""

    name: str
    label: str
    make: Callable[[int], Arrays]
    n_samples: int
    drifts: tuple[Region, ...]  # in samples, in order
    n_classes: int
    source: str  # "bundled" (a drifting version of a bundled set) or "river"
    description: str = ""


@dataclass(frozen=True)
class Stream:
    """A made stream: standardized inputs, labels, and its true drift regions in samples."""

    name: str
    x: torch.Tensor  # (n_samples, n_features) float32
    y: torch.Tensor  # (n_samples,) int64
    drifts: tuple[Region, ...]
    n_classes: int

    @property
    def n_samples(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])

    def n_steps(self, batch_size: int) -> int:
        """Mini-batches in the stream (a last, partial batch is dropped: every step has ``batch_size`` rows)."""
        return self.n_samples // batch_size

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The stream in arrival order, ``batch_size`` rows at a time."""
        for step in range(self.n_steps(batch_size)):
            rows = slice(step * batch_size, (step + 1) * batch_size)
            yield self.x[rows], self.y[rows]

    def drift_steps(self, batch_size: int) -> tuple[Region, ...]:
        """The drift regions in steps: the batches that hold a region's first and last sample."""
        return tuple((start // batch_size, max(start, end - 1) // batch_size) for start, end in self.drifts)


def _river(gen: Iterator[tuple[dict, object]], n: int) -> Arrays:
    rows = list(itertools.islice(gen, n))
    x = np.array([[v for _, v in sorted(features.items())] for features, _ in rows], dtype=np.float64)
    y = np.array([int(label) for _, label in rows], dtype=np.int64)
    return x, y


def _drawn(name: str, n: int, rng: np.random.Generator) -> Arrays:
    """``n`` rows of bundled set ``name`` drawn with replacement, in a seeded order."""
    x, y = DATASETS[name].make({})
    rows = rng.integers(0, len(y), n)
    return np.asarray(x, dtype=np.float64)[rows], np.asarray(y, dtype=np.int64)[rows]


def _ramp(n: int, region: Region) -> np.ndarray:
    """0 before the region, 1 after it, linear inside: how far sample ``i`` has drifted."""
    start, end = region
    t = np.arange(n, dtype=np.float64)
    return np.clip((t - start) / max(end - start, 1), 0.0, 1.0)


# -- drifting versions of the bundled sets --

MOONS_N, MOONS_DRIFT = 4000, (1600, 2400)


def _rotating_moons(seed: int) -> Arrays:
    x, y = DATASETS["moons"].make({"n_samples": MOONS_N, "noise": 0.15, "seed": seed})
    rng = np.random.default_rng(seed)
    order = rng.permutation(MOONS_N)
    x, y = x[order], y[order]
    angle = _ramp(MOONS_N, MOONS_DRIFT) * (math.pi / 2)  # a quarter turn over the region
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * x[:, 0] - s * x[:, 1], s * x[:, 0] + c * x[:, 1]], axis=1), y


SWAP_N, SWAP_AT = 4000, 2000


def _digits_swap(seed: int) -> Arrays:
    x, y = _drawn("digits", SWAP_N, np.random.default_rng(seed))
    swapped = y ^ 1  # 0<->1, 2<->3, ...: every class's label changes at once
    return x, np.where(np.arange(SWAP_N) >= SWAP_AT, swapped, y)


SHIFT_N, SHIFT_DRIFT = 4000, (1500, 2500)


def _cancer_shift(seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    x, y = _drawn("breast_cancer", SHIFT_N, rng)
    # Each feature moves by one of its own standard deviations, up or down (a fixed direction).
    direction = rng.choice([-1.0, 1.0], size=x.shape[1]) * x.std(axis=0)
    return x + _ramp(SHIFT_N, SHIFT_DRIFT)[:, None] * direction, y


# -- River's synthetic streams --

SEA_N, SEA_AT = 4500, (1500, 3000)


def _sea(seed: int) -> Arrays:
    # SEA's concepts are thresholds on x0 + x1 (8, 9, 7, 9.5 by variant): 8 -> 9.5 -> 7 are the largest jumps.
    parts = [_river(iter(synth.SEA(variant=v, noise=0.05, seed=seed + i)), SEA_AT[0])
             for i, v in enumerate((0, 3, 2))]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


HYPER_N, HYPER_DRIFT = 4000, (1500, 2500)


def _rotating_hyperplane(seed: int) -> Arrays:
    gen = synth.Hyperplane(seed=seed, n_features=4, n_drift_features=2, mag_change=0.0, sigma=0.0,
                           noise_percentage=0.05)
    samples = iter(gen)
    start, end = HYPER_DRIFT
    before = _river(samples, start)
    gen.mag_change = 0.002  # the generator reads it at every sample: it rotates for the region only
    during = _river(samples, end - start)
    gen.mag_change = 0.0
    after = _river(samples, HYPER_N - end)
    parts = (before, during, after)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


CDS_N, CDS_POSITION, CDS_WIDTH = 4000, 2000, 400


def _concept_drift(seed: int) -> Arrays:
    stream = synth.ConceptDriftStream(
        stream=synth.Hyperplane(seed=seed, n_features=4, noise_percentage=0.05),
        drift_stream=synth.Hyperplane(seed=seed + 10_000, n_features=4, noise_percentage=0.05),
        position=CDS_POSITION, width=CDS_WIDTH, seed=seed,
    )
    return _river(iter(stream), CDS_N)


STREAMS: dict[str, StreamSpec] = {
    spec.name: spec
    for spec in (
        StreamSpec(
            "sea", "SEA (concept changes)", _sea, SEA_N, ((1500, 1500), (3000, 3000)), 2, "river",
            description="River's SEA: the label is x0 + x1 above a threshold, which jumps 8 -> 9.5 -> 7 "
            "(abrupt, twice); 5% label noise.",
        ),
        StreamSpec(
            "hyperplane", "Rotating hyperplane", _rotating_hyperplane, HYPER_N, (HYPER_DRIFT,), 2, "river",
            description="River's Hyperplane in 4-D: still, then rotating for 1,000 samples, then still again; "
            "5% label noise.",
        ),
        StreamSpec(
            "concept_drift", "Concept drift stream", _concept_drift, CDS_N,
            ((CDS_POSITION - CDS_WIDTH // 2, CDS_POSITION + CDS_WIDTH // 2),), 2, "river",
            description="River's ConceptDriftStream joining two unrelated hyperplanes: a sigmoid switch centred "
            f"at sample {CDS_POSITION}, {CDS_WIDTH} samples wide.",
        ),
        StreamSpec(
            "rotating_moons", "Rotating moons", _rotating_moons, MOONS_N, (MOONS_DRIFT,), 2, "bundled",
            description="The two moons, turned a quarter turn over samples 1,600-2,400 (gradual).",
        ),
        StreamSpec(
            "digits_swap", "Digits, labels swapped", _digits_swap, SWAP_N, ((SWAP_AT, SWAP_AT),), 10, "bundled",
            description="The digits drawn with replacement; at sample 2,000 every label swaps with its pair "
            "(0<->1, 2<->3, ...): the inputs stay, the concept changes.",
        ),
        StreamSpec(
            "cancer_shift", "Breast cancer, mean shift", _cancer_shift, SHIFT_N, (SHIFT_DRIFT,), 2, "bundled",
            description="The breast-cancer rows drawn with replacement; over samples 1,500-2,500 every feature "
            "moves by one of its standard deviations (gradual covariate shift).",
        ),
    )
}


def get_stream_spec(name: str) -> StreamSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(STREAMS, name, kind="stream")


def make_stream(name: str, seed: int) -> Stream:
    """Stream ``name`` made from ``seed``: the same seed gives the same samples in the same order."""
    spec = get_stream_spec(name)
    x, y = spec.make(seed)
    first = spec.drifts[0][0] if spec.drifts else len(y)
    mean, sd = x[:first].mean(axis=0), x[:first].std(axis=0)
    x = (x - mean) / np.where(sd > 0, sd, 1.0)
    return Stream(name, torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64),
                  spec.drifts, spec.n_classes)
