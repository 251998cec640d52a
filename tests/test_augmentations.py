"""Augmentations: shapes, determinism, what each does, and their place in a run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlopt_core.catalog.augmentations import AUGMENTATIONS, BatchInfo, mix, soft_targets
from dlopt_core.catalog.datasets import load_dataset
from dlopt_core.config import RunConfig
from dlopt_core.errors import ConfigError
from dlopt_core.engine.loop import run

DIGITS = BatchInfo(image_shape=(1, 8, 8), n_classes=10)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("digits", {}, val_fraction=0.2, split_seed=0, device=torch.device("cpu"))
    return data.x_train[:32], data.y_train[:32]


def _apply(name: str, batch: tuple[torch.Tensor, torch.Tensor], seed: int = 0, **params: object):
    spec = AUGMENTATIONS[name]
    values = {p.name: params.get(p.name, p.default) for p in spec.hyperparams}
    return spec.make(values, DIGITS)(*batch, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_every_augmentation_keeps_shapes_and_dtypes_and_is_deterministic(name: str, batch) -> None:
    x, y = _apply(name, batch)
    assert x.shape == batch[0].shape and x.dtype == batch[0].dtype
    if AUGMENTATIONS[name].mixes:
        assert y.shape == (32, 10) and torch.allclose(y.sum(dim=1), torch.ones(32))
    else:
        assert torch.equal(y, batch[1])
    again = _apply(name, batch)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    other = _apply(name, batch, seed=1)
    assert not torch.equal(x, other[0]), "another seed draws other transforms"
    assert not torch.equal(x, batch[0]), "it changes the batch"


def test_a_flip_mirrors_the_chosen_images_only(batch) -> None:
    x, _ = _apply("flip", batch, p=1.0)
    images = batch[0].reshape(-1, 8, 8)
    assert torch.equal(x.reshape(-1, 8, 8), images.flip(-1))
    none, _ = _apply("flip", batch, p=0.0)
    assert torch.equal(none, batch[0])


def test_a_crop_with_padding_shifts_the_image_by_at_most_the_padding(batch) -> None:
    x, _ = _apply("crop", batch, padding=1)
    images, shifted = batch[0].reshape(-1, 8, 8), x.reshape(-1, 8, 8)
    for original, moved in zip(images, shifted):
        padded = F.pad(original, (1, 1, 1, 1), value=float(original.min()))
        assert any(torch.allclose(moved, padded[r : r + 8, c : c + 8]) for r in range(3) for c in range(3))


def test_the_affine_warp_is_kornias_rotation_about_the_centre_then_shift(batch) -> None:
    import math

    from kornia.geometry.transform import warp_affine

    # A non-square image: rotation must happen in pixels, not in the stretched [-1, 1] square.
    info = BatchInfo(image_shape=(1, 6, 10), n_classes=10)
    x = torch.rand(32, 60) + 1.0
    params = {"degrees": 30.0, "translate": 0.2}
    out, _ = AUGMENTATIONS["affine"].make(params, info)(x, batch[1], torch.Generator().manual_seed(3))
    # The same draws from the same generator: angle and shifts, each uniform in its range.
    draws = (torch.rand(32, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1) * torch.tensor(
        [math.radians(30.0), 0.2 * 10, 0.2 * 6], dtype=torch.float64)
    cos, sin = torch.cos(draws[:, 0]), torch.sin(draws[:, 0])
    cx, cy = 4.5, 2.5
    forward = torch.stack((  # source -> output pixels: rotate about the centre, then shift
        torch.stack((cos, -sin, cx - cos * cx + sin * cy + draws[:, 1]), 1),
        torch.stack((sin, cos, cy - sin * cx - cos * cy + draws[:, 2]), 1),
    ), 1).float()
    images = x.reshape(32, 1, 6, 10)
    fill = images.amin(dim=(1, 2, 3), keepdim=True)
    expected = warp_affine(images - fill, forward, (6, 10), align_corners=True) + fill
    assert torch.allclose(out.reshape(32, 1, 6, 10), expected, atol=1e-5)


def test_feature_dropout_zeroes_features_and_keeps_the_mean(batch) -> None:
    x = torch.ones(2000, 64)
    out, _ = AUGMENTATIONS["dropout"].make({"p": 0.25}, DIGITS)(x, batch[1][:1].repeat(2000), torch.Generator().manual_seed(0))
    zeroed = (out == 0).float().mean()
    assert abs(zeroed - 0.25) < 0.01 and abs(out.mean() - 1) < 0.02


def test_mixup_with_lambda_one_is_the_identity(batch) -> None:
    x, y = batch
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(0))
    mixed_x, mixed_y = mix(x, y, 1.0, perm, 10)
    assert torch.equal(mixed_x, x)
    assert torch.equal(mixed_y, soft_targets(y, 10))
    logits = torch.randn(32, 10)
    # Cross-entropy on the one-hot targets is the ordinary loss: the soft-label loss is correct.
    assert torch.allclose(F.cross_entropy(logits, mixed_y), F.cross_entropy(logits, y))


def test_mixup_blends_inputs_and_labels_with_the_same_weight(batch) -> None:
    x, y = batch
    perm = torch.arange(31, -1, -1)
    mixed_x, mixed_y = mix(x, y, 0.3, perm, 10)
    assert torch.allclose(mixed_x, 0.3 * x + 0.7 * x[perm])
    expected = 0.3 * F.one_hot(y, 10) + 0.7 * F.one_hot(y[perm], 10)
    assert torch.allclose(mixed_y, expected.float())
    # Regression: the targets are numbers, mixed the same way.
    values = torch.linspace(0, 1, 32)
    assert torch.allclose(mix(x, values, 0.3, perm, 0)[1], 0.3 * values + 0.7 * values[perm])


def test_cutmix_weights_the_labels_by_the_area_kept() -> None:
    # Distinct random pixels: every pasted pixel differs from the one it replaced.
    x = torch.randn(32, 64, generator=torch.Generator().manual_seed(1))
    y = torch.arange(32) % 10
    out, soft = AUGMENTATIONS["cutmix"].make({"alpha": 1.0}, DIGITS)(x, y, torch.Generator().manual_seed(0))
    pasted = (out != x).reshape(32, -1).float().mean(dim=1)
    partner_differs = soft.gt(0).sum(dim=1) == 2
    assert partner_differs.any()
    own = soft[torch.arange(32), y]
    assert torch.allclose(own[partner_differs], 1 - pasted[partner_differs])


def test_a_run_with_augmentation_differs_from_one_without_and_equals_itself() -> None:
    def final(augment: list[dict]) -> float:
        config = RunConfig.make(epochs=2, augment=augment)
        return [r.val_loss for r in run(config) if r.is_eval][-1]

    plain = final([])
    noisy = final([{"name": "noise", "params": {"std": 0.5}}, {"name": "mixup"}])
    assert noisy != plain
    assert final([{"name": "noise", "params": {"std": 0.5}}, {"name": "mixup"}]) == noisy
    assert final([]) == plain


def test_augmentation_is_part_of_the_config_and_its_flat_form() -> None:
    config = RunConfig.make(augment=[{"name": "flip"}, {"name": "noise", "params": {"std": 0.1}}, {"name": "mixup"}])
    flat = config.to_dict()
    assert flat["augment"] == ["flip", "noise", "mixup"] or flat["augment"] == ["flip", "noise:std=0.1", "mixup"]
    assert RunConfig.from_dict(flat) == config
    assert "augment" not in RunConfig.make().to_dict()  # none: not a parameter at all


@pytest.mark.parametrize(
    ("data", "augment", "message"),
    [
        ("moons", [{"name": "flip"}], "needs image data"),
        ("linear", [{"name": "cutmix"}], "needs image data"),
        ("digits", [{"name": "noise"}, {"name": "noise"}], "given twice"),
        ("digits", [{"name": "noise", "params": {"std": -1}}], "augment.std"),
        ("digits", [{"name": "blur"}], "unknown name"),
    ],
)
def test_bad_augmentations_name_the_problem(data: str, augment: list[dict], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig.make(data={"name": data}, augment=augment)


def test_tabular_mixup_trains_a_regression() -> None:
    config = RunConfig.make(data={"name": "linear"}, model={"name": "linear"}, epochs=2, augment=[{"name": "mixup"}])
    losses = [r.val_loss for r in run(config) if r.is_eval]
    assert losses[-1] < losses[0]


def test_the_cli_trains_on_a_csv_and_refuses_a_formula(tmp_path, dlopt_home) -> None:
    # In this process (tests/cli_inprocess.py): test_cli.py runs `compare` as a real command line.
    from cli_inprocess import run_main

    good = tmp_path / "plants.csv"
    good.write_text("height,width,kind\n" + "\n".join(f"{i % 7},{(i * 3) % 11},{'tall' if i % 2 else 'short'}" for i in range(60)))
    ok = run_main(
        "compare", "--csv", str(good), "--target", "kind", "--optimizer", "adam",
        "--epochs", "2", "--no-track", "--augment", "noise:std=0.1", "--reduce", "subsample:fraction=0.5",
    )
    assert ok.returncode == 0, ok.stderr
    assert "finished" in ok.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("a,kind\n=1+1,x\n")
    refused = run_main("compare", "--csv", str(bad), "--target", "kind", "--optimizer", "adam", "--no-track")
    assert refused.returncode == 2 and "formula" in refused.stderr
    assert not (dlopt_home / "datasets").exists() or len(list((dlopt_home / "datasets").glob("*.npz"))) == 1
