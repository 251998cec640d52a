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
