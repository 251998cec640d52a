"""Parameter sharing: tied and repeated tensors really shared, PCGrad as the paper writes it, the work's mirror."""

from __future__ import annotations

import torch
from torch import nn

from dlopt_core.catalog.datasets import load_dataset
from dlopt_core.config import OptimizerConfig, ScheduleConfig
from dlopt_core.engine.records import Status
from dlopt_core.experiments.share import Share, ShareConfig, ShareWork
from dlopt_core.plots.share import conflict_data, share_cost_data, share_curves_data, sharing_table_data
from dlopt_core.runner.jobs import JobRegistry
from dlopt_core.sharing import FAMILIES, VARIANTS, build_variant, pcgrad, sharing_check, train_run
from dlopt_core.sharing.train import task_losses

CPU = torch.device("cpu")
DATA = load_dataset("digits", {}, val_fraction=0.2, split_seed=0, device=CPU)
ADAM = OptimizerConfig.make(name="adam")


def _build(name: str, seed: int = 0, **shape: int) -> nn.Module:
    return build_variant(name, DATA.n_features, width=shape.get("width", 16), depth=shape.get("depth", 3),
                         seed=seed, device=CPU)


def test_tied_decoder_uses_the_encoders_storage_gets_one_adam_state_and_the_sum_of_both_uses_gradients() -> None:
    model = _build("tied")
    assert model.decoder_weight().untyped_storage().data_ptr() == model.encoder.weight.untyped_storage().data_ptr()
    # The gradient on the tied matrix against autograd on an untied copy with identical weights.
    free = _build("untied")
    with torch.no_grad():
        free.encoder.weight.copy_(model.encoder.weight)
        free.encoder.bias.copy_(model.encoder.bias)
        free.decoder.weight.copy_(model.encoder.weight.t())
        free.decoder.bias.copy_(model.decoder_bias)
    x, y = DATA.x_train[:32], DATA.y_train[:32]
    for m in (model, free):
        sum(task_losses(m, x, y).values()).backward()
    torch.testing.assert_close(model.encoder.weight.grad, free.encoder.weight.grad + free.decoder.weight.grad.t())

    check = sharing_check("tied", _build("tied"), DATA, ADAM)
    assert check.shares_storage and check.same_object and check.params_deduplicated
    assert check.optimizer_states == 3 == check.tensors  # encoder weight, encoder bias, decoder bias: not 4
    assert check.params == 64 * 16 + 16 + 64 and check.params_untied == check.params + 64 * 16
    assert check.grad_is_sum_of_uses and check.decayed_once and check.one_state_per_tensor


def test_untied_and_distinct_variants_share_nothing() -> None:
    for name in ("untied", "distinct", "separate", "single"):
        check = sharing_check(name, _build(name), DATA, ADAM)
        assert not check.shares_storage and not check.params_deduplicated, name
        assert check.params == check.params_untied and check.grad_is_sum_of_uses, name


def test_shared_depth_counts_one_layer_and_its_gradient_is_the_sum_over_its_depth_uses() -> None:
    shared, distinct = _build("shared", width=16, depth=5), _build("distinct", width=16, depth=5)
    layer = 16 * 16 + 16
    assert sum(p.numel() for p in shared.parameters()) == sum(p.numel() for p in distinct.parameters()) - 4 * layer
    stem_and_head = sum(p.numel() for m in (shared.stem, shared.head) for p in m.parameters())
    assert sum(p.numel() for p in shared.parameters()) - stem_and_head == layer
    assert len({b.weight.data_ptr() for b in shared.blocks}) == 1 and all(b is shared.blocks[0] for b in shared.blocks)
    check = sharing_check("shared", _build("shared", width=16, depth=5), DATA, ADAM)
    assert check.use_sites == 7 and check.storages == 3  # stem, the block 5 times, head
    assert check.grad_is_sum_of_uses and check.one_state_per_tensor and check.optimizer_states == 6


def test_pcgrad_projects_conflicting_gradients_as_the_paper_writes_and_leaves_others_alone() -> None:
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    p1, p2 = pcgrad([g1, g2])
    # g1 <- g1 - (g1.g2 / |g2|^2) g2 = (1,0) + 1/2 (-1,1); g2 <- g2 - (g2.g1 / |g1|^2) g1 = (0,1)
    torch.testing.assert_close(p1, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(p2, torch.tensor([0.0, 1.0]))
    assert float(p1 @ g2) == 0.0 and float(p2 @ g1) == 0.0
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0])  # dot 1 > 0: no conflict
    q1, q2 = pcgrad([a, b])
    torch.testing.assert_close(q1, a)
    torch.testing.assert_close(q2, b)
    (only,) = pcgrad([g2])
    torch.testing.assert_close(only, g2)


def test_a_single_task_trunk_starts_as_the_multitask_one_and_pcgrad_changes_nothing_for_it() -> None:
    multi, single = _build("multitask", seed=3), _build("single", seed=3)
    for name, p in single.named_parameters():
        torch.testing.assert_close(p, dict(multi.named_parameters())[name])

    def rows(combine: str) -> list:
        return list(train_run(_build("single", seed=3), DATA, optimizer=ADAM, schedule=ScheduleConfig(), epochs=2,
                              batch_size=128, seed=3, combine=combine))

    equal, projected = rows("equal"), rows("pcgrad")
    assert [r.metrics for r in equal] == [r.metrics for r in projected]
    assert [r.train_loss for r in equal] == [r.train_loss for r in projected]


