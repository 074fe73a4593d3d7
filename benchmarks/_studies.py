"""Open the finished studies that the benchmark reports read: studies/NAME.db under the repository root."""
from __future__ import annotations

import sys
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]


def load(names: list[str]) -> list[optuna.Study]:
    """The studies; or one line and exit 1 if a database is missing, because
    optuna.load_study on a missing SQLite file creates an empty one before it fails."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in names:
        if not (ROOT / "studies" / f"{name}.db").is_file():
            sys.exit(f"{Path(sys.argv[0]).name}: no {ROOT / 'studies' / name}.db; "
                     "copies of the published studies are in benchmarks/results/studies/")
    return [optuna.load_study(study_name=n, storage=f"sqlite:///{ROOT}/studies/{n}.db") for n in names]
