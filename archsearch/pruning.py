"""Multi-objective asynchronous successive halving (MO-ASHA), as pure functions.

Optuna forbids `trial.report` in multi-objective studies, so the search decides
pruning itself. Rungs sit at epochs r0 * eta^k below the last epoch (r0=1, eta=3,
15 epochs: 1, 3, 9). A trial reaching a rung is compared with the `size_peers` trials
nearest to it in params (by ratio) that reached the rung, and continues if its accuracy
there is in their top 1/eta. Until `min_peers` trials have reached a rung, nobody is
pruned there. After Schmucker et al. 2021, "Multi-objective ASHA".

Why size neighbourhoods and not the whole rung's Pareto ranks: ranked against the whole
rung, a large model is off the front as soon as any smaller one matches it, and large
models start slower: 13 of 19 trials above 12k params were cut at epoch 1 in one search
and its front stopped at 11.9k. Replayed on its epoch-1 accuracies, 12 neighbours kept 10
of those 19 and about as many trials overall, so the cut is spread over the sizes.

Also the 2-D hypervolume that the dashboard and the benchmarks measure fronts by.
"""
from __future__ import annotations

import math


def rungs(max_epochs: int, r0: int = 1, eta: int = 3) -> list[int]:
    out, r = [], r0
    while r < max_epochs:
        out.append(r)
        r *= eta
    return out


def dominates(a: tuple[float, int], b: tuple[float, int]) -> bool:
    """a = (accuracy, params) dominates b: no worse in both, better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def nondominated_ranks(points: list[tuple[float, int]]) -> list[int]:
    """Front index per point (0 = Pareto front). O(n^2) per front: rungs hold hundreds at most."""
    ranks = [-1] * len(points)
    left, front = set(range(len(points))), 0
    while left:
        current = {i for i in left if not any(dominates(points[j], points[i]) for j in left if j != i)}
        for i in current:
            ranks[i] = front
        left -= current
        front += 1
    return ranks


def nearest_in_size(me: tuple[float, int], peers: list[tuple[float, int]], n: int) -> list[tuple[float, int]]:
    """The n peers whose params are nearest to me's, by ratio (log distance)."""
    return sorted(peers, key=lambda p: abs(math.log(p[1] / me[1])))[:n]


def keeps(me: tuple[float, int], peers: list[tuple[float, int]], eta: int = 3, min_peers: int = 4,
          last_rung: bool = False, size_peers: int = 12) -> bool:
    """Should a trial at (accuracy, params) continue past this rung, given the other
    trials' (accuracy, params) at the same rung (`peers` excludes `me`)?

    Only the size_peers trials nearest in params count, ranked by accuracy (ties: fewer
    params). last_rung: a trial on its neighbourhood's front always continues; by the last
    rung it has run most of its epochs, and cutting it there threw away front members."""
    points = [me, *nearest_in_size(me, peers, size_peers)]
    if len(points) < min_peers:
        return True
    if last_rung and nondominated_ranks(points)[0] == 0:
        return True
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], points[i][1], i != 0))  # `me` first among equals
    return order.index(0) < math.ceil(len(points) / eta)


def hypervolume(points: list[tuple[float, int]], ref: tuple[float, int]) -> float:
    """Area dominated by (accuracy %, params) points, up to ref = (worst accuracy, most params).

    In units of accuracy-points x parameters. Points worse than ref in either
    objective add nothing.
    """
    pts = sorted((p for p in points if p[0] > ref[0] and p[1] < ref[1]), key=lambda p: p[1])
    area, best = 0.0, ref[0]
    for i, (acc, params) in enumerate(pts):  # sweep from small to large models
        best = max(best, acc)
        right = pts[i + 1][1] if i + 1 < len(pts) else ref[1]
        area += (best - ref[0]) * (right - params)
    return area
