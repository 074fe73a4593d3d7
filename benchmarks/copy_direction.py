"""Do rescaled copies (space.SizeSweep) do better shrunk from a larger front model or grown from a
smaller one? And what would "always copy the nearest front model at or above the copy's size" change?

    python benchmarks/copy_direction.py [--since 9] [--until 41]

For each COMPLETE copy in the committed studies: its validation accuracy minus the front's line at
its size, where the line joins (in log params) the front points just below and just above it, the
front being the COMPLETE trials numbered before the copy (two workers run at once, so this is the
front the sampler saw, give or take the one trial running beside it). A copy outside the front's
size range is left out. "down": its template had more params than it; "up": fewer.
docs/search-record.md ("After v41: copying down or up") quotes the output.
"""
from __future__ import annotations

import argparse
import math
import statistics as st

from _studies import load
from optuna.trial import TrialState

from archsearch.pruning import dominates

NEAR = 0.15  # |log(template params / copy params)| below this is a near copy (1.16x)


def front(trials) -> list:
    return [t for t in trials if not any(dominates(o.values, t.values) for o in trials)]


def above_line(copy, prior) -> float | None:
    """The copy's validation accuracy (%) minus the prior front's line at its params, or None."""
    pts = sorted((t.values[1], t.values[0]) for t in front(prior))
    below = [p for p in pts if p[0] <= copy.values[1]]
    above = [p for p in pts if p[0] > copy.values[1]]
    if not below or not above:
        return None
    (p0, a0), (p1, a1) = below[-1], above[0]
    w = math.log(copy.values[1] / p0) / math.log(p1 / p0)
    return copy.values[0] - (a0 + w * (a1 - a0))


def main(since: int, until: int) -> None:
    names = [f"mnist-b20000-v{v}" for v in range(since, until + 1)]
    rows, regrown = [], []  # (direction, |log size ratio|, above line); up copies' nearest template above
    for study in load(names):
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        for t in trials:
            if "rescaled_from" not in t.user_attrs:
                continue
            template, prior = trials[t.user_attrs["rescaled_from"]], [o for o in done if o.number < t.number]
            frac = t.params["size_frac"]
            if template.params["size_frac"] < frac:  # where would "nearest at or above" have gone?
                up = [o.params["size_frac"] for o in front([o for o in prior if "size_frac" in o.params])
                      if o.params["size_frac"] >= frac]
                regrown.append(min((math.log(f / frac) for f in up), default=None))
            if t.state != TrialState.COMPLETE or (gain := above_line(t, prior)) is None:
                continue
            ratio = template.user_attrs["params"] / t.values[1]
            rows.append(("down" if ratio > 1 else "up", abs(math.log(ratio)), gain))
    print(f"searches v{since}-v{until}: COMPLETE copies inside the prior front's size range, validation "
          f"accuracy minus the front's line at their size (percentage points)")
    print("| direction | distance | copies | mean (sd) | median | above the line |")
    print("|---|---|---:|---:|---:|---:|")
    for d in ("down", "up"):
        for label, sel in (("all", lambda r: True), (f"near (< {math.exp(NEAR):.2f}x)", lambda r: r[1] < NEAR),
                           ("far", lambda r: r[1] >= NEAR)):
            g = [r[2] for r in rows if r[0] == d and sel(r)]
            print(f"| {d} | {label} | {len(g)} | {st.mean(g):+.3f} ({st.stdev(g):.3f}) | {st.median(g):+.3f} "
                  f"| {sum(x > 0 for x in g)} ({sum(x > 0 for x in g) / len(g):.0%}) |")
    dist = sorted(x for x in regrown if x is not None)
    q = {p: math.exp(dist[int(p * len(dist))]) for p in (0.25, 0.5, 0.75)}
    print(f"\n{len(regrown)} copies grown from a smaller template. Under 'nearest front model at or above': "
          f"{len(regrown) - len(dist)} would have had none above (and grown anyway); the other {len(dist)} "
          f"would have shrunk by " + ", ".join(f"{v:.2f}x" for v in q.values()) + " (quartiles)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--since", type=int, default=9, help="first search (default 9: the first with copies committed)")
    ap.add_argument("--until", type=int, default=41, help="last search (default 41)")
    a = ap.parse_args()
    main(a.since, a.until)
