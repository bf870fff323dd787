"""Kubernetes quantities: the grammar, exact values, rounding and human-friendly errors."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rayscale.spec import QuantityError, ceil_quantity, parse_quantity
from rayscale.spec.quantity import quantity_to_float

pytestmark = pytest.mark.unit

VALID = [
    ("milli", "500m", Decimal("0.5")),
    ("plain-int-string", "1", Decimal(1)),
    ("gibi", "1Gi", Decimal(2**30)),
    ("giga", "2G", Decimal(2 * 10**9)),
    ("decimal-fraction", "1.5", Decimal("1.5")),
    ("mebi", "100Mi", Decimal(100 * 2**20)),
    ("exponent", "1e3", Decimal(1000)),
    ("exponent-upper", "1E3", Decimal(1000)),
    ("exponent-negative", "25e-1", Decimal("2.5")),
    ("exa-not-exponent", "1E", Decimal(10**18)),
    ("kilo", "4k", Decimal(4000)),
    ("kibi", "4Ki", Decimal(4096)),
    ("tebi", "1Ti", Decimal(2**40)),
    ("nano", "100n", Decimal("0.0000001")),
    ("micro", "5u", Decimal("0.000005")),
    ("trailing-dot", "5.", Decimal(5)),
    ("leading-dot", ".5", Decimal("0.5")),
    ("plus-sign", "+2", Decimal(2)),
    ("negative", "-1", Decimal(-1)),
    ("fractional-gibi", "1.5Gi", Decimal(3 * 2**29)),
    ("surrounding-spaces", " 2 ", Decimal(2)),
    ("yaml-int", 3, Decimal(3)),
    ("yaml-float", 0.25, Decimal("0.25")),
    ("yaml-float-no-binary-noise", 0.1, Decimal("0.1")),
    ("decimal", Decimal("1.25"), Decimal("1.25")),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_parses_exactly(value: str | int | float | Decimal, expected: Decimal) -> None:
    assert parse_quantity(value) == expected


INVALID = [
    ("word", "lots", "such as"),
    ("empty", "", "such as"),
    ("two-dots", "1.2.3", "such as"),
    ("suffix-only", "Gi", "such as"),
    ("dangling-exponent", "1e", "such as"),
    ("upper-kilo", "1K", '"1k" or "1Ki"'),
    ("gigabytes", "1GB", '"1Gi" or "1G"'),
    ("lower-gibi", "2gi", '"2Gi"'),
    ("mib-with-b", "512MiB", '"512Mi"'),
    ("space-before-suffix", "1 Gi", '"1Gi"'),
    ("bool", True, "write a number"),
    ("none", None, "write a number"),
    ("list", [1], "write a number"),
    ("nan", float("nan"), "write a number"),
    ("infinity", float("inf"), "write a number"),
]


@pytest.mark.parametrize(
    ("value", "fix_fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_rejects_with_a_concrete_fix(value: object, fix_fragment: str) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(value)  # type: ignore[arg-type]
    assert fix_fragment in caught.value.fix
    assert isinstance(caught.value, ValueError)


def test_error_message_names_the_value() -> None:
    with pytest.raises(QuantityError, match='"lots" is not a Kubernetes quantity'):
        parse_quantity("lots")


CEIL = [
    ("half-cpu", "500m", 1),
    ("just-over-one", "1001m", 2),
    ("whole", "2", 2),
    ("fraction", "1.2", 2),
    ("zero", "0", 0),
    ("gibi-bytes", "1Gi", 2**30),
    ("float", 0.1, 1),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in CEIL], ids=[c[0] for c in CEIL])
def test_ceil_rounds_up(value: str | float, expected: int) -> None:
    assert ceil_quantity(value) == expected


def test_to_float() -> None:
    assert quantity_to_float("250m") == 0.25


SUFFIX_FACTORS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


@given(
    number=st.integers(min_value=0, max_value=10**6), suffix=st.sampled_from(list(SUFFIX_FACTORS))
)
def test_integer_with_suffix_is_number_times_factor(number: int, suffix: str) -> None:
    assert parse_quantity(f"{number}{suffix}") == number * SUFFIX_FACTORS[suffix]


@given(milli=st.integers(min_value=0, max_value=10**6))
def test_milli_matches_decimal_division(milli: int) -> None:
    assert parse_quantity(f"{milli}m") == Decimal(milli) / 1000
    assert ceil_quantity(f"{milli}m") == -(-milli // 1000)
