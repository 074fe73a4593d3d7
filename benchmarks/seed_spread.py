"""How far apart the table's 3-seed means can land for one model: each model retrained once per
seed (`archsearch train --epochs 15 --seed S --seeds 1`, the table's protocol one seed at a
time), final-epoch test accuracy, and the share of all 3-seed subsets whose mean reaches the
target, which is what decides a row of benchmarks/beat_seeds.py's table.

    ARCHSEARCH_DATA=../shared/data python benchmarks/seed_spread.py --seeds 6 --target 99.44 \\
        seed-7932 benchmarks/results/diag_samepad7881_config.json

Each MODEL is a preset name or a config.json. Runs go two at a time (one thread each) and are
kept in --work, so a cut run resumes where it stopped.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
from pathlib import Path

from beat_seeds import ROOT, in_lanes


def cpu_name() -> str:
    """The CPU's model name (runs repeat to the hundredth on one kind of CPU, not across kinds)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", metavar="MODEL", help="a preset name or a config.json")
    ap.add_argument("--seeds", type=int, default=6, help="runs per model, seeds 0..N-1 (default 6)")
    ap.add_argument("--target", type=float, required=True, help="the accuracy a 3-seed mean must reach (%%)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "seed-spread")
    ap.add_argument("--lanes", type=int, default=2)
    a = ap.parse_args()
    if a.seeds < 3:
        sys.exit("seed_spread.py: --seeds must be at least 3 (the table averages 3)")

    def label(m: str) -> str:
        return Path(m).stem if m.endswith(".json") else m

    # Runs are stored by label: two models with one label would read each other's runs.
    labels = [label(m) for m in a.models]
    shared = sorted({x for x in labels if labels.count(x) > 1})
    if shared:
        sys.exit(f"seed_spread.py: models share a file name ({', '.join(shared)}); copy one config under another name")
    a.work.mkdir(parents=True, exist_ok=True)

    def job(m: str, seed: int) -> tuple[str, list[str]]:
        source = ["--config", str(Path(m).resolve())] if m.endswith(".json") else ["--preset", m]
        return f"{label(m)}-seed{seed}.json", ["train", *source, "--epochs", "15", "--seed", str(seed),
                                                "--seeds", "1", "--json"]

    jobs = [job(m, s) for s in range(a.seeds) for m in a.models]  # every model's seed 0 first
    todo = [[j] for j in jobs if not (a.work / j[0]).exists()]
    failed = [n for n, code in in_lanes(todo, a.work, a.lanes, a.work / "log.txt").items() if code]
    if failed:
        sys.exit(f"seed_spread.py: archsearch train failed for {', '.join(failed)}; see their .err files in {a.work}")

    print(f"{cpu_name()}, {os.cpu_count()} cores, {a.lanes} lanes; target {a.target}% for a 3-seed mean\n")
    print(f"| model | params | test acc by seed (0..{a.seeds - 1}) | mean ± std | 3-seed means: range | "
          f"3-seed subsets >= {a.target} |")
    print("|---|---:|---|---:|---:|---:|")
    for m in a.models:
        runs = [json.loads((a.work / job(m, s)[0]).read_text()) for s in range(a.seeds)]
        accs = [r["test_accs"][0] for r in runs]
        means = [statistics.mean(c) for c in itertools.combinations(accs, 3)]
        hits = sum(x >= a.target - 1e-9 for x in means)
        print(f"| {label(m)} | {runs[0]['params']:,} | {', '.join(f'{x:.2f}' for x in accs)} | "
              f"{statistics.mean(accs):.3f} ± {statistics.stdev(accs):.3f} | {min(means):.3f}-{max(means):.3f} | "
              f"{hits} of {len(means)} |")


if __name__ == "__main__":
    main()
