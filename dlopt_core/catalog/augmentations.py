"""Data augmentation and mixing: one registry entry each, applied per batch on the device.

Each entry makes a batch transform for the step seam (:class:`~dlopt_core.engine.step.StepHooks`):
``(x, y, generator) -> (x, y)``. Every random draw comes from the run's transform generator,
so a run is the same with the same seed, and augmenting never shifts the data order, the
initial weights or dropout. Images arrive flattened (the data sets keep ``image_shape``);
geometric transforms use kornia's differentiable geometry (``warp_affine``, ``hflip``) with
parameters drawn here rather than kornia's augmentation modules, which draw from the global
RNG. Uncovered pixels take each image's background (its darkest value). Brightness and contrast are written out: the pixels are standardised, and kornia's
colour jitter clamps to [0, 1].

Mixup and CutMix return soft targets (class probabilities), which cross-entropy takes as
they are; for regression mixup mixes the targets linearly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.transform import hflip

from dlopt_core.catalog.hyperparams import HyperParam, lookup

BatchTransform = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
Needs = Literal["images", "any", "classification"]


@dataclass(frozen=True)
class BatchInfo:
    """What a transform needs to know about the data it transforms."""

    image_shape: tuple[int, int, int] | None
    n_classes: int  # 0 for regression


@dataclass(frozen=True)
class AugmentationSpec:
    """A named augmentation: its hyperparameters, what data it needs and how to build it."""

    name: str
    label: str
    make: Callable[[Mapping[str, Any], BatchInfo], BatchTransform]
    hyperparams: tuple[HyperParam, ...] = ()
    needs: Needs = "any"
    mixes: bool = False  # changes the targets (soft labels)
    description: str = ""


def _uniform(n: int, low: float, high: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return (low + (high - low) * torch.rand(n, generator=g)).to(device)


def _as_images(x: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    assert info.image_shape is not None
    return x.reshape(x.shape[0], *info.image_shape)


def _background(images: torch.Tensor) -> torch.Tensor:
    """Each image's darkest value, (n, 1, 1, 1): what uncovered pixels are filled with (the blank
    paper of a digit, where the standardised 0 would be a grey smear)."""
    return images.amin(dim=(1, 2, 3), keepdim=True)


def _flip(p: Mapping[str, Any], info: BatchInfo) -> BatchTransform:
    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = _as_images(x, info)
        chosen = (torch.rand(x.shape[0], generator=g) < p["p"]).to(x.device)
        flipped = torch.where(chosen[:, None, None, None], hflip(images), images)
        return flipped.reshape(x.shape), y

    return transform


def _affine(p: Mapping[str, Any], info: BatchInfo) -> BatchTransform:
    assert info.image_shape is not None
    _, h, w = info.image_shape
    # Every output pixel as (x, y, 1), in pixels from the image centre: one (3, h*w) matrix per run.
    rows, cols = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    pixels = np.stack((cols.ravel(), rows.ravel(), np.ones(h * w)))
    unit_x, unit_y = 2 / max(w - 1, 1), 2 / max(h - 1, 1)  # pixels -> grid_sample's [-1, 1]
    largest = np.array([math.radians(p["degrees"]), p["translate"] * w, p["translate"] * h])

    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = _as_images(x, info)
        n = images.shape[0]
        angle, dx, dy = ((torch.rand(n, 3, generator=g, dtype=torch.float64).numpy() * 2 - 1) * largest).T
        cos, sin = np.cos(angle), np.sin(angle)
        # Where each output pixel comes from: the inverse of "rotate about the centre, then
        # shift", R^T (p - t), as one (2n, 3) @ (3, h*w) product, in numpy. F.affine_grid (which
        # kornia's warp_affine calls after inverting a 3x3 per image) took 4x the whole training
        # step of the digits MLP at batch 256, and the same product in torch twice this.
        inverse = np.stack((
            cos * unit_x, sin * unit_x, -(cos * dx + sin * dy) * unit_x,
            -sin * unit_y, cos * unit_y, (sin * dx - cos * dy) * unit_y,
        ), axis=1).reshape(2 * n, 3)
        grid = torch.from_numpy(inverse @ pixels).reshape(n, 2, h, w).permute(0, 2, 3, 1)
        fill = _background(images)
        moved = F.grid_sample(images - fill, grid.to(x.device, images.dtype), padding_mode="zeros", align_corners=True)
        return (moved + fill).reshape(x.shape), y

    return transform


def _crop(p: Mapping[str, Any], info: BatchInfo) -> BatchTransform:
    assert info.image_shape is not None
    pad = int(p["padding"])
    c, h, w = info.image_shape
    wide = w + 2 * pad
    # The flat offsets of an h x w window in the padded frame: each crop is one gather from
    # its corner (two gathers over expanded indices cost a third of a training step).
    window = (torch.arange(h)[:, None] * wide + torch.arange(w)).flatten()

    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = _as_images(x, info)
        n = images.shape[0]
        fill = _background(images)
        padded = F.pad(images - fill, (pad, pad, pad, pad)).reshape(n, c, -1)
        # Each image's window: its top-left corner anywhere in the padded frame.
        corner = torch.randint(0, 2 * pad + 1, (n, 2), generator=g)
        index = (corner[:, 0, None] * wide + corner[:, 1, None] + window).to(x.device)
        cropped = padded.gather(2, index[:, None, :].expand(n, c, h * w))
        return (cropped.reshape(images.shape) + fill).reshape(x.shape), y

    return transform


def _erase(p: Mapping[str, Any], info: BatchInfo) -> BatchTransform:
    assert info.image_shape is not None
    _, h, w = info.image_shape
    rows, cols = np.arange(h), np.arange(w)
    low, high = math.log(0.3), math.log(3.3)  # the box's aspect ratio, log-uniform

    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = _as_images(x, info)
        n = images.shape[0]
        # The boxes in numpy, from the run's generator: a dozen ops on a few hundred numbers
        # cost microseconds each in torch and took 60 % of the digits MLP's step.
        chosen, area, aspect, top, left = torch.rand(5, n, generator=g, dtype=torch.float64).numpy()
        area = (0.02 + (p["max_area"] - 0.02) * area) * (h * w)
        aspect = np.exp(low + (high - low) * aspect)
        eh = np.clip(np.round(np.sqrt(area * aspect)), 1, h)
        ew = np.clip(np.round(np.sqrt(area / aspect)), 1, w)
        top, left = np.floor(top * (h - eh + 1)), np.floor(left * (w - ew + 1))
        eh = eh * (chosen < p["p"])  # an image not chosen gets an empty box
        down, across = rows - top[:, None], cols - left[:, None]
        inside = ((down >= 0) & (down < eh[:, None]))[:, :, None] & ((across >= 0) & (across < ew[:, None]))[:, None, :]
        erased = torch.where(torch.from_numpy(inside)[:, None].to(x.device), _background(images), images)
        return erased.reshape(x.shape), y

    return transform


def _brightness(p: Mapping[str, Any], info: BatchInfo) -> BatchTransform:
    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        contrast = _uniform(n, 1 - p["contrast"], 1 + p["contrast"], g, x.device)[:, None]
        shift = _uniform(n, -p["brightness"], p["brightness"], g, x.device)[:, None]
        flat = x.reshape(n, -1)
        mean = flat.mean(dim=1, keepdim=True)
        return ((flat - mean) * contrast + mean + shift).reshape(x.shape), y

    return transform


def _noise(p: Mapping[str, Any], info: BatchInfo) -> BatchTransform:
    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return x + p["std"] * torch.randn(x.shape, generator=g).to(x.device, x.dtype), y

    return transform


def _dropout(p: Mapping[str, Any], info: BatchInfo) -> BatchTransform:
    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        keep = (torch.rand(x.shape, generator=g) >= p["p"]).to(x.device, x.dtype)
        return x * keep / (1 - p["p"]), y  # rescaled as nn.Dropout is: the same mean input

    return transform


def soft_targets(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Class indices as one-hot probabilities; soft targets (already 2-D) as they are."""
    return y if y.dim() == 2 else F.one_hot(y, n_classes).to(torch.float32)


