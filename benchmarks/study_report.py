"""Compare finished searches side by side: their fronts, and how each learning-rate
schedule fared at the pruning rungs.

    python benchmarks/study_report.py [STUDY ...]   (studies/ or the committed copies; default v3, v4)

Table 1, per study: trials, COMPLETE trials, and the hypervolume of the COMPLETE
trials' (val accuracy %, params) under two reference points (95% and 98%, 20,000 params).
Table 2, per study and schedule: trials with an epoch-1 result, their median epoch-1
validation accuracy, and how many stopped at epoch 1, before epoch 9, or ran 9 or more.
docs/search-record.md quotes its output.
"""
from __future__ import annotations

import argparse
import statistics

import optuna
from _studies import load

from archsearch.pruning import hypervolume

REFS = ((95.0, 20000), (98.0, 20000))  # (worst accuracy %, most params)


def main(names: list[str]) -> None:
    studies = load(names)
    print("| study | trials | complete | " + " | ".join(f"hypervolume, ref {a:g}% / {p:,}" for a, p in REFS) + " |")
    print("|---|---:|---:|" + "---:|" * len(REFS))
    for name, study in zip(names, studies):
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        points = [(t.values[0], int(t.values[1])) for t in done]
        print(f"| {name} | {len(study.trials)} | {len(done)} | "
              + " | ".join(f"{hypervolume(points, ref):,.0f}" for ref in REFS) + " |")
    print()
    print("| study | schedule | trials | median epoch-1 val acc | cut at epoch 1 | cut at 3 | ran >= 9 epochs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, study in zip(names, studies):
        curves: dict[str, list[list[float]]] = {}
        for t in study.trials:
            if t.user_attrs.get("curve"):  # validation accuracy per epoch, in %
                # What it trained: v27's starts (change 29, reverted) trained OneCycle off their parameters.
                trained = t.user_attrs.get("train", {}).get("schedule", t.params.get("schedule", "cosine"))
                curves.setdefault(trained, []).append(t.user_attrs["curve"])
        for schedule, cs in sorted(curves.items()):
            first = statistics.median(c[0] for c in cs)
            print(f"| {name} | {schedule} | {len(cs)} | {first:.1f}% | {sum(len(c) == 1 for c in cs)} "
                  f"| {sum(1 < len(c) < 9 for c in cs)} | {sum(len(c) >= 9 for c in cs)} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="*", default=["mnist-b20000-v3", "mnist-b20000-v4"],
                        metavar="STUDY", help="studies/STUDY.db (default: v3 and v4)")
    main(parser.parse_args().studies)
