"""Finished trials per minute vs --jobs, at fixed settings, side by side.

    python benchmarks/jobs_throughput.py --jobs 1 2 --trials 10

For each N: a fresh study gets the same --trials models and recipes (drawn once
from the search space with a seeded random sampler and enqueued), then
`archsearch run --jobs N` trains them all as a user would, timed from start to
exit (process start-up and data loading included). No pruning, no presets, so
every N does exactly the same work. On a CPU the workers split the cores
(threads = cores / N); on one GPU, N workers share it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from archsearch import engine, space, studies  # noqa: E402


def fixed_trials(n: int, epochs: int) -> list[dict]:
    """n parameter sets of the real space (random sampler, seed 0)."""
    scratch = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(0))
    out = []
    for _ in range(n):
        t = scratch.ask()
        space.sample(t, epochs)
        out.append(t.params)
        scratch.tell(t, state=optuna.trial.TrialState.PRUNED)
    return out


def one(jobs: int, a, params: list[dict]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/s.db"
        given = dict(dataset="mnist", budget=a.budget, epochs=a.epochs, val_size=a.val_size,
                     train_size=a.train_size, seed=0, prune=False, sampler="random", starts=0)
        study, _ = engine.open_study(studies.open_storage(url, writer=True), "bench", given)
        for p in params:
            study.enqueue_trial(p)
        cmd = [sys.executable, "-m", "archsearch", "run", "--trials", str(a.trials), "--jobs", str(jobs),
               "--device", a.device, "--storage", url, "--study", "bench"]  # the settings are the study's
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"--jobs {jobs} failed: {r.stderr.strip()[-500:]}")
        epoch_s = statistics.mean(t.user_attrs["epoch_seconds"] for t in study.get_trials()
                                  if "epoch_seconds" in t.user_attrs)
    return seconds, epoch_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--budget", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=10000)
    ap.add_argument("--val-size", type=int, default=2000)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    params = fixed_trials(a.trials, a.epochs)
    res = {n: one(n, a, params) for n in a.jobs}
    print(f"# the same {a.trials} trials for each N: budget {a.budget}, {a.epochs} epochs, {a.train_size} train / "
          f"{a.val_size} val MNIST images, no pruning; device {a.device}; {os.cpu_count()} CPU cores")
    print(f"{'jobs':>5} {'wall s':>8} {'trials/min':>11} {'vs N=1':>7} {'mean s/epoch in a trial':>24}")
    base = a.trials / res[a.jobs[0]][0] * 60
    for n, (sec, epoch_s) in res.items():
        tpm = a.trials / sec * 60
        print(f"{n:>5} {sec:>8.1f} {tpm:>11.2f} {tpm / base:>6.2f}x {epoch_s:>24.2f}")


if __name__ == "__main__":
    main()
