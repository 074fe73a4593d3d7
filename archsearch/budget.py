"""Fit a layout to a parameter budget by scaling all its widths with one multiplier.

A layout is a Genome whose widths are relative (any positive numbers, floats
allowed): width_i = max(min_width, round(m * base_i)). The last Conv/Linear is the
classifier and keeps num_classes outputs. The parameter count is non-decreasing
in m (every term is a product or sum of non-negative widths), so bisection finds
the largest m whose exact count is <= budget. Rounding then leaves slack; each
layer may take one more channel (ceil instead of round) while the count still
fits, largest shortfall first, so proportions stay within one channel of m * base.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .genome import Conv, Genome, GenomeError, Linear
from .model import count_params

MIN_WIDTH = 2  # narrowest conv a scaled layout may get; 1-channel layers starve BN


class DoesNotFit(GenomeError):
    def __init__(self, min_params: int, budget: int):
        self.min_params = min_params
        super().__init__(f"layout needs at least {min_params:,} parameters at minimum widths; budget is {budget:,}")


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


def fit_to_budget(layout: Genome, budget: int, min_width: int = MIN_WIDTH) -> Fit:
    """Largest scaling of `layout` with count_params <= budget, or DoesNotFit."""
    count = lambda m, bump=frozenset(): count_params(scale(layout, m, min_width, bump))
    smallest = count(0.0)
    if smallest > budget:
        raise DoesNotFit(smallest, budget)
    lo, hi = 0.0, 1.0
    while count(hi) <= budget:
        lo, hi = hi, hi * 2
        if hi > 2 ** 24:  # nothing scales (no hidden layers): the layout is what it is
            return Fit(scale(layout, lo, min_width), count(lo), lo)
    for _ in range(40):  # 2^-40 relative precision on m: far below one channel
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count(mid) <= budget else (lo, mid)
    # Rounding slack: give one extra channel to layers rounded down the most.
    shortfall = sorted(scalable(layout), key=lambda i: round(lo * layout.layers[i].out) - lo * layout.layers[i].out)
    bump: frozenset = frozenset()
    for i in shortfall:
        if count(lo, bump | {i}) <= budget:
            bump = bump | {i}
    g = scale(layout, lo, min_width, bump)
    return Fit(g, count_params(g), lo)
