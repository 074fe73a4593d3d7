"""Replay the first pruning rung of finished studies under other rules (docs/search-record.md, change 9).

Each trial is decided against the trials that reached epoch 1 before it (its start time
plus one epoch at its own measured speed), with the accuracies the study recorded. Only
the first rung can be replayed: a trial cut there has no later accuracies.

    python benchmarks/replay_rung.py mnist-b20000-v4 mnist-b20000-v5
"""
from __future__ import annotations

import argparse
import math
import sys
from datetime import timedelta

from _studies import ROOT, load

sys.path.insert(0, str(ROOT))
from archsearch.pruning import keeps  # noqa: E402

CLASSES = [(4000, "<4k"), (8000, "4-8k"), (12000, "8-12k"), (math.inf, ">12k")]


def within_ratio(me, peers, ratio):
    """The alternative not taken: the peers within a size ratio, ranked by accuracy as
    keeps() ranks size peers (size_peers one more than there are, so that it takes them all)."""
    near = [p for p in peers if max(p[1], me[1]) / min(p[1], me[1]) <= ratio]
    return keeps(me, near, size_peers=len(near) + 1)


RULES = {
    "whole rung (--size-peers 0)": lambda me, peers: keeps(me, peers),
    "12 nearest in size (--size-peers 12)": lambda me, peers: keeps(me, peers, size_peers=12),
    "within 1.25x in size": lambda me, peers: within_ratio(me, peers, 1.25),
    "within 1.5x in size": lambda me, peers: within_ratio(me, peers, 1.5),
}


def main(names: list[str]) -> None:
    studies = load(names)
    print("| study | rule | kept at epoch 1: " + " / ".join(c for _, c in CLASSES) + " params | kept in all |")
    print("|---|---|---|---:|")
    for name, study in zip(names, studies):
        trials = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("curve")]
        trials.sort(key=lambda t: t.datetime_start + timedelta(seconds=t.user_attrs.get("epoch_seconds", 0)))
        points = [(t.user_attrs["curve"][0], t.user_attrs["params"]) for t in trials]
        for rule, decide in RULES.items():
            kept = {c: [0, 0] for _, c in CLASSES}
            for i, me in enumerate(points):
                c = next(c for top, c in CLASSES if me[1] < top)
                kept[c][0] += decide(me, points[:i])
                kept[c][1] += 1
            print(f"| {name} | {rule} | " + ", ".join(f"{k}/{n}" for k, n in kept.values())
                  + f" | {sum(k for k, _ in kept.values())} / {len(points)} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="*", default=["mnist-b20000-v4", "mnist-b20000-v5"],
                        metavar="STUDY", help="studies/STUDY.db (default: v4 and v5)")
    main(parser.parse_args().studies)