def test_a_multitask_pcgrad_step_gives_the_heads_their_task_and_the_trunk_the_projected_sum() -> None:
    from dlopt_core.sharing.train import build_step

    model = _build("multitask", seed=1)
    x, y = DATA.x_train[:64], DATA.y_train[:64]
    params = list(model.parameters())
    # Each task's gradient by autograd, then the paper's projection done by hand on the trunk.
    losses = task_losses(model, x, y)
    by_task = [torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True) for loss in losses.values()]
    trunk = [i for i in range(len(params)) if all(g[i] is not None for g in by_task)]
    heads = [i for i in range(len(params)) if i not in trunk]
    assert trunk and heads
    g1, g2 = (torch.cat([g[i].reshape(-1) for i in trunk]) for g in by_task)
    dot = torch.dot(g1, g2)
    expected = (g1 - dot / torch.dot(g2, g2) * g2 if dot < 0 else g1) + (g2 - dot / torch.dot(g1, g1) * g1 if dot < 0 else g2)

    frozen_sgd = torch.optim.SGD(params, lr=0.0)  # the step leaves the gradients to read, the weights as they were
    build_step(model, frozen_sgd, combine="pcgrad", generator=torch.Generator().manual_seed(0))(x, y)
    got = torch.cat([params[i].grad.reshape(-1) for i in trunk])
    torch.testing.assert_close(got, expected)
    for i in heads:
        own = next(g[i] for g in by_task if g[i] is not None)
        torch.testing.assert_close(params[i].grad, own)


def test_equal_weights_and_pcgrad_runs_with_one_seed_see_the_same_batches_in_the_same_order() -> None:
    def batches(combine: str) -> list[float]:
        model = _build("multitask", seed=2)
        seen: list[float] = []
        model.register_forward_hook(lambda m, args, out: seen.append(float(args[0].sum())) if len(args[0]) == 64 else None)
        list(train_run(model, DATA, optimizer=OptimizerConfig.make(name="sgd", lr=0.01), schedule=ScheduleConfig(),
                       epochs=3, batch_size=64, seed=2, combine=combine))
        return seen

    equal = batches("equal")
    assert len(equal) > 40 and equal == batches("pcgrad")


def test_the_registry_families_name_their_variants_and_defaults_cover_the_family() -> None:
    for family in FAMILIES.values():
        assert all(VARIANTS[v].family == family.name for v in family.variants)
        assert ShareConfig.make(family=family.name).variants == family.variants


def test_multitask_records_the_trunk_cosines_and_pcgrad_trains() -> None:
    cfg = ShareConfig.make(family="multitask", variants="multitask,separate", epochs=2, seeds=(0,), width=16,
                           depth=2, combine="pcgrad")
    share = Share(cfg).execute()
    multi, separate = share.runs
    assert all(r.status is Status.FINISHED for r in share.runs)
    assert set(multi.rows[-1].cosines) == {"trunk.0", "trunk.2"} and separate.rows[-1].cosines == {}
    assert all(-1.0 <= c <= 1.0 for row in multi.rows for c in row.cosines.values())
    assert set(multi.final) == {"digit", "high"} and multi.final["digit"] > 0.3
    assert share.params == {"multitask": share.checks["multitask"].params, "separate": share.checks["separate"].params}
    assert share.params["separate"] > share.params["multitask"]
    assert [line.layer for line in conflict_data([share]).lines] == ["trunk.0", "trunk.2"]
    assert [p.label for p in share_cost_data(share, task="high").points] == ["multi-task", "separate"]
    assert [c.label for c in share_curves_data(share, task="digit").curves] == ["multi-task", "separate"]
    assert [r["variant"] for r in sharing_table_data(share)] == ["multitask", "separate"]


def test_a_diverging_run_ends_as_diverged() -> None:
    cfg = ShareConfig.make(family="depth", variants="shared", epochs=2, seeds=(0,),
                           optimizer=OptimizerConfig.make(name="sgd", lr=1e6))
    (run,) = Share(cfg).execute().runs
    assert run.status is Status.DIVERGED and run.diverged_step is not None and run.final == {"digit": None}


def test_share_work_in_a_thread_fills_the_mirror_and_stops_when_cancelled() -> None:
    registry = JobRegistry(1, launcher="thread")
    try:
        job = registry.submit(ShareWork(ShareConfig.make(family="tied", epochs=2, seeds=(0, 1), width=8), track=False))
        assert job.wait(120) and str(job.status) == "finished"
        share = job.payload.share
        assert [(r.variant, r.seed, str(r.status), len(r.rows)) for r in share.runs] == [
            ("tied", 0, "finished", 3), ("tied", 1, "finished", 3), ("untied", 0, "finished", 3),
            ("untied", 1, "finished", 3),
        ]
        assert set(share.checks) == {"tied", "untied"} and share.checks["tied"].shares_storage
        assert share.elapsed_s > 0 and share.runs[0].rows[-1].metrics["reconstruct"] > 0

        long = ShareWork(ShareConfig.make(family="depth", epochs=10_000, seeds=(0,)), track=False)
        job = registry.submit(long)
        while not any(r.rows for r in long.share.runs) and job.active:
            job.wait(0.05)
        job.cancel()
        assert job.wait(60)
        assert str(job.status) == "cancelled"
        assert [str(r.status) for r in long.share.runs] == ["cancelled", "cancelled"]
        assert long.share.runs[0].rows and len(long.share.runs[0].rows) < 10_001
    finally:
        registry.shutdown()
