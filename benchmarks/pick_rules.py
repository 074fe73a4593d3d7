"""Two pick rules on the committed searches, judged by each pick's own test accuracy in the
search (one run on 55,000 training images): export's (best validation accuracy, ties to the
smaller model) and the largest model within one binomial standard error of that best.

    python benchmarks/pick_rules.py [SEARCH ...]   (benchmarks/results/studies/mnist-b20000-SEARCH.db)

docs/search-record.md ("Search v20's retrains") quotes its output.
"""
from __future__ import annotations

import argparse
import math

from _studies import PUBLISHED, load
from beat_seeds import seed_rows

from archsearch.export import ExportError, pick

SEED_SIZES = [size for size, _ in seed_rows()]
VAL_IMAGES = 5000  # the search's validation split


def largest_within_se(study, size: int, best):
    """The largest COMPLETE trial at or under size whose validation accuracy is within one
    binomial standard error (on VAL_IMAGES images) of best's."""
    p = best.values[0] / 100
    se = 100 * math.sqrt(p * (1 - p) / VAL_IMAGES)  # points of accuracy
    return max((t for t in study.get_trials(deepcopy=False) if t.values and t.values[1] <= size
                and t.values[0] >= best.values[0] - se), key=lambda t: t.values[1])


def cell(t) -> str:
    return f"{int(t.values[1]):,}, {t.values[0]:.2f}, {t.user_attrs['test_acc']:.2f}"


def main(searches: list[str]) -> None:
    studies = load([f"mnist-b20000-{v}" for v in searches], PUBLISHED)
    print("| search | row | export's pick: params, val, test | largest within 1 SE: params, val, test | test change |")
    print("|---|---:|---|---|---:|")
    changes = []
    for v, study in zip(searches, studies):
        for size in SEED_SIZES:
            try:
                a = pick(study, size)  # export --max-params SIZE
            except ExportError:  # no COMPLETE trial at this size
                continue
            b = largest_within_se(study, size, a)
            if a.number == b.number:
                print(f"| {v} | {size:,} | {cell(a)} | same | |")
                continue
            changes.append(b.user_attrs["test_acc"] - a.user_attrs["test_acc"])
            print(f"| {v} | {size:,} | {cell(a)} | {cell(b)} | {changes[-1]:+.2f} |")
    print(f"\n{len(changes)} picks change: {sum(d > 0 for d in changes)} up, {sum(d < 0 for d in changes)} down, "
          f"{sum(d == 0 for d in changes)} equal; mean change {sum(changes) / max(1, len(changes)):+.3f} points")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("searches", nargs="*", default=["v15", "v16", "v18", "v19", "v20"], metavar="SEARCH")
    main(parser.parse_args().searches)
