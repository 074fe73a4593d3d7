"""`archsearch run --jobs N`: N worker processes on this machine sharing one study.

Each worker loads the data once, opens the storage itself and runs search.run() with
its own sampler seed (worker_seed: random and TPE draws differ between workers, and
between runs with another --seed). They coordinate only through the storage, exactly
as workers on other machines would: the trial quota, the pruner's peers and
dead-worker recovery (heartbeats) all read it. The parent starts them, prints each
finished trial, and forwards Ctrl-C / SIGTERM.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

from .signals import Terminated, raise_if_stopped, stop_on_signals


def devices(device: str, jobs: int) -> list[str]:
    """Worker i trains on devices(...)[i % len]: with several GPUs and a plain 'cuda', round robin."""
    import torch
    if device == "cuda" and torch.cuda.device_count() > 1:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [device]


def threads_per_worker(jobs: int) -> int:
    """Split the cores: N workers x all cores each oversubscribes the CPU (OpenMP threads spin and
    wait for each other; measured ~10x slower with 2 workers x 2 threads on 2 cores)."""
    return max(1, (os.cpu_count() or 1) // jobs)


def worker_seed(seed: int, index: int, restarts: int = 0) -> int:
    """The sampler seed of worker `index` (after `restarts` crashes) of a run with `seed`: a
    different one for every (seed, restarts, index). It was seed + index (+ restarts x jobs), so
    with 2 workers --seed 1's worker 0 drew --seed 0's worker 1's numbers, and search v30
    (--seed 1) trained 5 of v25's (--seed 0) sampled trials exactly (docs/search-record.md)."""
    import numpy as np
    return int(np.random.SeedSequence([seed, restarts, index]).generate_state(1)[0])


def worker(spec: dict, index: int) -> None:
    """One worker process. Exit code 0 when the study is done (or the timeout passed),
    130 on SIGINT, 143 on SIGTERM."""
    stop_on_signals()
    import warnings
    warnings.filterwarnings("ignore")
    import optuna
    import torch

    from . import search, studies
    from .data import load
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(spec["threads"])
    try:
        s = search.Settings(**spec["settings"])
        data = load(s.dataset, spec["data_dir"], val_size=s.val_size, train_size=s.train_size,
                    device=spec["devices"][index % len(spec["devices"])])
        storage = studies.open_storage(spec["url"], writer=True)
        sampler = search.make_sampler(s.sampler, worker_seed(s.seed, index, spec["restarts"]), s.rescale_every,
                                      search.size_shift(s))
        study = studies.load_study(storage, spec["study"], sampler=sampler)
        objective = search.Objective(s, data, spec["precision"], spec["compile"], spec["weights_dir"])
        search.run(study, objective, spec["trials"], spec["timeout"], figures=False)  # the parent draws them
    except KeyboardInterrupt as e:
        raise SystemExit(143 if isinstance(e, Terminated) else 130) from None


def crashed(code: int | None) -> bool:
    """A worker's exit code says it crashed (killed by a signal, e.g. the OOM killer's 9, or an
    error), not that it finished (0) or was stopped by Ctrl-C / SIGTERM (130, 143)."""
    return code is not None and code not in (0, 130, 143)


def run_workers(spec: dict, jobs: int, on_trial, study, poll: float = 1.0) -> list[int]:
    """Start `jobs` workers, report each newly finished trial of `study` through on_trial,
    redraw the dashboard figures every few trials (one writer of them, not N), and
    return the workers' exit codes. A worker that crashes is started again in its place,
    `jobs` times at most per run (a crash that repeats stops there): in search v17 one of
    two workers died 5 minutes in and the rest of the 85 minutes ran on one
    (docs/search-record.md). On KeyboardInterrupt (Ctrl-C / Terminated) the signal is
    passed on, the workers are waited for, and the interrupt re-raised."""
    from optuna.trial import TrialState

    from .dashboard import refresh
    from .search import REFRESH_EVERY, finished_count
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no forked torch/OpenMP or DB state
    started = time.monotonic()

    def process(i: int, restarts: int):
        # A restarted worker gets a new sampler seed, so that it does not redraw its predecessor's
        # trials, and what is left of the run's timeout (s), not all of it again.
        left = None if spec["timeout"] is None else spec["timeout"] - (time.monotonic() - started)
        return ctx.Process(target=worker, args=({**spec, "restarts": restarts, "timeout": left}, i),
                           name=f"archsearch-worker-{i}")

    procs = [process(i, 0) for i in range(jobs)]
    restarts = 0
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    seen = {t.number for t in study.get_trials(deepcopy=False, states=ended)}
    dead: set = set()  # the processes whose end was reported

    def report() -> None:
        nonlocal restarts
        new = [t for t in study.get_trials(deepcopy=False, states=ended) if t.number not in seen]
        for t in sorted(new, key=lambda t: t.number):
            seen.add(t.number)
            on_trial(t)
        if len(seen) // REFRESH_EVERY > (len(seen) - len(new)) // REFRESH_EVERY:
            refresh(study)
        for i, p in enumerate(procs):
            if p.exitcode not in (None, 0) and p not in dead:
                dead.add(p)
                how = f"signal {-p.exitcode}" if p.exitcode < 0 else f"exit code {p.exitcode}"
                on_trial(f"worker {i} (pid {p.pid}) ended with {how}; a trial it was running is failed and "
                         f"retried once its heartbeat is {spec['grace_s']} s old")
                if crashed(p.exitcode) and restarts < jobs and not stopped():
                    restarts += 1
                    procs[i] = process(i, restarts)
                    procs[i].start()
                    on_trial(f"worker {i} started again as pid {procs[i].pid} (restart {restarts} of at most {jobs})")

    def stopped() -> bool:
        """The study has its trials or the run its time: a replacement would have nothing to do."""
        return finished_count(study) >= spec["trials"] or (
            spec["timeout"] is not None and time.monotonic() - started > spec["timeout"])

    for p in procs:
        p.start()
    try:
        while True:
            time.sleep(poll)
            raise_if_stopped()
            alive = any(p.is_alive() for p in procs)
            report()  # after the check: the trials of workers that have ended are all in the storage
            if not alive and not any(p.is_alive() for p in procs):  # and none was started again
                break
        refresh(study)
    except KeyboardInterrupt as e:
        sig = signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, sig)
        for p in procs:
            p.join(120)
        raise
    return [p.exitcode for p in procs]
