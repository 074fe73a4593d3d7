"""Open the finished studies that the benchmark reports read: NAME.db in studies/ (this machine's
searches), else in benchmarks/results/studies/ (the committed copies), so that the record's commands
work on a fresh clone."""
from __future__ import annotations

import sys
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "benchmarks" / "results" / "studies"


def load(names: list[str], folder: Path = ROOT / "studies") -> list[optuna.Study]:
    """The studies, each from folder or else from PUBLISHED; or one line and exit 1 if a database
    is in neither, because optuna.load_study on a missing SQLite file creates an empty one before
    it fails."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    paths = []
    for name in names:
        found = [d / f"{name}.db" for d in (folder, PUBLISHED) if (d / f"{name}.db").is_file()]
        if not found:
            sys.exit(f"{Path(sys.argv[0]).name}: no {name}.db in {folder} or "
                     f"{PUBLISHED.relative_to(ROOT)}/")
        paths.append(found[0])
    return [optuna.load_study(study_name=n, storage=f"sqlite:///{p}") for n, p in zip(names, paths)]
