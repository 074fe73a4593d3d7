"""Same wall-clock budget, two searches over the same space: archsearch's default
(multivariate TPE, warm starts, MO-ASHA pruning) vs Optuna's RandomSampler with
no pruning and no warm starts. Compares the hypervolume of the two Pareto fronts and
the best validation accuracy at <= 5k and <= 10k parameters.

    python benchmarks/search_efficiency.py --minutes 20 --budget 10000 \
        --train-size 10000 --epochs 6

Reference point for the hypervolume: (90% validation accuracy, budget params).
The two searches run at the same time, one CPU thread each (two processes), so
both see the same machine load for the same wall clock. Prints both, side by
side, and the ratio.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import sys
import tempfile
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import archsearch  # noqa: E402
from archsearch import default_data_dir  # noqa: E402
from archsearch.pruning import hypervolume  # noqa: E402
from archsearch.trainer import resolve_device  # noqa: E402


def one(kind: str, a, folder: str) -> dict:
    import torch
    torch.set_num_threads(a.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    default = kind == "archsearch"
    knobs = {"val_size": a.val_size} if default else {"val_size": a.val_size, "prune": False, "sampler": "random",
                                                       "starts": 0}
    study = archsearch.search("mnist", a.budget, epochs=a.epochs, train_size=a.train_size, seed=a.seed, config=knobs,
                              trials=10 ** 6, timeout=a.minutes * 60, study=kind,
                              storage=f"sqlite:///{folder}/{kind}.db", data_dir=a.data_dir, device=a.device)
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    pts = [(t.values[0], int(t.values[1])) for t in done]
    best = lambda cap: max((acc for acc, p in pts if p <= cap), default=float("nan"))
    front = [f"#{t.number} {int(t.values[1])} {t.values[0]:.2f}{' ' + t.user_attrs['preset'] if 'preset' in t.user_attrs else ''}"
             for t in sorted(study.best_trials, key=lambda t: t.values[1])]
    return {"trials": len(study.get_trials(deepcopy=False)), "complete": len(done),
            "hv": hypervolume(pts, (90.0, a.budget)), "best5k": best(5000), "best10k": best(10000),
            "front": front}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--budget", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--train-size", type=int, default=10000)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-dir", default=default_data_dir())
    ap.add_argument("--threads", type=int, default=1, help="torch threads per search (two run at once)")
    a = ap.parse_args()
    kinds = ("archsearch", "random")
    with tempfile.TemporaryDirectory() as folder, \
            cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        res = dict(zip(kinds, pool.map(one, kinds, [a, a], [folder, folder])))
    print(f"# {a.minutes:g} min each, run side by side with {a.threads} thread(s) each; budget {a.budget}, "
          f"{a.epochs} epochs, {a.train_size} train / {a.val_size} val MNIST images, {resolve_device(a.device)}; "
          f"hypervolume ref (90% val acc, {a.budget} params)")
    print(f"{'':<22}{'archsearch':>12}{'random':>12}")
    for key, label in (("trials", "trials started"), ("complete", "trials complete"), ("hv", "hypervolume"),
                       ("best5k", "best val acc <= 5k"), ("best10k", "best val acc <= 10k")):
        x, y = res["archsearch"][key], res["random"][key]
        print(f"{label:<22}{x:>12,.2f}{y:>12,.2f}")
    print(f"hypervolume ratio archsearch / random: {res['archsearch']['hv'] / max(res['random']['hv'], 1e-9):.2f}x")
    for k in kinds:
        print(f"{k} front (trial params val_acc [preset]): {'; '.join(res[k]['front'])}")


if __name__ == "__main__":
    main()
