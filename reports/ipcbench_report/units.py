"""Human units for numbers a person reads: ns/µs/ms, B/KiB/MiB, MB/s/GB/s.

Every report (HTML, Markdown, console) formats through these functions so a
value reads the same wherever it appears.
"""

import math
import numbers


def _sig3(x):
    """Three significant figures for 1 <= |x| < 1000 without exponent form,
    because '1.21e+03' is not something a reader should have to decode."""
    ax = abs(x)
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _compact(x):
    """Up to three significant figures without trailing zeros, for axis
    ticks, where '1.00 ms' would only add noise: '1', '2.5', '100'."""
    return f"{float(_sig3(x)):g}"


def _scaled(value, steps, compact=False):
    """Picks the largest unit of steps ((factor, name), ascending) that keeps
    the number at or above 1, so values never print as 0.00x of a unit."""
    sig = _compact if compact else _sig3
    factor, name = steps[0]
    for f, n in steps:
        if abs(value) >= f * 0.9995:
            factor, name = f, n
    text = sig(value / factor)
    if text == "1000" and factor != steps[-1][0]:
        nxt = steps[[f for f, _ in steps].index(factor) + 1]
        factor, name = nxt
        text = sig(value / factor)
    return f"{text} {name}"


def is_number(value):
    """True for a finite int or float (bool excluded: JSON true is not a count)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


NS_UNITS = [(1, "ns"), (1e3, "µs"), (1e6, "ms"), (1e9, "s")]
BPS_UNITS = [(1, "B/s"), (1e3, "kB/s"), (1e6, "MB/s"), (1e9, "GB/s"), (1e12, "TB/s")]


def ns(value, compact=False):
    """A duration given in nanoseconds: '812 ns', '43.0 µs', '1.21 ms', '2.50 s'."""
    if not is_number(value):
        return "–"
    return _scaled(value, NS_UNITS, compact)


def bytes_per_second(value, compact=False):
    """A bandwidth in decimal units, as network and disk figures are quoted."""
    if not is_number(value):
        return "–"
    return _scaled(value, BPS_UNITS, compact)


def per_second(value):
    """A message rate: '22.3 k msg/s'."""
    if not is_number(value):
        return "–"
    return _scaled(value, [(1, "msg/s"), (1e3, "k msg/s"), (1e6, "M msg/s"),
                           (1e9, "G msg/s")])


def size(value):
    """A message size in binary units, as the suite's --sizes are given
    ('64 B', '1 KiB', '16 KiB'); exact multiples print without decimals."""
    if not is_number(value):
        return "–"
    value = int(value)
    for factor, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if value >= factor:
            if value % factor == 0:
                return f"{value // factor} {name}"
            return f"{_sig3(value / factor)} {name}"
    return f"{value} B"


def count(value):
    """A plain count or ratio with a sensible number of digits."""
    if not is_number(value):
        return "–"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value)}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def percent_change(value):
    """A signed relative change in percent: '+30.0%', '-4.2%'."""
    if not is_number(value):
        return "–"
    return f"{value:+.1f}%"


def ratio(value):
    """A dimensionless ratio such as measured/floor: '3.2×'."""
    if not is_number(value):
        return "–"
    return f"{_sig3(value)}×" if value >= 1 else f"{value:.2g}×"
