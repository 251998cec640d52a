"""Weights as bytes: a ``state_dict`` written with ``torch.save`` and read back without pickle's code paths.

A stored artifact may come from anyone who can write to the tracking store, so reading runs
``torch.load(..., weights_only=True)`` only: torch's restricted unpickler builds tensors and
plain containers and refuses any other global (an object whose ``__reduce__`` would run code
is refused before anything is called).
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Mapping

import torch

STATE_DICT_FILE = "state_dict.pt"


class WeightsError(ValueError):
    """Stored weights that cannot be used; the message says why."""


def state_dict_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    """``state`` as :func:`torch.save` writes it (what is stored, and what is measured)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def read_state_dict(raw: bytes, *, source: str = "the weights") -> dict[str, torch.Tensor]:
    """A ``state_dict`` from ``raw`` bytes, loaded with ``weights_only=True`` onto the CPU.

    Raises :class:`WeightsError` when the bytes are not a ``torch.save`` file, hold anything
    but tensors and containers (a crafted pickle: refused, nothing of it executed), or are
    not a mapping of names to tensors.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pickle protocol 4": a note to torch's developers
            loaded = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(
            f"{source}: refused, not loadable with weights_only=True (it holds something other than "
            f"tensors and containers, e.g. code): {_reason(err)}"
        ) from None
    except Exception as err:  # a truncated or foreign file: zip and pickle readers raise many kinds
        raise WeightsError(f"{source}: not a torch.save file ({type(err).__name__}: {err})") from None
    if not isinstance(loaded, Mapping) or not loaded:
        raise WeightsError(f"{source}: not a state_dict (got {type(loaded).__name__}, expected names -> tensors)")
    bad = next((k for k, v in loaded.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise WeightsError(
            f"{source}: not a state_dict: entry {bad!r} is a {type(loaded[bad]).__name__}, expected a tensor"
        )
    return dict(loaded)


def _reason(err: Exception) -> str:
    # torch's message opens with advice to retry with weights_only=False: the one thing not to
    # do with an untrusted file. The line that names the refused global is what a person needs.
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "Unsupported" in line or "error" in line.lower()]
    return (named or lines[-1:] or [type(err).__name__])[0]
