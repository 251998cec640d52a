"""Which implementation (fused, foreach, plain) each optimizer asks torch for, per device type.

Runs on the CPU alone: the kwargs the registry would pass on "cuda" or "mps" are read from
optimizers built over CPU tensors, and checked against the device lists of torch itself.
"""

import ast
from pathlib import Path

import pytest
import torch
from optimizer_steps import take_steps, toy_model
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

from dlopt_core.catalog.hyperparams import check_params
from dlopt_core.catalog.optimizers import OPTIMIZERS, CombinedOptimizer, OptimizerSpec

DEVICE_TYPES = ("cpu", "cuda", "mps")


def _torch_fused_devices() -> dict[str, set[str]]:
    """Device types with a fused kernel, per torch.optim class name, from torch's own files.

    A class accepts fused=True where both say so: its runtime check
    (``_get_fused_kernels_supported_devices``) and the ``supports_fused_on`` of its entry in
    torch's optimizer test matrix (which knows, e.g., that fused Adagrad has no MPS kernel).
    Read from the source: the module imports test-only packages.
    """
    path = Path(torch.__file__).parent / "testing" / "_internal" / "common_optimizers.py"
    runtime = set(_get_fused_kernels_supported_devices())
    out = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "OptimizerInfo":
            name = node.args[0].id
            for kw in node.keywords:
                if kw.arg == "supports_fused_on":
                    out[name] = set(ast.literal_eval(kw.value)) & runtime
    return out


TORCH_FUSED = _torch_fused_devices()


def _built(spec: OptimizerSpec, device_type: str) -> list[torch.optim.Optimizer]:
    """The torch optimizers the registry builds for ``device_type``, over CPU tensors."""
    model = torch.nn.Linear(3, 2)
    hp = check_params(spec.hyperparams, {}, prefix="optimizer")
    opt = spec.factory(list(model.named_parameters()), spec.default_lr, hp, spec.fused_on(device_type))
    return opt.optimizers if isinstance(opt, CombinedOptimizer) else [opt]


def _fused_classes(spec: OptimizerSpec, device_type: str) -> list[str]:
    return [type(o).__name__ for o in _built(spec, device_type) if o.defaults.get("fused")]


def test_torch_lists_were_read() -> None:
    assert TORCH_FUSED["Adam"] >= {"cpu", "cuda"} and TORCH_FUSED["AdamW"] >= {"cpu", "cuda"}
    assert "cpu" in TORCH_FUSED["Adagrad"] and "mps" not in TORCH_FUSED["Adagrad"]


@pytest.mark.parametrize("device_type", DEVICE_TYPES)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fused_is_asked_for_only_where_torch_has_the_kernel(name: str, device_type: str) -> None:
    for opt in _built(OPTIMIZERS[name], device_type):
        fused, foreach = opt.defaults.get("fused"), opt.defaults.get("foreach")
        # fused=False would switch off foreach as well (torch's fast default on CUDA); torch
        # classes are left to choose foreach themselves (schedulefree chooses its own).
        assert fused in (None, True), (type(opt).__name__, fused)
        if type(opt).__module__.startswith("torch.optim"):
            assert foreach is None, (type(opt).__name__, foreach)
        if fused:
            assert device_type in TORCH_FUSED.get(type(opt).__name__, set()), type(opt).__name__


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Measured on CPU: fused Adam / AdamW / Adagrad ~1.25x faster, fused SGD ~150x slower.
        ("adam", {"cpu": ["Adam"], "cuda": ["Adam"], "mps": []}),
        ("adamw", {"cpu": ["AdamW"], "cuda": ["AdamW"], "mps": []}),
        ("muon", {"cpu": ["AdamW"], "cuda": ["AdamW"], "mps": []}),
        ("adagrad", {"cpu": ["Adagrad"], "cuda": [], "mps": []}),  # issue 13: not fused on GPUs
        ("sgd", {"cpu": [], "cuda": [], "mps": []}),
        ("momentum", {"cpu": [], "cuda": [], "mps": []}),
    ],
)
def test_the_registry_chooses_fused_by_device_type(name: str, expected: dict[str, list[str]]) -> None:
    assert {d: _fused_classes(OPTIMIZERS[name], d) for d in DEVICE_TYPES} == expected


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_each_optimizer_builds_and_steps_on_the_cpu_with_its_cpu_choice(name: str) -> None:
    spec = OPTIMIZERS[name]
    model = toy_model()
    opt = spec.build(
        list(model.named_parameters()), spec.default_lr,
        check_params(spec.hyperparams, {}, prefix="optimizer"), torch.device("cpu"),
    )
    parts = opt.optimizers if isinstance(opt, CombinedOptimizer) else [opt]
    assert [type(o).__name__ for o in parts if o.defaults.get("fused")] == _fused_classes(spec, "cpu")
    before = [p.detach().clone() for p in model.parameters()]
    take_steps(spec, opt, model)
    after = list(model.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
