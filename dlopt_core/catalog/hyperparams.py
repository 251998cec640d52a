"""What every registry shares: hyperparameter specs, their validation, and name lookup."""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Literal, TypeVar

Kind = Literal["float", "int", "bool"]
T = TypeVar("T")


@dataclass(frozen=True)
class HyperParam:
    """One tunable value: its default, its allowed range and how to search it."""

    name: str
    default: float | int | bool
    low: float = 0.0
    high: float = 1.0
    kind: Kind = "float"
    log: bool = False
    help: str = ""
    low_inclusive: bool = True

    def check(self, value: object, *, field: str) -> float | int | bool:
        """Return ``value`` coerced to this kind, or raise ``ValueError`` naming the field."""
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"true", "false", "1", "0"}:
                return value.lower() in {"true", "1"}
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            raise ValueError(f"{field}: expected true or false, got {value!r}")
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"{field}: expected a number, got {value!r}") from None
        if self.kind == "int":
            if not number.is_integer():
                raise ValueError(f"{field}: expected an integer, got {value!r}")
        low_ok = number >= self.low if self.low_inclusive else number > self.low
        if not math.isfinite(number) or not low_ok or number > self.high:
            bracket = "[" if self.low_inclusive else "("
            raise ValueError(
                f"{field}: {value!r} is outside the allowed range {bracket}{self.low:g}, {self.high:g}]"
            )
        return int(number) if self.kind == "int" else number


def check_params(
    specs: tuple[HyperParam, ...], values: dict[str, object], *, prefix: str
) -> dict[str, float | int | bool]:
    """Validate ``values`` against ``specs``, fill defaults, and reject unknown names."""
    known = {p.name: p for p in specs}
    unknown = sorted(set(values) - set(known))
    if unknown:
        allowed = ", ".join(known) or "none"
        raise ValueError(f"{prefix}.{unknown[0]}: unknown hyperparameter (allowed: {allowed})")
    return {
        p.name: p.check(values[p.name], field=f"{prefix}.{p.name}") if p.name in values else p.default
        for p in specs
    }


def lookup(entries: Mapping[str, T], name: str, *, kind: str) -> T:
    """``entries[name]``, or a ``ValueError`` that lists the allowed names."""
    try:
        return entries[name]
    except KeyError:
        raise ValueError(f"{kind}: unknown name {name!r} (allowed: {', '.join(entries)})") from None


def int_list(value: object, *, field: str, example: str) -> object:
    """Read ``"64,32"`` as ``(64, 32)``; other values pass through to the model's own checks."""
    if not isinstance(value, str):
        return value
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{field}: expected integers like {example}, got {value!r}") from None


def parse_spec(text: str) -> tuple[str, dict[str, str]]:
    """Read ``name:key=value,key=value`` (the CLI and URL form of registry entries)."""
    name, _, rest = text.strip().partition(":")
    values = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"expected key=value in {text!r}, got {item!r}")
        values[key.strip()] = value.strip()
    return name.strip(), values
