"""Multi-objective asynchronous successive halving (MO-ASHA), as pure functions.

Optuna forbids `trial.report` in multi-objective studies, so the search decides
pruning itself. Rungs sit at epochs r0 * eta^k below the last epoch (r0=1, eta=3,
15 epochs: 1, 3, 9). A trial reaching a rung continues only if, among all trials
that reached that rung so far (itself included), it is in the top 1/eta when
ordered by non-dominated rank of (accuracy at the rung: higher is better,
params: lower is better), ties within a rank broken by crowding distance as in
NSGA-II (the ends of a front and isolated points first), then by accuracy. Until
`min_peers` trials have reached a rung, nobody is pruned there (too little to
compare with). Schmucker et al. 2021, "Multi-objective ASHA".

Also the 2-D hypervolume that the dashboard and the benchmarks measure fronts by.

Why crowding and not accuracy within a rank: a search is warm-started with tuned
seed models. Ranked by accuracy, those fill the top 1/eta of the first front at
every rung, and a smaller sampled model that no seed dominates was still pruned
(measured: 28 of 28 sampled trials in the first real search). Crowding keeps the
parts of the front that nobody else covers.

Size neighbourhoods (`size_peers`, the default since search v6): a trial is compared
only with the `size_peers` trials nearest to it in params (by ratio), and continues if
its accuracy is in their top 1/eta. Ranked against the whole rung, a large model is off
the front as soon as any smaller one matches it, and large models start slower: in
search v5, 13 of the 19 trials above 12k params were cut at epoch 1 (one of them at
98.60%), and the front stopped at 11.9k. Replayed on v5's epoch-1 accuracies, 12
neighbours keep 10 of those 19 (whole rung: 6) and about as many trials overall
(70 of 120 vs 60), so the cut is spread over the sizes rather than made weaker.
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


def crowding(points: list[tuple[float, int]], members: list[int]) -> dict[int, float]:
    """NSGA-II crowding distance of each index in `members` (one front), in (accuracy, params)."""
    out = {i: 0.0 for i in members}
    for axis in (0, 1):
        order = sorted(members, key=lambda i: points[i][axis])
        lo, hi = points[order[0]][axis], points[order[-1]][axis]
        out[order[0]] = out[order[-1]] = math.inf
        for a, i, b in zip(order, order[1:], order[2:]):
            out[i] += (points[b][axis] - points[a][axis]) / (hi - lo) if hi > lo else 0.0
    return out


def nearest_in_size(me: tuple[float, int], peers: list[tuple[float, int]], n: int) -> list[tuple[float, int]]:
    """The n peers whose params are nearest to me's, by ratio (log distance)."""
    return sorted(peers, key=lambda p: abs(math.log(p[1] / me[1])))[:n]


def keeps(me: tuple[float, int], peers: list[tuple[float, int]], eta: int = 3, min_peers: int = 4,
          last_rung: bool = False, size_peers: int = 0) -> bool:
    """Should a trial at (accuracy, params) continue past this rung, given the other
    trials' (accuracy, params) at the same rung (`peers` excludes `me`)?

    size_peers > 0: only the size_peers trials nearest in params count, ranked by
    accuracy (ties: fewer params). 0: all of them, ranked by front and crowding.

    last_rung: a trial on the rung's front always continues. By the last rung it has
    run most of its epochs; cutting it for crowding threw away front members (search
    v3: an 8,051-param trial, non-dominated at 99.28% after epoch 9, was pruned there
    because six front points competed for four places; docs/search-record.md)."""
    if size_peers:
        peers = nearest_in_size(me, peers, size_peers)
    points = [me, *peers]
    if len(points) < min_peers:
        return True
    ranks = nondominated_ranks(points)
    if last_rung and ranks[0] == 0:
        return True
    if size_peers:
        def key(i):  # accuracy, then fewer params; `me` first among equals
            return -points[i][0], points[i][1], i != 0
    else:
        dist: dict[int, float] = {}
        for r in set(ranks):
            dist.update(crowding(points, [i for i, ri in enumerate(ranks) if ri == r]))

        def key(i):
            return ranks[i], -dist[i], -points[i][0], points[i][1], i != 0
    return sorted(range(len(points)), key=key).index(0) < math.ceil(len(points) / eta)


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
