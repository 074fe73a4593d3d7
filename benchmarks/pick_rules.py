"""Two pick rules on the committed searches, judged by each pick's own test accuracy in the
search (one run on 55,000 training images): export's (best validation accuracy, ties to the
smaller model) and the largest model within one binomial standard error of that best.

    python benchmarks/pick_rules.py [SEARCH ...]   (benchmarks/results/studies/mnist-b20000-SEARCH.db)

docs/search-record.md ("Search v20's retrains") quotes its output.
"""
from __future__ import annotations

import argparse
import math
import sys

import optuna

from _studies import ROOT

SEED_SIZES = (4232, 7932, 9798, 10970, 11588, 18214, 18970)  # ../shared/seeds/README.md
VAL_IMAGES = 5000  # the search's validation split


def picks(fits: list) -> tuple:
    best = max(fits, key=lambda t: (t.values[0], -t.values[1]))
    p = best.values[0] / 100
    se = 100 * math.sqrt(p * (1 - p) / VAL_IMAGES)  # points of accuracy
    largest = max((t for t in fits if t.values[0] >= best.values[0] - se), key=lambda t: t.values[1])
    return best, largest


def main(searches: list[str]) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("| search | row | export's pick: params, val, test | largest within 1 SE: params, val, test | test change |")
    print("|---|---:|---|---|---:|")
    changes = []
    for v in searches:
        db = ROOT / "benchmarks" / "results" / "studies" / f"mnist-b20000-{v}.db"
        if not db.is_file():
            sys.exit(f"pick_rules.py: no {db}")
        study = optuna.load_study(study_name=f"mnist-b20000-{v}", storage=f"sqlite:///{db}")
        done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
        for size in SEED_SIZES:
            fits = [t for t in done if t.values[1] <= size]
            if not fits:
                continue
            a, b = picks(fits)
            cell = lambda t: f"{int(t.values[1]):,}, {t.values[0]:.2f}, {t.user_attrs['test_acc']:.2f}"  # noqa: E731
            delta = b.user_attrs["test_acc"] - a.user_attrs["test_acc"]
            if a.number != b.number:
                changes.append(delta)
            print(f"| {v} | {size:,} | {cell(a)} | {cell(b)} | {delta:+.2f} |" if a.number != b.number
                  else f"| {v} | {size:,} | {cell(a)} | same | |")
    print(f"\n{len(changes)} picks change: {sum(d > 0 for d in changes)} up, {sum(d < 0 for d in changes)} down, "
          f"{sum(d == 0 for d in changes)} equal; mean change {sum(changes) / max(1, len(changes)):+.3f} points")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("searches", nargs="*", default=["v15", "v16", "v18", "v19", "v20"], metavar="SEARCH")
    main(parser.parse_args().searches)
