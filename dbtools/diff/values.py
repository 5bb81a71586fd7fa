"""How the values of one column are compared, by the kind the codec gave the
column: most as parsed, some as the codec wrote them, numbers as numbers."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

# Kinds whose values, parsed, compare equal though their text differs: JSON's
# true and 1, 1.0 and 1, integers past a float's precision; an array's -0.0
# and 0.0; "raw" (an unknown type) may hold any of them.
LOOSE_KINDS = {"json", "raw", "array:json", "array:raw", "array:float"}
# One number has more than one right spelling: PostgreSQL's server writes a
# whole float 3 and a small decimal 0.0000001000 where Python writes 3.0 and
# 1.000E-7 (a backup through the portable path, or from another database).
NUMBER_KINDS = {"float", "decimal"}


def exactly_compared(kinds: dict[str, str]) -> frozenset[str]:
    """Of {name: kind}, the columns to compare as the codec wrote them."""
    return frozenset(n for n, kind in kinds.items() if kind in LOOSE_KINDS)


def numeric_columns(kinds: dict[str, str]) -> dict[str, str]:
    """Of {name: kind}, the columns to compare as numbers: {name: kind}."""
    return {n: kind for n, kind in kinds.items() if kind in NUMBER_KINDS}


def same_number(before: Any, after: Any, kind: str) -> bool:
    """Whether two values of a float or decimal column are one number, as
    the codec wrote them (floats as JSON numbers, their NaN and infinities
    as strings; decimals as strings). A float's -0.0 is not 0.0."""
    if before == after:
        if kind == "float" and before == 0 and not isinstance(before, str):
            return math.copysign(1.0, before) == math.copysign(1.0, after)
        return True
    if kind == "decimal" and isinstance(before, str) and isinstance(after, str):
        try:
            return Decimal(before) == Decimal(after)
        except InvalidOperation:
            return False
    return False
