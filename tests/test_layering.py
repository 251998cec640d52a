"""The layers point down only: the core knows no streamlit or mlflow, tracking no streamlit."""

import subprocess
import sys

import pytest

FORBIDDEN = {"dlopt_core": {"streamlit", "mlflow"}, "tracking": {"streamlit"}}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_no_upper_layer(package: str) -> None:
    modules = _modules(package)
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & FORBIDDEN[package], f"{package} pulled in {loaded & FORBIDDEN[package]}"


def _modules(package: str) -> list[str]:
    """Every module of ``package``, subpackages included (``dlopt_core.engine.loop``, ...)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = []
    for path in sorted((root / package).rglob("*.py")):
        if path.stem == "__main__":
            continue
        parts = path.relative_to(root).with_suffix("").parts
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_the_walk_sees_the_subpackages() -> None:
    modules = _modules("dlopt_core")
    for sub in ("catalog", "engine", "experiments", "runner", "plots", "cli"):
        assert f"dlopt_core.{sub}" in modules


# -- floors inside dlopt_core, read from the source ----------------------------------------


def test_core_imports_point_down_without_circles() -> None:
    from bench.layering import circles, core_modules, import_graph, upward_imports

    graph = import_graph(core_modules())
    assert circles(graph) == []
    assert upward_imports(graph) == []


def test_every_core_module_is_on_a_floor() -> None:
    from bench.layering import core_modules, floor_of

    for module in core_modules():
        floor_of(module)  # a KeyError names a module no floor holds


def test_the_checker_catches_a_planted_upward_import_and_circle() -> None:
    from bench.layering import circles, upward_imports

    upward = {"dlopt_core.catalog.models": {"dlopt_core.engine.loop"}, "dlopt_core.engine.loop": {"dlopt_core.config"}}
    assert upward_imports(upward) == [("dlopt_core.catalog.models", "dlopt_core.engine.loop")]
    circle = {
        "dlopt_core.runner.jobs": {"dlopt_core.runner.launchers"},
        "dlopt_core.runner.launchers": {"dlopt_core.runner.work"},
        "dlopt_core.runner.work": {"dlopt_core.runner.jobs"},
    }
    assert circles(circle) == [sorted(circle)]
    assert upward_imports(circle) == []  # sideways within one floor is allowed; the circle is not


def test_the_reader_sees_lazy_and_relative_imports(tmp_path) -> None:
    from bench.layering import circles, core_modules, import_graph, upward_imports

    package = tmp_path / "dlopt_core"
    (package / "catalog").mkdir(parents=True)
    (package / "engine").mkdir()
    for init in (package, package / "catalog", package / "engine"):
        (init / "__init__.py").write_text("")
    (package / "engine" / "loop.py").write_text("from . import step\n")
    (package / "engine" / "step.py").write_text("")
    (package / "catalog" / "models.py").write_text(
        "def build():\n    from dlopt_core.engine.loop import run  # lazy, still a dependency\n"
    )
    (package / "catalog" / "datasets.py").write_text("import dlopt_core.catalog.models\n")
    graph = import_graph(core_modules(tmp_path))
    assert graph["dlopt_core.engine.loop"] == {"dlopt_core.engine.step"}
    assert graph["dlopt_core.catalog.datasets"] == {"dlopt_core.catalog.models"}
    assert upward_imports(graph) == [("dlopt_core.catalog.models", "dlopt_core.engine.loop")]
    assert circles(graph) == []
