"""Re-score the top candidates for one pick on fresh training seeds, validation only.

Why: a trial's score is one training run measured on the validation split (5,000
images by default), whose standard error is about 0.1 points at 99% -- as large as
the gaps between the best trials near any size. The most accurate of several such
scores is the luckiest run, not the best model: once the pick for 9,798 params scored
0.24 points above its retrained mean, while a trial it passed over retrained 0.14
points better. Training the top few candidates
again with new seeds and ranking them by the mean of those fresh runs alone removes
the bias of the selection that put them on top (the maximum of K fresh means keeps a
smaller one of its own); the test set is still never read to choose.

The fresh runs are kept in the study, one user attr per run ("rescore:<trial>:<k>"), so
picks that share candidates train each once, an interrupted export resumes, and two
exports at once never overwrite each other's runs (one list per trial did: both read it,
each wrote back its own, and the later write dropped the other's run).
"""
from __future__ import annotations

import statistics
from typing import Callable

import optuna
from optuna.trial import FrozenTrial

from .genome import Genome, TrainConfig
from .engine import Settings, trial_seed
from .trainer import TrainingDiverged, evaluate, fit

# Fresh seeds: the trial's own seed + k * SEED_STRIDE (k = 1, 2, ...), never another trial's seed.
SEED_STRIDE = 1_000_000


def key(number: int, k: int) -> str:
    """Where trial `number`'s k-th fresh run (k = 1, 2, ...) is stored."""
    return f"rescore:{number}:{k}"


def runs(study: optuna.Study, number: int) -> list[dict]:
    """The stored fresh runs of trial `number`, k = 1, 2, ...: [{"seed", "val_acc"}, ...]."""
    attrs, out = study.user_attrs, []
    while key(number, len(out) + 1) in attrs:
        out.append(attrs[key(number, len(out) + 1)])
    return out


def score(study: optuna.Study, number: int, seeds: int) -> float:
    """Mean validation accuracy (%) of the trial's first `seeds` fresh runs."""
    return statistics.mean(r["val_acc"] for r in runs(study, number)[:seeds])


def rescore(study: optuna.Study, trials: list[FrozenTrial], seeds: int, data, precision: str = "fp32",
            log: Callable[[str], None] = lambda s: None) -> None:
    """Train each trial's missing fresh runs (up to `seeds`) on the search's split and
    store each run's final-epoch validation accuracy as soon as it is known.
    `data` must be the search's split (same val_size and train_size)."""
    settings = Settings.of(study)
    for t in trials:
        done = runs(study, t.number)
        for k in range(len(done) + 1, seeds + 1):
            seed = trial_seed(settings, t.number) + k * SEED_STRIDE
            cfg = TrainConfig.from_dict(t.user_attrs["train"])
            try:
                model, _ = fit(Genome.from_dict(t.user_attrs["genome"]), data, cfg, seed, precision)
                acc = round(evaluate(model, data, data.val_x, data.val_y, precision), 4)
            except TrainingDiverged:  # the recipe is unstable on this seed: a real, bad score
                acc = 0.0
            done.append({"seed": seed, "val_acc": acc})
            study.set_user_attr(key(t.number, k), done[-1])
            log(f"trial {t.number} ({int(t.values[1]):,} params, search val {t.values[0]:.2f}%): "
                f"fresh seed {seed}: val {acc:.2f}%")


def best(study: optuna.Study, trials: list[FrozenTrial], seeds: int) -> FrozenTrial:
    """The trial with the highest mean of its fresh runs; ties go to the smaller model."""
    return max(trials, key=lambda t: (score(study, t.number, seeds), -t.values[1]))
