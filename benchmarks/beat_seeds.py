"""Issue 6's measurement: one search on MNIST, then export's pick at or under each
seed's size retrained on the full training set, seed by seed against the hand designs.

1. `archsearch run --budget 20000 --epochs 15 --trials N --timeout T --jobs 2 --starts 6`
   (default N 200, T 5400 s: no new trial starts after 90 minutes; the last one finishes).
2. For each seed size (and the two stretch rows, 2,000 and 8,000), `archsearch export
   --max-params P`: export's default pick at or under P, the largest trial within one
   standard error of the best *validation* score (since change 34; v15-v42 took the best;
   with --rescore K: the best of the top K by the mean of 2 fresh validation runs each; default
   0, as export's own: re-scoring v11's picks won fewer rows, not more, docs/search-record.md
   "Re-scoring v11"). --export-retrain passes export's --retrain, for a study copied here
   without its trained weights.
3. `archsearch train --config .../config.json --epochs 15 --seeds 3` on the full
   60,000 training images: final-epoch test accuracy, mean +- std. A trial picked for
   several rows is retrained once. Exports (with their re-scoring) and retrains run two at
   a time (--lanes), one thread each.

Every step runs the real CLI and leaves its output under --work (default
runs/beat-seeds/); a rerun skips what is already there, so an interrupted benchmark
resumes after its search (an interrupted search is not resumed: it is one timed run). Prints the table and writes it to benchmarks/results/beat_seeds.md.

    python benchmarks/beat_seeds.py [--minutes 90] [--work runs/beat-seeds] [--first 7932,...] [--seed N] [--ship]

--ship also writes archsearch/found_presets.json: each retrained model as a preset
named by dataset and size (mnist-7.9k), with its recipe and measured accuracy; presets
shipped from other studies stay.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from archsearch.presets import FOUND_FILE, PRESETS, found_name  # noqa: E402

STRETCH = {8000: 99.5, 2000: 99.3}  # size -> accuracy the stretch rows ask for


def cli(*args: str, log: Path) -> str:
    """Run archsearch; its stdout is returned and, with stderr, appended to `log`. A failure exits."""
    cmd = [sys.executable, "-m", "archsearch", *args]
    print("$ archsearch " + " ".join(args), flush=True)
    t0 = time.time()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    with log.open("a") as f:
        f.write(f"$ archsearch {' '.join(args)}\n{r.stdout}{r.stderr}\n# exit {r.returncode}, "
                f"{time.time() - t0:.0f} s\n\n")
    if r.returncode:
        sys.exit(f"archsearch {args[0]} failed ({r.returncode}): {r.stderr.strip().splitlines()[-1:]}; see {log}")
    return r.stdout


def in_lanes(chains: list[list[tuple[str, list[str]]]], work: Path, lanes: int, log: Path) -> dict[str, int]:
    """Run `archsearch ARGS` for each (name, ARGS) job, `lanes` chains at a time: the jobs of
    one chain one after another, the chains side by side, the cores split between them
    (OMP_NUM_THREADS): small models do not keep 2 threads busy (2 search workers x 1 thread
    ran 1.19x the trials/min of 1 x 2 threads on 2 cores, benchmarks/results/jobs_throughput.txt).
    Job NAME's stdout goes to NAME.part, renamed to NAME when it exits 0; its stderr to
    NAME.err. Returns each job's exit code."""
    todo = [list(c) for c in chains if c]  # consumed from the front
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // lanes))}
    running: list[tuple[list, str, subprocess.Popen, float]] = []  # (rest of its chain, name, process, start)
    codes = {}

    def start(chain: list) -> None:
        name, args = chain.pop(0)
        print(f"$ archsearch {' '.join(args)}  (lane: {name})", flush=True)
        with (work / f"{name}.part").open("w") as out, (work / f"{name}.err").open("w") as err:
            p = subprocess.Popen([sys.executable, "-m", "archsearch", *args], cwd=ROOT, env=env,
                                 stdout=out, stderr=err)
        running.append((chain, name, p, time.time()))

    while todo or running:
        while todo and len(running) < lanes:
            start(todo.pop(0))
        time.sleep(2)
        for r in [r for r in running if r[2].poll() is not None]:
            running.remove(r)
            chain, name, p, t0 = r
            codes[name] = p.returncode
            with log.open("a") as f:
                f.write(f"$ archsearch {' '.join(p.args[3:])}\n# exit {p.returncode}, {time.time() - t0:.0f} s; "
                        f"stdout in {work}/{name}{'.part' if p.returncode else ''}, stderr in {work}/{name}.err\n\n")
            if not p.returncode:
                (work / f"{name}.part").rename(work / name)
            if chain:
                start(chain)
    return codes