def _blend_targets(y: torch.Tensor, perm: torch.Tensor, weight: float, n_classes: int) -> torch.Tensor:
    """``weight`` of each target and ``1 - weight`` of its partner's: numbers (regression) or
    class probabilities."""
    if n_classes == 0 or y.dim() == 2:
        return torch.lerp(y.index_select(0, perm), y, weight)
    # Two scatters into zeros: a one-hot of the batch and of its partners would be two more passes.
    soft = torch.zeros(y.shape[0], n_classes, device=y.device)
    soft.scatter_(1, y[:, None], weight)
    return soft.scatter_add_(1, y.index_select(0, perm)[:, None], soft.new_full((y.shape[0], 1), 1 - weight))


def mix(x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup: ``lam`` of each sample and ``1 - lam`` of its partner ``perm``; targets mixed the same way."""
    # lerp returns its end exactly at weight 1: lam = 1 leaves the batch as it was.
    # index_select, not x[perm]: advanced indexing took 7x as long on a digits batch.
    return torch.lerp(x.index_select(0, perm), x, lam), _blend_targets(y, perm, lam, n_classes)


def _beta(alpha: float, g: torch.Generator) -> float:
    # torch's Beta draws from the global RNG; Python's, seeded from the run's generator, does
    # not (and costs a few microseconds where a numpy Generator costs ~50 per step).
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    return random.Random(seed).betavariate(alpha, alpha)


def _mixup(p: Mapping[str, Any], info: BatchInfo) -> BatchTransform:
    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        lam = _beta(p["alpha"], g)
        perm = torch.randperm(x.shape[0], generator=g).to(x.device)
        return mix(x, y, lam, perm, info.n_classes)

    return transform


def _cutmix(p: Mapping[str, Any], info: BatchInfo) -> BatchTransform:
    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = _as_images(x, info)
        n, _, h, w = images.shape
        lam = _beta(p["alpha"], g)
        perm = torch.randperm(n, generator=g).to(x.device)
        cut = math.sqrt(1 - lam)
        ch, cw = round(h * cut), round(w * cut)
        cy, cx = int(torch.randint(0, h, (1,), generator=g)), int(torch.randint(0, w, (1,), generator=g))
        top, bottom = max(cy - ch // 2, 0), min(cy + (ch - ch // 2), h)
        left, right = max(cx - cw // 2, 0), min(cx + (cw - cw // 2), w)
        box = torch.zeros(h, w, dtype=torch.bool, device=x.device)
        box[top:bottom, left:right] = True
        pasted = torch.where(box, images.index_select(0, perm), images)
        # The label weight is the share of pixels really kept (the box is clipped at the border).
        kept = 1 - (bottom - top) * (right - left) / (h * w)
        return pasted.reshape(x.shape), _blend_targets(y, perm, kept, info.n_classes)

    return transform


_P = HyperParam("p", 0.5, 0.0, 1.0, help="probability of applying it to each sample")

AUGMENTATIONS: dict[str, AugmentationSpec] = {
    s.name: s
    for s in (
        AugmentationSpec(
            "flip", "Horizontal flip", _flip, (_P,), "images",
            description="Mirror images left to right (a cat is a cat either way; a digit may not be).",
        ),
        AugmentationSpec(
            "affine", "Small rotation / shift", _affine,
            (
                HyperParam("degrees", 10.0, 0.0, 45.0, help="largest rotation either way, in degrees"),
                HyperParam("translate", 0.1, 0.0, 0.5, help="largest shift, as a share of the image size"),
            ),
            "images", description="Rotate and shift each image a little: the model must not rely on exact pixel positions.",
        ),
        AugmentationSpec(
            "crop", "Random crop with padding", _crop,
            (HyperParam("padding", 1, 1, 8, kind="int", help="pixels of zero padding on each side before cropping back"),),
            "images", description="Pad, then crop back to size at a random offset: shifts of up to `padding` pixels.",
        ),
        AugmentationSpec(
            "erase", "Random erasing", _erase,
            (_P, HyperParam("max_area", 0.2, 0.02, 0.5, help="largest share of the image erased")),
            "images", description="Blank out a random rectangle: the model must use more than one part of the image.",
        ),
        AugmentationSpec(
            "brightness", "Brightness / contrast", _brightness,
            (
                HyperParam("brightness", 0.2, 0.0, 2.0, help="largest shift of the (standardised) pixels"),
                HyperParam("contrast", 0.2, 0.0, 0.9, help="largest relative change of the contrast"),
            ),
            "images", description="Lighten, darken and change the contrast of each image.",
        ),
        AugmentationSpec(
            "noise", "Gaussian noise", _noise,
            (HyperParam("std", 0.1, 0.0, 5.0, help="standard deviation of the noise added to each (standardised) input"),),
            "any", description="Add Gaussian noise to every input: images and tabular features alike.",
        ),
        AugmentationSpec(
            "dropout", "Feature dropout", _dropout,
            (HyperParam("p", 0.1, 0.0, 0.9, help="probability of zeroing each input feature"),),
            "any", description="Zero random input features (rescaling the rest): no single feature can be relied on.",
        ),
        AugmentationSpec(
            "mixup", "Mixup", _mixup,
            (HyperParam("alpha", 0.2, 0.01, 10.0, log=True, help="Beta(alpha, alpha) draws the mixing weight"),),
            "any", mixes=True,
            description="Train on blends of two samples with their labels blended the same way (soft targets).",
        ),
        AugmentationSpec(
            "cutmix", "CutMix", _cutmix,
            (HyperParam("alpha", 1.0, 0.01, 10.0, log=True, help="Beta(alpha, alpha) draws the share of the image kept"),),
            "images", mixes=True,
            description="Paste a rectangle from another image; the labels are weighted by the area of each.",
        ),
    )
}


def get_augmentation(name: str) -> AugmentationSpec:
    """Look up a registry entry; the error lists what is allowed."""
    return lookup(AUGMENTATIONS, name, kind="augment")


def check_fits(name: str, *, images: bool, classification: bool) -> str | None:
    """Why augmentation ``name`` cannot run on this data (``None``: it can)."""
    spec = get_augmentation(name)
    if spec.needs == "images" and not images:
        fits = ", ".join(n for n, s in AUGMENTATIONS.items() if s.needs != "images")
        return f"augment: {name!r} needs image data (for other data: {fits})"
    if spec.name == "cutmix" and not classification:
        return "augment: 'cutmix' mixes class labels; this data set is a regression"
    return None


def compose(transforms: list[BatchTransform]) -> BatchTransform | None:
    """One transform applying ``transforms`` in order (``None`` for none)."""
    if not transforms:
        return None
    if len(transforms) == 1:
        return transforms[0]

    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        for t in transforms:
            x, y = t(x, y, g)
        return x, y

    return transform
