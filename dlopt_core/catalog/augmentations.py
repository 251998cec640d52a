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

import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_affine_matrix2d, hflip, warp_affine

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
    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = _as_images(x, info)
        n, _, h, w = images.shape
        angle = _uniform(n, -p["degrees"], p["degrees"], g, x.device)
        shift = torch.stack([
            _uniform(n, -p["translate"], p["translate"], g, x.device) * w,
            _uniform(n, -p["translate"], p["translate"], g, x.device) * h,
        ], dim=1)
        center = torch.tensor([[(w - 1) / 2, (h - 1) / 2]], device=x.device).expand(n, 2)
        scale = torch.ones(n, 2, device=x.device)
        matrix = get_affine_matrix2d(shift, center, scale, angle)[:, :2]
        fill = _background(images)
        moved = warp_affine(images - fill, matrix.to(images.dtype), (h, w), padding_mode="zeros", align_corners=True)
        return (moved + fill).reshape(x.shape), y

    return transform


def _crop(p: Mapping[str, Any], info: BatchInfo) -> BatchTransform:
    pad = int(p["padding"])

    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = _as_images(x, info)
        n, c, h, w = images.shape
        fill = _background(images)
        padded = F.pad(images - fill, (pad, pad, pad, pad)) + fill
        # Each image's window: its top-left corner anywhere in the padded frame.
        top = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
        left = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
        rows = (top[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(n, c, h, w + 2 * pad)
        cropped = padded.gather(2, rows)
        cols = (left[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(n, c, h, w)
        return cropped.gather(3, cols).reshape(x.shape), y

    return transform


def _erase(p: Mapping[str, Any], info: BatchInfo) -> BatchTransform:
    def transform(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = _as_images(x, info)
        n, _, h, w = images.shape
        chosen = torch.rand(n, generator=g) < p["p"]
        area = _uniform(n, 0.02, p["max_area"], g, torch.device("cpu"))
        aspect = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), g, torch.device("cpu")))
        eh = torch.clamp((area * h * w * aspect).sqrt().round(), 1, h).long()
        ew = torch.clamp((area * h * w / aspect).sqrt().round(), 1, w).long()
        top = (torch.rand(n, generator=g) * (h - eh + 1)).long()
        left = (torch.rand(n, generator=g) * (w - ew + 1)).long()
        rows = torch.arange(h)[None, :]
        cols = torch.arange(w)[None, :]
        inside_r = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
        inside_c = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
        mask = (inside_r[:, :, None] & inside_c[:, None, :] & chosen[:, None, None]).to(x.device)
        erased = torch.where(mask[:, None], _background(images), images)
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


def mix(x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup: ``lam`` of each sample and ``1 - lam`` of its partner ``perm``; targets mixed the same way."""
    x_mixed = lam * x + (1 - lam) * x[perm]
    if n_classes == 0:  # regression: the targets are numbers
        return x_mixed, lam * y + (1 - lam) * y[perm]
    soft = soft_targets(y, n_classes)
    return x_mixed, lam * soft + (1 - lam) * soft[perm]


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
        pasted = images.clone()
        pasted[:, :, top:bottom, left:right] = images[perm][:, :, top:bottom, left:right]
        # The label weight is the share of pixels really kept (the box is clipped at the border).
        kept = 1 - (bottom - top) * (right - left) / (h * w)
        soft = soft_targets(y, info.n_classes)
        return pasted.reshape(x.shape), kept * soft + (1 - kept) * soft[perm]

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