def seed_rows() -> list[tuple[int, str]]:
    """(params, preset name) of each seed preset, smallest first: the table's seed rows. A seed's
    size is in its name (seed-7932)."""
    return sorted((int(name.split("-")[1]), name) for name in PRESETS if name.startswith("seed-"))


def reported_best(preset) -> float:
    """A seed's headline accuracy (its best epoch, picked on the test set) from its write-up."""
    return float(re.match(r"([\d.]+)%", preset.reported).group(1))


def row_sizes(value: str) -> set[int]:
    """--first's value: comma-separated row sizes (params), e.g. 7932,18970."""
    try:
        return {int(x) for x in value.split(",")}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of row sizes, e.g. 7932,18970")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=20000)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=90.0, help="no new search trial starts after this")
    ap.add_argument("--study", default="mnist-b20000-beat-seeds")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2, help="search workers (2 cores: 1.19x the trials of 1, "
                                                         "benchmarks/results/jobs_throughput.txt)")
    ap.add_argument("--rescore", type=int, default=0, metavar="K",
                    help="export --rescore K: pick each row's model among the top K by the mean of 2 fresh "
                         "validation runs (docs/search-record.md change 12; default 0, as export's: by the "
                         "search's one run)")
    ap.add_argument("--starts", type=int, default=6, metavar="N",
                    help="run --starts N: warm-start trials first (default 6, run's own; docs/search-record.md "
                         "change 19)")
    ap.add_argument("--seed", type=int, default=0,
                    help="run --seed N: the sampler's seed and each trial's training seed (default 0, run's own). "
                         "A search is repeatable: v29 at seed 0 trained v25's first 36 trials exactly "
                         "(docs/search-record.md), so another seed is what measures search-to-search noise")
    ap.add_argument("--lanes", type=int, default=2, help="exports and retrains run at once (default 2)")
    ap.add_argument("--first", type=row_sizes, default=set(), metavar="SIZE,...",
                    help="retrain these rows' picks first (e.g. the rows a change is meant to win, when the "
                         "session may end before all retrains do); the rest follow by FLOPs")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "beat-seeds")
    ap.add_argument("--ship", action="store_true", help="write the retrained models as presets")
    ap.add_argument("--export-retrain", action="store_true",
                    help="export --retrain: for a study whose trained weights are not on this machine "
                         "(e.g. a copy from benchmarks/results/studies/); costs one training per row")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    log = a.work / "log.txt"

    # 1. The search (skipped once it has finished: a rerun would extend it).
    search_file = a.work / "search.json"
    if not search_file.exists() and (ROOT / "studies" / f"{a.study}.db").exists():
        # A second `run` would add trials to it under a fresh timeout, and the table would
        # report only the second part's N and wall time.
        sys.exit(f"study {a.study} exists but {search_file} does not (an interrupted search?): "
                 f"one timed search cannot be resumed; use a new --study or remove studies/{a.study}.db")
    # One list for the command that runs and the one the table reports (--seed only when not run's own).
    run_args = ["run", "--budget", str(a.budget), "--epochs", "15", "--trials", str(a.trials),
                "--timeout", str(int(a.minutes * 60)), "--study", a.study, "--jobs", str(a.jobs),
                "--starts", str(a.starts), *(["--seed", str(a.seed)] if a.seed else [])]
    if not search_file.exists():
        t0 = time.time()
        out = cli(*run_args, log=log)
        search_file.write_text(json.dumps({"wall_s": round(time.time() - t0), "stdout": out}))
    search = json.loads(search_file.read_text())
    front = json.loads(cli("pareto", "--study", a.study, "--json", log=log))

    # 2. Per row: export the best at or under the size (None: no COMPLETE trial fits).
    rows = seed_rows() + [(size, None) for size in STRETCH]
    exports = {}
    # Two chains of rows, the small ones upwards and the large ones downwards: rows next to
    # each other share most of their top trials, so each chain re-scores them once, and the
    # two chains share candidates only where they meet.
    sizes = sorted(size for size, _ in rows)
    chains, size_of = [[], []], {}  # size_of: job name -> its row's size
    for size in sizes:
        export = a.work / f"export-{size}"
        if (export / "config.json").exists():
            exports[size] = export
            continue
        size_of[f"export-{size}.txt"] = size
        chains[size > sizes[len(sizes) // 2]].append(
            (f"export-{size}.txt", ["export", "--study", a.study, "--max-params", str(size), "--out", str(export),
                                    "--force", *(["--rescore", str(a.rescore)] if a.rescore else []),
                                    *(["--retrain"] if a.export_retrain else [])]))
    chains[1].reverse()
    for name, code in in_lanes(chains, a.work, a.lanes, log).items():
        size = size_of[name]
        if code:  # archsearch's one-line reason, e.g. no COMPLETE trial at or under this size
            print(f"  export --max-params {size}: " + ((a.work / f"{name}.err").read_text().strip().splitlines()
                                                      or ["(no message)"])[-1])
        else:
            exports[size] = a.work / f"export-{size}"

    # 3. Retrain each trial once, `--lanes` at a time, the --first rows' picks first, then the
    # most FLOPs first: the longest retrains start at once and the short ones fill in after,
    # instead of one long retrain running alone at the end.
    cfgs = {size: json.loads((export / "config.json").read_text()) for size, export in exports.items()}
    todo = {}
    for size, cfg in sorted(cfgs.items(), key=lambda sc: (sc[0] not in a.first, -sc[1]["metrics"]["flops"])):
        trial = cfg["provenance"]["trial"]
        if not (a.work / f"train-trial{trial}.json").exists():
            todo.setdefault(f"train-trial{trial}.json", ["train", "--config", str(exports[size] / "config.json"),
                                                          "--epochs", "15", "--seeds", str(a.seeds), "--json"])
    failed = [name for name, code in in_lanes([[job] for job in todo.items()], a.work, a.lanes, log).items() if code]
    if failed:
        sys.exit(f"archsearch train failed for {', '.join(failed)}; see their .err files in {a.work}")

    results = []
    for size, seed in sorted(rows):
        row = {"row": seed or f"stretch <= {size:,}", "size": size,
               "target": reported_best(PRESETS[seed]) if seed else STRETCH[size]}
        if size not in exports:
            results.append({**row, "trial": None, "beats": False})
            continue
        cfg = cfgs[size]
        trial = cfg["provenance"]["trial"]
        r = json.loads((a.work / f"train-trial{trial}.json").read_text())
        results.append({**row, "export": str(exports[size]), "trial": trial, "params": r["params"],
                        "mean": r["test_acc_mean"], "std": r["test_acc_std"], "accs": r["test_accs"],
                        "epoch_s": r["epoch_seconds"], "val": cfg["metrics"]["val_acc"],
                        "beats": r["params"] <= size and r["test_acc_mean"] >= row["target"]})

    work = a.work.resolve()
    work = work.relative_to(ROOT) if work.is_relative_to(ROOT) else work  # as the table prints it
    trials = [line for line in search["stdout"].splitlines() if line.startswith("#") and "not run" not in line]
    complete = sum(" COMPLETE " in line for line in trials)
    pruned = sum("PRUNED at" in line for line in trials)
    lines = [f"# Seeds vs archsearch ({platform.machine()}, {platform.processor() or 'cpu'}, "
             f"{time.strftime('%Y-%m-%d')})", "",
             f"Search: `archsearch {' '.join(run_args)}`: N = {len(trials)} trials in "
             f"{search['wall_s'] / 60:.1f} min ({complete} complete, {pruned} pruned by the pruner, "
             f"{len(trials) - complete - pruned} infeasible or failed); front of {len(front)} models.",
             f"Pick: `archsearch export --study {a.study} --max-params SIZE"
             f"{f' --rescore {a.rescore}' if a.rescore else ''}`"
             f"{f' (the best of the top {a.rescore} by 2 fresh validation runs)' if a.rescore else ''}.",
             f"Retrain: `archsearch train --config {work}/export-SIZE/config.json --epochs 15 --seeds "
             f"{a.seeds}` (full 60,000 training images, final epoch, test set).", "",
             "| seed | seed params | seed acc (best epoch) | our trial | our params | our acc (final, mean ± std) "
             "| runs | dominates |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        seed_acc = f"{r['target']:.2f}%" if not str(r["row"]).startswith("stretch") else f"target {r['target']}%"
        if r["trial"] is None:
            lines.append(f"| {r['row']} | {r['size']:,} | {seed_acc} | - | none complete at this size | | | no |")
            continue
        lines.append(f"| {r['row']} | {r['size']:,} | {seed_acc} | {r['trial']} | {r['params']:,} | "
                     f"{r['mean']:.3f} ± {r['std']:.2f}% | {', '.join(f'{x:.2f}' for x in r['accs'])} | "
                     f"{'yes' if r['beats'] else 'no'} |")
    table = "\n".join(lines)
    print(table)
    out = ROOT / "benchmarks" / "results" / "beat_seeds.md"
    out.write_text(table + "\n")
    (a.work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nwritten to {out.relative_to(ROOT)}; {sum(r['beats'] for r in results)} of {len(results)} rows dominated")
    if a.ship:
        ship(results, a)


def ship(results: list[dict], a) -> None:
    """One preset per retrained trial, with every row it dominates (not only the rows it was
    picked for: a smaller, more accurate model dominates a larger seed too). Presets of other
    studies stay: a name a user has trained from keeps working."""
    by_trial = {r["trial"]: r for r in results if r["trial"] is not None}
    source = f"archsearch study {a.study} trial"
    kept = [p for p in json.loads(FOUND_FILE.read_text()) if not p["source"].startswith(source + " ")] \
        if FOUND_FILE.exists() else []
    presets = []
    for t in by_trial.values():
        cfg = json.loads((Path(t["export"]) / "config.json").read_text())
        trained = json.loads((a.work / f"train-trial{t['trial']}.json").read_text())
        rows = [r["row"] for r in results if t["params"] <= r["size"] and t["mean"] >= r["target"]]
        name = found_name("mnist", t["params"])
        presets.append({
            "name": name, "params": t["params"], "genome": cfg["genome"], "train": cfg["train"],
            "source": f"{source} {t['trial']} (benchmarks/beat_seeds.py)",
            "measured": {"test_acc_mean": round(t["mean"], 4), "test_acc_std": round(t["std"], 4),
                         "test_accs": [round(x, 4) for x in t["accs"]], "epochs": trained["epochs"],
                         "seeds": trained["seeds"], "epoch_seconds": round(t["epoch_s"], 1),
                         "device": f"{trained['device']} ({platform.machine()})", "dominates": rows,
                         "command": f"archsearch train --preset {name} --seeds 3"}})
    clash = {p["name"] for p in presets} & {p["name"] for p in kept}
    if clash:
        sys.exit(f"--ship: {', '.join(sorted(clash))} already shipped from another study; remove it from "
                 f"{FOUND_FILE.relative_to(ROOT)} first if this search's model should replace it")
    FOUND_FILE.write_text(json.dumps(sorted(kept + presets, key=lambda p: p["params"]), indent=1) + "\n")
    print(f"shipped {len(presets)} presets to {FOUND_FILE.relative_to(ROOT)} ({len(kept)} of other studies "
          f"kept): {', '.join(p['name'] for p in presets)}")


if __name__ == "__main__":
    main()
