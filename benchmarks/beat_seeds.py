"""Beat the seeds: one search on MNIST, then for each hand-designed seed model the export at
or under its size, retrained on all 60,000 training images and read on the test set.

    ARCHSEARCH_DATA=../shared/data python benchmarks/beat_seeds.py --minutes 90 --seed 15 [--ship]

1. archsearch.search("mnist", budget=20000, epochs=15, jobs=2, timeout=MINUTES) in OUT/study.db.
2. For each seed size (and two stretch rows, 2,000 and 8,000 params), archsearch.export at
   that size (the default pick: the largest trial within one standard error of the best
   validation score). The test set plays no part in choosing.
3. archsearch.train(config, seeds=3, epochs=15): final-epoch test accuracy, mean and std. A
   trial picked for several rows is retrained once.

A row is won when the pick has at most the seed's parameters and a mean test accuracy at least
the seed's published best epoch. Prints the table, writes OUT/results.json (a small summary);
reruns skip the search and the retrains already in OUT. --ship writes each retrained pick into
archsearch/found_presets.json as a preset named by size (mnist-7.3k), replacing the shipped ones.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import archsearch  # noqa: E402
from archsearch.presets import FOUND_FILE, PRESETS, found_name  # noqa: E402

STRETCH = {2000: 99.3, 8000: 99.5}  # size -> the accuracy a stretch row asks for


def rows() -> list[dict]:
    """One row per seed preset (its size and published best-epoch accuracy) and per stretch target."""
    seeds = [{"row": name, "size": int(name.split("-")[1]),
              "target": float(re.match(r"([\d.]+)%", p.reported).group(1))}
             for name, p in PRESETS.items() if p.kind == "seed"]
    stretch = [{"row": f"stretch <= {size:,}", "size": size, "target": acc} for size, acc in STRETCH.items()]
    return sorted(seeds + stretch, key=lambda r: r["size"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=90, help="search time (default 90)")
    ap.add_argument("--seed", type=int, default=0, help="the search's --seed")
    ap.add_argument("--jobs", type=int, default=2, help="search workers (default 2, one per core)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "beat-seeds")
    ap.add_argument("--ship", action="store_true", help="write the retrained picks as presets")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{a.out}/study.db"
    study = archsearch.search("mnist", 20000, epochs=15, trials=1000, timeout=a.minutes * 60, seed=a.seed,
                              jobs=a.jobs, study="beat-seeds", storage=storage)
    table, trained = rows(), {}
    for r in table:
        folder = a.out / f"export-{r['size']}"
        if not (folder / "config.json").exists():
            archsearch.export(study, folder, max_params=r["size"], force=True)
        cfg = json.loads((folder / "config.json").read_text())
        n = cfg["provenance"]["trial"]
        result = a.out / f"train-trial{n}.json"
        if not result.exists():
            result.write_text(json.dumps(archsearch.train(folder / "config.json", seeds=3, epochs=15,
                                                          log=print)))
        trained[n] = {"config": cfg, **json.loads(result.read_text())}
        t = trained[n]
        r.update(trial=n, params=t["params"], mean=t["test_acc_mean"], std=t["test_acc_std"],
                 accs=t["test_accs"], won=t["params"] <= r["size"] and t["test_acc_mean"] >= r["target"])
    print(f"\n{'row':<18} {'size':>7} {'target':>7} {'trial':>5} {'params':>7} {'mean':>7} {'std':>5}  won")
    for r in table:
        print(f"{r['row']:<18} {r['size']:>7,} {r['target']:>7.2f} {r['trial']:>5} {r['params']:>7,} "
              f"{r['mean']:>7.3f} {r['std']:>5.2f}  {'yes' if r['won'] else 'no'}")
    wins = sum(r["won"] for r in table if r["row"].startswith("seed"))
    print(f"\n{wins} of {sum(r['row'].startswith('seed') for r in table)} seed rows won; search: "
          f"{len(study.trials)} trials in {a.minutes:g} min, {a.jobs} workers, seed {a.seed}, {platform.processor()}")
    (a.out / "results.json").write_text(json.dumps({"rows": table, "trials": len(study.trials),
                                                    "minutes": a.minutes, "seed": a.seed}, indent=1))
    if a.ship:
        ship(table, trained)


def ship(table: list[dict], trained: dict) -> None:
    """One preset per retrained pick, with every row it dominates."""
    presets = []
    for n, t in trained.items():
        name = found_name("mnist", t["params"])
        presets.append({
            "name": name, "params": t["params"], "genome": t["config"]["genome"], "train": t["config"]["train"],
            "source": f"archsearch search of MNIST at budget 20,000, trial {n} (benchmarks/beat_seeds.py)",
            "measured": {"test_acc_mean": round(t["test_acc_mean"], 4), "test_acc_std": round(t["test_acc_std"], 4),
                         "test_accs": [round(x, 4) for x in t["test_accs"]], "epochs": t["epochs"],
                         "seeds": t["seeds"], "epoch_seconds": round(t["epoch_seconds"], 1), "device": t["device"],
                         "dominates": [r["row"] for r in table if t["params"] <= r["size"]
                                       and t["test_acc_mean"] >= r["target"]],
                         "command": f"archsearch train --preset {name} --seeds 3"}})
    FOUND_FILE.write_text(json.dumps(sorted(presets, key=lambda p: p["params"]), indent=1) + "\n")
    print(f"shipped {len(presets)} presets to {FOUND_FILE.relative_to(ROOT)}: {', '.join(p['name'] for p in presets)}")


if __name__ == "__main__":
    main()
