"""Kubernetes resource quantities (``"500m"``, ``"1Gi"``, ``"2G"``, ``"1e3"``, ``1.5``).

Purely computational: strings in, exact :class:`~decimal.Decimal` values out. The grammar is
Kubernetes' own (``k8s.io/apimachinery/pkg/api/resource``)::

    quantity ::= [+-] number [suffix]
    number   ::= digits | digits "." [digits] | "." digits
    suffix   ::= Ki | Mi | Gi | Ti | Pi | Ei          (powers of 1024)
               | n | u | m | k | M | G | T | P | E   (powers of 1000)
               | (e|E) [+-] digits                   (a decimal exponent)

YAML numbers (``cpu: 1``, ``cpu: 0.5``) are accepted as Kubernetes accepts them. Anything else
raises :class:`QuantityError`, which carries a concrete ``fix`` for humans (``"1GB"`` -> use
``"1Gi"`` or ``"1G"``).
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

__all__ = ["QuantityError", "ceil_quantity", "parse_quantity", "quantity_to_float"]

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$"
)

_EXAMPLES = '"500m", "2", "1.5", "4Gi", "2G" or "1e3"'
_SUFFIX_NOTE = "suffixes are case-sensitive: Ki Mi Gi are powers of 1024, k M G powers of 1000"


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity; ``fix`` says what to write instead."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """Parse a Kubernetes quantity exactly: ``"500m"`` -> ``Decimal("0.5")``, ``"1Ki"`` -> 1024.

    Negative quantities parse (Kubernetes' grammar allows a sign); callers that need
    non-negative values check the sign themselves.
    """
    if isinstance(value, bool):
        raise QuantityError(
            f"{str(value).lower()} is not a quantity", f"write a number such as {_EXAMPLES}"
        )
    if isinstance(value, Decimal):
        return _finite(value, value)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return _finite(Decimal(repr(value)), value)
    if isinstance(value, str):
        return _parse_text(value)
    raise QuantityError(
        f"{type(value).__name__} value {value!r} is not a quantity",
        f"write a number such as {_EXAMPLES}",
    )


def ceil_quantity(value: str | int | float | Decimal) -> int:
    """The quantity rounded up to a whole number, as KubeRay does for CPUs (``"500m"`` -> 1)."""
    return int(parse_quantity(value).to_integral_value(rounding=ROUND_CEILING))


def quantity_to_float(value: str | int | float | Decimal) -> float:
    """The quantity as a float (exact for every value a resource vector holds in practice)."""
    return float(parse_quantity(value))


def _finite(number: Decimal, original: object) -> Decimal:
    if not number.is_finite():
        raise QuantityError(
            f"{original!r} is not a finite quantity", f"write a number such as {_EXAMPLES}"
        )
    return number


def _parse_text(text: str) -> Decimal:
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise QuantityError(f'"{text}" is not a Kubernetes quantity', _suggest(text))
    number = Decimal(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    try:
        return number.scaleb(int(suffix[1:]))
    except (InvalidOperation, OverflowError, ValueError):  # pragma: no cover - regex-guarded
        raise QuantityError(f'"{text}" is out of range', _suggest(text)) from None


_CASE_FIXES = {
    "k": ("k", "Ki"),
    "ki": ("Ki",),
    "mi": ("Mi",),
    "gi": ("Gi",),
    "ti": ("Ti",),
    "pi": ("Pi",),
    "ei": ("Ei",),
    "g": ("Gi", "G"),
    "t": ("Ti", "T"),
    "p": ("Pi", "P"),
    "kb": ("Ki", "k"),
    "mb": ("Mi", "M"),
    "gb": ("Gi", "G"),
    "tb": ("Ti", "T"),
    "pb": ("Pi", "P"),
    "kib": ("Ki",),
    "mib": ("Mi",),
    "gib": ("Gi",),
    "tib": ("Ti",),
}


def _suggest(text: str) -> str:
    """A concrete replacement for a near-miss (``"1 GB"`` -> ``"1Gi"`` or ``"1G"``)."""
    compact = text.replace(" ", "").replace("_", "")
    head = re.match(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)", compact)
    if head is not None:
        number, unit = head.group(0), compact[head.end() :]
        choices = _CASE_FIXES.get(unit.lower())
        if choices:
            spelled = " or ".join(f'"{number}{choice}"' for choice in choices)
            return f"write {spelled} ({_SUFFIX_NOTE})"
        if unit == "" and compact != text:
            return f'write "{compact}" without spaces'
    return f"write a number with an optional suffix, such as {_EXAMPLES}"
