"""Running a search: in this process, or in N worker processes on this machine sharing one
study; and wiring the views (dashboard figures and notes, kept weights) to the search's callbacks,
so that engine.py never imports them.

Each worker loads the data once, opens the storage itself and runs engine.run() with its own
sampler seed (worker_seed). Workers coordinate only through the storage, exactly as workers on
other machines would: the trial quota, the pruner's peers and dead-worker recovery
(heartbeats) all read it. The parent starts them, reports each finished trial, redraws the
figures, and forwards Ctrl-C / SIGTERM.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

from .signals import Terminated, raise_if_stopped, stop_on_signals

REFRESH_EVERY = 3  # finished trials between redraws of the dashboard figures (a redraw reads every trial)


def objective(settings, data, precision: str, compile: bool, weights_dir: Path | None):
    """An engine.Objective that writes each trial's dashboard note and keeps each COMPLETE
    trial's weights in weights_dir (None: not kept)."""
    from . import bundle, dashboard, engine

    def keep(trial, model) -> None:
        trial.set_user_attr("weights_artifact", bundle.save_weights(trial, model, weights_dir))

    return engine.Objective(settings, data, precision, compile, on_start=dashboard.save_trial_note,
                            on_model=keep if weights_dir is not None else None)


def run_here(study, settings, data, spec: dict, on_trial=None) -> None:
    """engine.run in this process, with the figures redrawn as the front changes and at the end."""
    from . import dashboard, engine
    try:
        engine.run(study, objective(settings, data, spec["precision"], spec["compile"], spec["weights_dir"]),
                   spec["trials"], spec["timeout"], on_trial, on_front_change=dashboard.refresh)
    finally:
        dashboard.refresh(study)


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
    different one for every (seed, restarts, index): with seed + index, --seed 1's worker 0
    drew --seed 0's worker 1's numbers and two searches trained the same trials."""
    import numpy as np
    return int(np.random.SeedSequence([seed, restarts, index]).generate_state(1)[0])


def worker(spec: dict, index: int) -> None:
    """One worker process. Exit code 0 when the study is done (or the timeout passed),
    130 on SIGINT, 143 on SIGTERM."""
    stop_on_signals()
    import optuna
    import torch

    from . import engine, studies
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the parent reports each trial
    torch.set_num_threads(spec["threads"])
    try:
        storage = studies.open_storage(spec["url"], writer=True)
        study, s = engine.load_study(storage, spec["study"], worker_seed(spec["seed"], index, spec["restarts"]))
        data = s.load(spec["data_dir"], spec["devices"][index % len(spec["devices"])])
        engine.run(study, objective(s, data, spec["precision"], spec["compile"], spec["weights_dir"]),
                   spec["trials"], spec["timeout"])  # the parent draws the figures
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
    `jobs` times at most per run (a crash that repeats stops there): once one of two workers
    died 5 minutes in and the rest of an 85-minute search ran on one. On KeyboardInterrupt (Ctrl-C / Terminated) the signal is
    passed on, the workers are waited for, and the interrupt re-raised."""
    from optuna.trial import TrialState

    from .dashboard import refresh
    from .engine import finished_count
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
