"""Numbers for display: short enough for a metric card at 1024 px, with thousands separators.

A shared helper of the dashboard's pages (cards, tables, captions); the exact value goes in the help text.
"""

from __future__ import annotations

import math


def compact_number(value, decimals=2):
    """``value`` with thousands separators and fewer decimals the larger it is (at most 8 characters for
    magnitudes below a million, then ``1.23 M`` / ``4.5 G``).

    Example:
    >>> [compact_number(v) for v in (107.529, -0.5, 1546.234, -15463.2, 123456.7, 2.5e7)]
    ['107.53', '-0.50', '1,546.2', '-15,463', '123,457', '25.0 M']
    >>> compact_number(0.19734, decimals=3), compact_number(float("nan"))
    ('0.197', 'n/a')
    """
    if value is None or not math.isfinite(value):
        return "n/a"
    size = abs(value)
    if size >= 1e9:
        return f"{value / 1e9:,.1f} G"
    if size >= 1e6:
        return f"{value / 1e6:,.1f} M"
    if size >= 1e4:
        return f"{value:,.0f}"
    if size >= 1e3:
        return f"{value:,.1f}"
    return f"{value:,.{decimals}f}"


def exact_number(value):
    """The full value for a help text: ``1,546.2345`` (up to 4 decimals, trailing zeros kept short).

    Example:
    >>> exact_number(1546.23456), exact_number(12.0)
    ('1,546.2346', '12')
    """
    text = f"{value:,.4f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"
