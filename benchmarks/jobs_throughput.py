"""Finished trials per minute vs --jobs, at fixed settings, side by side.

    python benchmarks/jobs_throughput.py --jobs 1 2 --trials 8

Each N runs the same `archsearch run` (a fresh study in a temporary folder, no
pruning, no presets, random sampler seeded 0, real MNIST subset) as a user would,
timed from start to exit, process start-up and data loading included. On a CPU
the workers split the cores (threads = cores / N), so more workers than cores
cannot help; on one GPU, N workers share it, which is the point for tiny models.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def one(jobs: int, a) -> float:
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "archsearch", "run", "--budget", str(a.budget), "--trials", str(a.trials),
               "--epochs", str(a.epochs), "--train-size", str(a.train_size), "--val-size", str(a.val_size),
               "--sampler", "random", "--no-prune", "--no-presets", "--jobs", str(jobs), "--device", a.device,
               "--storage", f"sqlite:///{d}/s.db", "--study", "bench"]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"--jobs {jobs} failed: {r.stderr.strip()[-500:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--budget", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-size", type=int, default=5000)
    ap.add_argument("--val-size", type=int, default=2000)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    res = {n: one(n, a) for n in a.jobs}
    print(f"# {a.trials} trials, budget {a.budget}, {a.epochs} epochs, {a.train_size} train / {a.val_size} val "
          f"MNIST images, random sampler, no pruning; device {a.device}; {os.cpu_count()} CPU cores")
    print(f"{'jobs':>5} {'seconds':>9} {'trials/min':>11} {'vs 1 job':>9}")
    base = a.trials / res[a.jobs[0]] * 60
    for n, sec in res.items():
        tpm = a.trials / sec * 60
        print(f"{n:>5} {sec:>9.1f} {tpm:>11.2f} {tpm / base:>8.2f}x")


if __name__ == "__main__":
    main()
