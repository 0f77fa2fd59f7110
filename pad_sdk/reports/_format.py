"""Number formatting shared by the HTML and terminal views of a report."""

from __future__ import annotations


def size(num: int | None) -> str:
    if num is None:
        return "-"
    value = float(num)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{num} B"  # pragma: no cover - the loop always returns


def money(value: float | None, currency: str) -> str:
    if value is None:
        return "-"
    # Small amounts matter here (a few kB of storage); show enough digits that they do not read as zero.
    digits = 2 if abs(value) >= 1 else 4 if abs(value) >= 0.001 else 7
    return f"{value:,.{digits}f} {currency}"


def secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f} s" if value < 600 else f"{value / 60:,.1f} min"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def num(value: float | None) -> str:
    if value is None:
        return "not measured"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def runs(value: float | None) -> str:
    return "never (no compute saving)" if value is None else f"{value:,.1f} training runs"
