"""The layers point down only: the core knows no streamlit or mlflow, tracking no streamlit."""

import subprocess
import sys

import pytest

FORBIDDEN = {"dlopt_core": {"streamlit", "mlflow"}, "tracking": {"streamlit"}}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_no_upper_layer(package: str) -> None:
    modules = [f"{package}.{m}" for m in _modules(package)]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & FORBIDDEN[package], f"{package} pulled in {loaded & FORBIDDEN[package]}"


def _modules(package: str) -> list[str]:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / package
    return sorted(p.stem for p in root.glob("*.py") if p.stem != "__main__")
