"""What every registry shares: hyperparameter specs, their validation, and name lookup."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Literal, TypeVar

from dlopt_core.errors import shown

Kind = Literal["float", "int", "bool", "choice", "ints"]
Value = float | int | bool | str | tuple[int, ...]
T = TypeVar("T")

# A number written with digit grouping: Python's int() and float() read "1_000", a person
# reading a link, a log or a spreadsheet would not.
_GROUPED = re.compile(r"[+-]?\d[\d_]*\.?[\d_]*(?:[eE][+-]?[\d_]+)?")


def check_number_text(value: object, *, field: str) -> None:
    """Refuse a number written with ``_`` (``lr=1_000``); anything else is left to the field."""
    if isinstance(value, str) and "_" in value and _GROUPED.fullmatch(value.strip()):
        raise ValueError(f"{field}: write {shown(value)} without '_' (as {value.strip().replace('_', '')})")


@dataclass(frozen=True)
class HyperParam:
    """One tunable value: its default, its allowed range and how to search it."""

    name: str
    default: Value
    low: float = 0.0
    high: float = 1.0
    kind: Kind = "float"
    log: bool = False
    help: str = ""
    low_inclusive: bool = True
    high_inclusive: bool = True
    choices: tuple[str, ...] = ()
    max_items: int = 8

    def check(self, value: object, *, field: str) -> Value:
        """Return ``value`` coerced to this kind, or raise ``ValueError`` naming the field.

        ``choice`` takes one of ``choices``; ``ints`` takes 1 to ``max_items`` integers in
        [low, high], written ``128/64`` (``,`` separates hyperparameters on the CLI and URL).
        """
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{field}: unknown {shown(value)} (allowed: {', '.join(self.choices)})")
            return str(value)
        if self.kind == "ints":
            return self._ints(value, field=field)
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"true", "false", "1", "0"}:
                return value.lower() in {"true", "1"}
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            raise ValueError(f"{field}: expected true or false, got {shown(value)}")
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"{field}: expected a number, got {shown(value)}") from None
        if self.kind == "int":
            if not number.is_integer():
                raise ValueError(f"{field}: expected an integer, got {shown(value)}")
        if not math.isfinite(number) or not self.in_range(number):
            raise ValueError(f"{field}: {shown(value)} is outside the allowed range {self.range_text}")
        return int(number) if self.kind == "int" else number

    def in_range(self, number: float) -> bool:
        low_ok = number >= self.low if self.low_inclusive else number > self.low
        high_ok = number <= self.high if self.high_inclusive else number < self.high
        return low_ok and high_ok

    @property
    def range_text(self) -> str:
        """``[0, 1)`` style: brackets say which ends are allowed."""
        left = "[" if self.low_inclusive else "("
        right = "]" if self.high_inclusive else ")"
        return f"{left}{self.low:g}, {self.high:g}{right}"

    def _ints(self, value: object, *, field: str) -> tuple[int, ...]:
        example = "/".join(str(v) for v in self.default) if isinstance(self.default, tuple) else "64/32"
        if isinstance(value, str):
            parts = [v.strip() for v in value.replace(",", "/").split("/") if v.strip()]
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            parts = [value]
        try:
            numbers = tuple(int(str(v)) for v in parts)
        except ValueError:
            raise ValueError(f"{field}: expected integers like {example}, got {shown(value)}") from None
        if not 1 <= len(numbers) <= self.max_items or not all(self.in_range(n) for n in numbers):
            raise ValueError(
                f"{field}: expected 1 to {self.max_items} integers in {self.range_text} like {example}, "
                f"got {shown(value)}"
            )
        return numbers

    def text(self, value: Value) -> str:
        """The CLI and URL form of ``value`` (what :meth:`check` reads back)."""
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, tuple):
            return "/".join(map(str, value))
        if isinstance(value, float):
            return repr(value)  # shortest text that reads back to the same float
        return str(value)


def check_params(
    specs: tuple[HyperParam, ...], values: dict[str, object], *, prefix: str
) -> dict[str, Value]:
    """Validate ``values`` against ``specs``, fill defaults, and reject unknown names."""
    known = {p.name: p for p in specs}
    unknown = sorted(set(values) - set(known))
    if unknown:
        allowed = ", ".join(known) or "none"
        raise ValueError(f"{prefix}.{unknown[0]}: unknown hyperparameter (allowed: {allowed})")
    for name, value in values.items():
        check_number_text(value, field=f"{prefix}.{name}")
    return {
        p.name: p.check(values[p.name], field=f"{prefix}.{p.name}") if p.name in values else p.default
        for p in specs
    }


def lookup(entries: Mapping[str, T], name: str, *, kind: str) -> T:
    """``entries[name]``, or a ``ValueError`` that lists the allowed names."""
    try:
        return entries[name]
    except KeyError:
        raise ValueError(f"{kind}: unknown name {shown(name)} (allowed: {', '.join(entries)})") from None


def int_list(value: object, *, field: str, example: str, kind: type = int) -> object:
    """Read ``"64,32"`` as ``(64, 32)`` (``kind=float``: ``"1e-4,0.01"`` as floats); other
    values pass through to the model's own checks."""
    if not isinstance(value, str):
        return value
    items = value.split(",")
    if value.strip() and any(not v.strip() for v in items):
        raise ValueError(f"{field}: an empty item in {shown(value)}; expected a list like {example}")
    for v in items:
        check_number_text(v, field=field)
    try:
        return tuple(kind(v) for v in items if v.strip())
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{field}: expected {what} like {example}, got {shown(value)}") from None


def parse_spec(text: str) -> tuple[str, dict[str, str]]:
    """Read ``name:key=value,key=value`` (the CLI and URL form of registry entries).

    Each key once: with ``lr=0.1,lr=0.2`` it is not clear which value was meant.
    """
    name, _, rest = text.strip().partition(":")
    values = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not key:
            raise ValueError(f"expected key=value in {shown(text)}, got {shown(item)}")
        if not value:
            raise ValueError(f"{key}= has no value in {shown(text)}; give one, or leave {key} out for its default")
        if key in values:
            raise ValueError(f"{key} given twice in {shown(text)}")
        values[key] = value
    return name.strip(), values
