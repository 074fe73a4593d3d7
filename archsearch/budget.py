"""Fit a layout to a parameter budget (and optional MAC and RAM limits) by scaling all its
widths with one multiplier.

A layout is a Genome whose widths are relative (any positive numbers, floats
allowed): width_i = max(min_width, round(m * base_i)). The last Conv/Linear is the
classifier and keeps num_classes outputs. The parameter count, the MACs and the peak
activation memory are all non-decreasing in m (sums and maxima of products of
non-negative widths), so bisection finds the largest m whose exact figures fit every
limit. Rounding then leaves slack; each layer may take one more channel (ceil instead of
round) while everything still fits, largest shortfall first, so proportions stay within
one channel of m * base.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .genome import Conv, Genome, GenomeError, Linear
from .model import count_flops, count_params, peak_ram

MIN_WIDTH = 2  # narrowest conv a scaled layout may get; 1-channel layers starve BN


class DoesNotFit(GenomeError):
    def __init__(self, min_params: int, budget: int, limit: str | None = None):
        """limit: what the smallest form breaks, when it is not the parameter budget (a MAC or RAM limit)."""
        self.min_params, self.limit = min_params, limit
        super().__init__(limit or f"layout needs at least {min_params:,} parameters at minimum widths; budget is "
                                  f"{budget:,}")


def over_limits(g: Genome, max_macs: int | None = None, max_ram: int | None = None) -> str | None:
    """What a genome breaks of the MAC and RAM limits, in words, or None."""
    if max_macs is not None and (macs := count_flops(g)) > max_macs:
        return f"{macs:,} MACs per image at minimum widths, over the limit of {max_macs:,}"
    if max_ram is not None and (ram := peak_ram(g)) > max_ram:
        return f"{ram:,} bytes of peak RAM at minimum widths, over the limit of {max_ram:,}"
    return None


@dataclass(frozen=True)
class Fit:
    genome: Genome
    params: int
    multiplier: float


def scalable(layout: Genome) -> list[int]:
    """Indices of the layers whose width scales: every Conv/Linear but the classifier."""
    idx = [i for i, l in enumerate(layout.layers) if isinstance(l, (Conv, Linear))]
    return idx[:-1]


def scale(layout: Genome, m: float, min_width: int = MIN_WIDTH, bump: frozenset = frozenset()) -> Genome:
    layers = list(layout.layers)
    for i in scalable(layout):
        w = max(min_width, round(m * layers[i].out) + (i in bump))
        layers[i] = replace(layers[i], out=int(w))
    last = max(i for i, l in enumerate(layers) if isinstance(l, (Conv, Linear)))
    layers[last] = replace(layers[last], out=layout.num_classes)
    return replace(layout, layers=tuple(layers))


def fit_to_budget(layout: Genome, budget: int, min_width: int = MIN_WIDTH, max_macs: int | None = None,
                  max_ram: int | None = None) -> Fit:
    """Largest scaling of `layout` with count_params <= budget (and MACs <= max_macs, peak RAM
    <= max_ram where given), or DoesNotFit."""
    def fits(m: float, bump: frozenset = frozenset()) -> bool:
        g = scale(layout, m, min_width, bump)
        return count_params(g) <= budget and over_limits(g, max_macs, max_ram) is None

    smallest = scale(layout, 0.0, min_width)
    if count_params(smallest) > budget or over_limits(smallest, max_macs, max_ram):
        raise DoesNotFit(count_params(smallest), budget, over_limits(smallest, max_macs, max_ram))
    lo, hi = 0.0, 1.0
    while fits(hi):
        lo, hi = hi, hi * 2
        if hi > 2 ** 24:  # nothing scales (no hidden layers): the layout is what it is
            g = scale(layout, lo, min_width)
            return Fit(g, count_params(g), lo)
    for _ in range(40):  # 2^-40 relative precision on m: far below one channel
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    # Rounding slack: give one extra channel to layers rounded down the most.
    shortfall = sorted(scalable(layout), key=lambda i: round(lo * layout.layers[i].out) - lo * layout.layers[i].out)
    bump: frozenset = frozenset()
    for i in shortfall:
        if fits(lo, bump | {i}):
            bump = bump | {i}
    g = scale(layout, lo, min_width, bump)
    return Fit(g, count_params(g), lo)
