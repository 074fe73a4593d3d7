"""Open the finished studies that the benchmark reports read: NAME.db in studies/ (this machine's
searches) or in benchmarks/results/studies/ (the committed copies)."""
from __future__ import annotations

import sys
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "benchmarks" / "results" / "studies"


def load(names: list[str], folder: Path = ROOT / "studies") -> list[optuna.Study]:
    """The studies; or one line and exit 1 if a database is missing, because
    optuna.load_study on a missing SQLite file creates an empty one before it fails."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in names:
        if not (folder / f"{name}.db").is_file():
            sys.exit(f"{Path(sys.argv[0]).name}: no {folder / name}.db; "
                     f"copies of the published studies are in {PUBLISHED.relative_to(ROOT)}/")
    return [optuna.load_study(study_name=n, storage=f"sqlite:///{folder}/{n}.db") for n in names]
