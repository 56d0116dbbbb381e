"""Numbers as people read them: shares that never round a fallback away, plurals, durations."""

from __future__ import annotations


def pct(share: float) -> str:
    """A share as a percentage that never rounds to 100% when something is left, nor to 0% when something is there.

    0.996 -> '99.6%', 0.9999 -> '99.99%', 0.004 -> '0.4%', 1.0 -> '100%'.
    """
    if share <= 0 or share >= 1:
        return f"{share:.0%}"
    for digits in range(0, 5):
        text = f"{share:.{digits}%}"
        value = float(text[:-1]) / 100
        if 0 < value < 1:
            return text
    return "<0.0001%" if share < 0.5 else ">99.9999%"


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 partition', '3 partitions'."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def ms(value: float) -> str:
    """Milliseconds with three significant digits: '0.0915 ms', '16.2 ms'."""
    return f"{value:.3g} ms"


def more(shown: int, total: int, where: str) -> str:
    """'' when nothing was cut, else '+N more (where)'."""
    return f"+{total - shown} more ({where})" if total > shown else ""


def size(n_bytes: int) -> str:
    """'1.2E+18 B', '14.4 GB', '1.46 MB', '12.3 KB', '512 B'."""
    if n_bytes >= 10**15:  # no unit reads better, and a float cannot hold every int a damaged shape multiplies to
        from decimal import Decimal

        return f"{Decimal(n_bytes):.2E} B"
    if n_bytes >= 1e9:
        return f"{n_bytes / 1e9:.1f} GB"
    if n_bytes >= 1e6:
        return f"{n_bytes / 1e6:.2f} MB"
    return f"{n_bytes / 1e3:.1f} KB" if n_bytes >= 1e3 else f"{n_bytes} B"


def rel(share: float) -> str:
    """An error as a share of a scale, three significant digits, never rounded to zero: '4.1%', '0.0019%', '0'."""
    return "0" if share == 0 else f"{share * 100:.3g}%"


def num(value: float) -> str:
    """A value as people write it, four significant digits: '255', '0.003922', '-1', '1.2e-11'."""
    return f"{value:.4g}"
