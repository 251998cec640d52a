"""The content-hashed store of checked uploads, shared by every process of one installation.

A checked :class:`~dlopt_core.uploads.parse.UserTable` is stored by :func:`store_table` as
``$DLOPT_HOME/datasets/user-<hash>.npz`` (arrays only, read back with ``allow_pickle=False``)
beside a ``.json`` description. The name is a hash of the content, so the same upload is the
same data set in every process, and :func:`~dlopt_core.catalog.datasets.get_dataset_spec`
resolves it through :func:`read_description`, worker processes included.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from dlopt_core.errors import shown
from dlopt_core.home import dlopt_home
from dlopt_core.uploads.parse import USER_NAME, Arrays, UserTable

_STORE_FORMAT = 1  # version of the .json description, for readers of older stores


def user_datasets_dir(home: Path | None = None) -> Path:
    """Where uploaded data sets live: ``<home>/datasets`` (``$DLOPT_HOME`` by default)."""
    return (home if home is not None else dlopt_home()) / "datasets"


def store_table(table: UserTable, home: Path | None = None) -> str:
    """Store ``table`` under ``<home>/datasets`` and return its name (see :attr:`UserTable.name`).

    Storing the same table again changes nothing. Each file is written to a temporary file
    and renamed, the description last, so a crash never leaves half a data set under the name.
    """
    folder = user_datasets_dir(home)
    name = table.name
    npz, meta = folder / f"{name}.npz", folder / f"{name}.json"
    if npz.exists() and meta.exists():
        return name
    folder.mkdir(parents=True, exist_ok=True)
    description = {
        "format": _STORE_FORMAT,
        "name": name,
        "source": table.source,
        "target": table.target,
        "task": table.task,
        "feature_names": list(table.feature_names),
        "classes": list(table.classes),
        "sha256": table.sha256,
        "shape": list(table.shape),
        "image_shape": list(table.image_shape) if table.image_shape else None,
    }
    _write_atomic(npz, lambda f: np.savez(f, x=table.x, y=table.y))
    _write_atomic(meta, lambda f: f.write(json.dumps(description, indent=1).encode()))
    return name


def _write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the data on disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def user_dataset_tags(name: str) -> dict[str, str]:
    """What a run on an upload records of it (MLflow tags): the file's name, content hash,
    target and shape; empty for a data set that is not an upload, or no longer stored."""
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        return {}
    try:
        meta = json.loads((user_datasets_dir() / f"{name}.json").read_text(encoding="utf-8"))
        rows, features = meta["shape"]
        return {
            "data.source": str(meta["source"]), "data.sha256": str(meta["sha256"]),
            "data.target": str(meta["target"]), "data.shape": f"{rows} x {features}",
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def read_description(name: str) -> dict[str, Any]:
    """The stored ``.json`` description of the upload ``name``.

    Raises:
        ValueError: ``name`` is not an upload's name, or nothing readable is stored under it.
    """
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        raise ValueError(f"dataset: {shown(name)} is not an uploaded data set's name (user- and 12 hex digits)")
    folder = user_datasets_dir()
    npz, meta_path = folder / f"{name}.npz", folder / f"{name}.json"
    if not (npz.exists() and meta_path.exists()):
        raise ValueError(f"dataset: {name!r} is not found under {folder}")
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"dataset: {name!r}: {meta_path} is unreadable ({shown(str(err))})") from None


def read_arrays(name: str) -> Arrays:
    """The stored ``(x, y)`` of the upload ``name``."""
    path = user_datasets_dir() / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            return stored["x"], stored["y"]
    except FileNotFoundError:
        raise ValueError(f"dataset: {name!r} is not found under {path.parent}") from None
