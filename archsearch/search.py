"""The search: a two-objective Optuna study (max val accuracy, min params).

Optuna 5 forbids `trial.report` in multi-objective studies, so pruning is ours:
the trainer's on_epoch_end hook stores the learning curve as a user attr and, at
each rung, asks pruning.keeps() against the curves of every other trial in the
storage that trained the same schedule (so several workers share one pruner). A
study carries its settings as user attrs; resuming with different ones is refused
instead of mixing results.
"""
from __future__ import annotations

import os
import random
import socket
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from . import __version__, dashboard, space
from .budget import DoesNotFit, fit_to_budget, scale
from .export import save_weights
from .genome import GenomeError
from .model import count_flops, count_params
from .presets import PRESETS
from .pruning import keeps, rungs
from .signals import raise_if_stopped
from .studies import SearchError, study_names
from .train import TrainingDiverged, evaluate, fit

METRICS = ["val_accuracy", "params"]
# Faults of one trial's own making: it ends FAIL with the reason, the search goes on.
TRAINING_FAULTS = (TrainingDiverged, torch.cuda.OutOfMemoryError)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class Surplus(Exception):
    """Two workers started the last trial at once, or one started a trial while a retry was queued
    before it; the later one steps back (its trial ends FAIL, not counted)."""


@dataclass(frozen=True)
class Settings:
    """What defines a study; stored in it, compared on resume."""
    dataset: str
    budget: int
    epochs: int = 15
    val_size: int = 5000  # 10,000 was tried in search v7 (change 10, with a size range) and alone in v23
                          # (change 25): the same picks below 9,798 params; reverted (docs/search-record.md)
    train_size: int | None = None
    seed: int = 0
    prune: bool = True
    eta: int = 3
    min_rung: int = 1
    min_peers: int = 4    # trials that must reach a rung before anyone is pruned there
    sampler: str = "tpe"
    size_peers: int = 12  # a trial is ranked among this many trials nearest its size (0: all; pruning.py)
    rescale_every: int = 3  # every Nth trial reruns a front model's layout at a new size (0: never; space.SizeSweep).
                            # On again since the warm starts: they make much of the front, and in v18 nothing
                            # completed between the 6.4k start and 7.9k params (docs/search-record.md, change 21)
    prune_starts: bool = False  # warm-start trials run all epochs: cut at epoch 1 they were noise, not signal
                                # (docs/search-record.md, change 20)
    prune_rescaled: bool = False  # nor do rescaled trials: the same slow starters (search v19, change 22)
    size_shift: bool = True  # the seed rotates the sizes trials sweep (space.sweep; change 32)
    start_recipe: str = "onecycle32"  # what the warm starts and their rescaled copies train (space.START_RECIPES;
                                      # change 35); "space": START's own in-space values

    @classmethod
    def of(cls, study: optuna.Study) -> "Settings":
        """A stored study's settings, to read its trials by (export, rescore). A setting this version
        lacks, from a change since reverted, is dropped; resuming such a study is refused (open_study)."""
        stored, known = {**LEGACY_SETTINGS, **study.user_attrs["settings"]}, {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in known})

    @property
    def rungs(self) -> list[int]:
        return rungs(self.epochs, self.min_rung, self.eta) if self.prune else []


# Settings added after studies were made with the behaviour these values select: an older
# study resumes with them (archsearch run --size-peers 0), not with a mismatch on a missing key.
LEGACY_SETTINGS = {"size_peers": 0, "rescale_every": 0, "prune_starts": True, "prune_rescaled": True,
                   "size_shift": False, "start_recipe": "space"}


def default_study_name(dataset: str, budget: int) -> str:
    return f"{Path(dataset).stem if dataset.endswith('.npz') else dataset}-b{budget}"


def size_shift(settings: Settings) -> float:
    """Where in the size sweep a study starts (0-1): from its seed, the same for all its workers
    (their samplers' seeds differ: workers.worker_seed)."""
    return random.Random(settings.seed).random() if settings.size_shift else 0.0


def make_sampler(name: str, seed: int, rescale_every: int = 0, shift: float = 0.0):
    """The named sampler for layouts and recipes; model sizes sweep the budget from `shift`, and
    every `rescale_every`-th trial reruns a front model at its size (space.SizeSweep)."""
    if name == "tpe":
        # 20 random trials before TPE models (Optuna's default: 10). In search v4, 37 of the
        # 53 trials above 2.5k params from trial 20 on had one body (3 stages, the last two
        # one 5x5 conv each), learned from the few models finished by then.
        base = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=20)
    elif name == "nsga2":
        base = optuna.samplers.NSGAIISampler(seed=seed)
    elif name == "random":
        base = optuna.samplers.RandomSampler(seed=seed)
    else:
        raise SearchError(f"unknown sampler {name!r}; choose tpe, nsga2 or random")
    return space.SizeSweep(base, every=rescale_every, shift=shift)


def open_study(storage, name: str, settings: Settings, presets: bool = True, starts: int = 0,
               trials: int | None = None) -> tuple[optuna.Study, bool]:
    """Resume `name` if it exists with the same settings, else create it, with `starts`
    warm-start trials (space.START) queued first, then the seed presets; at most `trials`
    queued in all (the run's target: a trial queued beyond it would stay WAITING in the
    study for good). (study, created)."""
    sampler = make_sampler(settings.sampler, settings.seed, settings.rescale_every, size_shift(settings))
    wanted = asdict(settings)
    if name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        stored = {**LEGACY_SETTINGS, **study.user_attrs.get("settings", {})}
        gone = [f"{k}={v!r}" for k, v in stored.items() if k not in wanted]
        if gone:  # made with a change since reverted: resuming would mix two searches
            raise SearchError(f"study {name!r} was created with {', '.join(gone)}, a setting this version does not "
                              f"have; start a new study with --study NEW_NAME")
        diff = [f"{k}={stored.get(k)!r} (you gave {v!r})" for k, v in wanted.items() if stored.get(k) != v]
        if diff:
            raise SearchError(f"study {name!r} was created with {', '.join(diff)}; rerun with its settings or "
                              f"start a new study with --study NEW_NAME")
        moved = space.changed(study.get_trials(deepcopy=False))
        if moved:  # made before a change to the space: every new trial would fail
            raise SearchError(f"study {name!r} was made with another search space ({'; '.join(moved)}); "
                              f"start a new study with --study NEW_NAME")
        return study, False
    study = optuna.create_study(storage=storage, study_name=name, directions=["maximize", "minimize"],
                                sampler=sampler)
    study.set_metric_names(METRICS)
    study.set_user_attr("settings", wanted)
    study.set_user_attr("archsearch_version", __version__)
    study.set_user_attr("torch_version", torch.__version__)
    room = starts + len(PRESETS) if trials is None else trials
    for _ in range(min(starts, room)):
        study.enqueue_trial(space.START, user_attrs={"start": "vgg"})
    if presets:
        enqueue_presets(study, settings, limit=max(room - starts, 0))
    return study, True


def enqueue_presets(study: optuna.Study, settings: Settings, limit: int = len(PRESETS)) -> list[str]:
    """Warm start: the hand-designed seeds that fit the budget, smallest first.

    They are not points of the sampled space, so they are enqueued as trials with
    no parameters and a 'preset' user attr; the objective builds the preset's
    genome exactly. The sampler sees them as ordinary results. Found presets
    (mnist-8.8k, ...) are not enqueued: they are a search's output, not the hand designs
    a search is measured against.
    """
    fitting = sorted((count_params(p.genome), name) for name, p in PRESETS.items()
                     if p.kind == "seed" and count_params(p.genome) <= settings.budget)[:limit]
    for _, name in fitting:
        study.enqueue_trial({}, user_attrs={"preset": name})
    return [n for _, n in fitting]


def min_budget(in_shape: tuple, num_classes: int) -> int:
    return count_params(scale(space.smallest_layout(in_shape, num_classes), 0.0))


def trial_seed(settings: Settings, number: int) -> int:
    return settings.seed + number


class Objective:
    def __init__(self, settings: Settings, data, precision: str, compile: bool = False,
                 weights_dir: Path | None = None):
        """weights_dir: where COMPLETE trials store their trained weights (None: not kept)."""
        self.s, self.data, self.precision, self.compile = settings, data, precision, compile
        self.weights_dir = weights_dir

    def genome_and_config(self, trial):
        name = trial.user_attrs.get("preset")
        if name:
            p = PRESETS[name]
            return p.genome.with_input(self.data.in_shape, self.data.num_classes), replace(p.train, epochs=self.s.epochs)
        choices, frac, cfg = space.sample(trial, self.s.epochs)
        try:
            layout = space.layout(choices, self.data.in_shape, self.data.num_classes)
            try:
                genome = fit_to_budget(layout, int(self.s.budget * frac)).genome
            except DoesNotFit as e:  # too big for its fraction but not for the budget: its smallest form
                if e.min_params > self.s.budget:
                    raise DoesNotFit(e.min_params, self.s.budget) from None  # name the study's budget
                genome = fit_to_budget(layout, e.min_params).genome
        except GenomeError as e:
            # Infeasible: end at once, and tell the sampler by how much it missed.
            over = getattr(e, "min_params", self.s.budget + 1) - self.s.budget
            trial.set_constraint("params_over_budget", float(over))
            trial.set_user_attr("infeasible", str(e))
            raise optuna.TrialPruned(str(e)) from None
        return genome, cfg

    quota: int | None = None  # --trials; set by run() to step back from a race between workers

    def check_quota(self, trial: optuna.Trial) -> None:
        # Queued (WAITING) trials count too: a dead worker's trial is queued again under a new number,
        # and a worker that starts a fresh trial before anyone takes the retry would otherwise run one
        # trial past --trials (a CI run of test_workers' kill -9 test held 7 of 6).
        ahead = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number
                 and (counts(t) or t.state in (TrialState.RUNNING, TrialState.WAITING))]
        if self.quota is not None and len(ahead) >= self.quota:
            trial.set_user_attr("surplus", f"{self.quota} trials were already finished, running or queued")
            raise Surplus()

    def recipe(self, trial, attrs: dict) -> str | None:
        """The name of the recipe (space.START_RECIPES) this trial trains instead of its sampled one, or None.

        The warm starts train the study's start recipe, which the sampled space leaves out (OneCycle,
        batch 32: see space.sample), while their parameters keep START's in-space values: those are
        what TPE learns from, and when the starts' parameters held batch 32 (change 28) TPE put it
        on 26 of 28 sampled trials and search v26 lost rows. A rescaled copy trains its template's
        recipe, as it copies the rest of it (docs/search-record.md, changes 29 and 35)."""
        if "start" in attrs:
            return None if self.s.start_recipe == "space" else self.s.start_recipe
        if "rescaled_from" in attrs:
            storage = trial.study._storage
            tid = storage.get_trial_id_from_study_id_trial_number(trial.study._study_id, attrs["rescaled_from"])
            return storage.get_trial_user_attrs(tid).get("recipe")
        return None

    def __call__(self, trial: optuna.Trial):
        self.check_quota(trial)
        trial.set_user_attr("curve", [])  # a retried trial inherits its dead original's attrs
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        genome, cfg = self.genome_and_config(trial)
        # The sampler stores `rescaled_from` after this trial's attrs were read, hence the read.
        attrs = trial.study._storage.get_trial_user_attrs(trial._trial_id)
        recipe = self.recipe(trial, attrs)
        if recipe:
            cfg = replace(space.START_RECIPES[recipe], epochs=self.s.epochs)
            trial.set_user_attr("recipe", recipe)
        params = count_params(genome)
        trial.set_constraint("params_over_budget", float(min(0, params - self.s.budget)))
        dashboard.save_trial_note(trial, genome, cfg)
        for k, v in {"params": params, "flops": count_flops(genome), "genome": genome.to_dict(),
                     "train": cfg.to_dict(), "arch": genome.describe(), "device": str(self.data.device),
                     "normalize": self.data.normalization()}.items():
            trial.set_user_attr(k, v)
        curve: list[float] = []
        t0 = time.perf_counter()
        # Copies of a model that trained well over all its epochs run them all too, unless the study
        # says otherwise.
        exempt = (("start" in attrs and not self.s.prune_starts)
                  or ("rescaled_from" in attrs and not self.s.prune_rescaled))

        def on_epoch_end(epoch: int, val_acc: float) -> None:
            raise_if_stopped()  # a Ctrl-C that Python swallowed (signals.py) stops the trial here
            curve.append(round(val_acc, 4))
            trial.set_user_attr("curve", curve)
            trial.set_user_attr("epochs_run", epoch)
            trial.set_user_attr("epoch_seconds", round((time.perf_counter() - t0) / epoch, 3))
            if epoch in self.s.rungs and not exempt:
                # Peers trained the same schedule (change 30): at a rung, OneCycle's warm-up holds its
                # accuracy below cosine's (epoch 1 in search v3: median 71% vs 96%), whatever it ends at.
                # The space samples cosine only, but `--presets`' seeds and search v28's trials train others.
                peers = [(t.user_attrs["curve"][epoch - 1], t.user_attrs["params"])
                         for t in trial.study.get_trials(deepcopy=False)
                         if t.number != trial.number and len(t.user_attrs.get("curve", ())) >= epoch
                         and t.user_attrs.get("train", {}).get("schedule") == cfg.schedule]
                if not keeps((val_acc, params), peers, self.s.eta, self.s.min_peers,
                             last_rung=epoch == self.s.rungs[-1], size_peers=self.s.size_peers):
                    trial.set_user_attr("pruned_at", epoch)
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        try:
            model, _ = fit(genome, self.data, cfg, trial_seed(self.s, trial.number), self.precision,
                           on_epoch_end, compile=self.compile)
        except TRAINING_FAULTS as e:
            trial.set_user_attr("fail_reason", str(e).splitlines()[0][:200])
            if self.data.device.type == "cuda":
                torch.cuda.empty_cache()  # give the next trial the memory back
            raise
        # Reported, never used to choose: the search's objective is the validation accuracy.
        trial.set_user_attr("test_acc", round(evaluate(model, self.data, self.data.test_x, self.data.test_y,
                                                       self.precision), 4))
        if self.weights_dir is not None:
            trial.set_user_attr("weights_artifact", save_weights(trial, model, self.weights_dir))
        return curve[-1], params


def counts(t: optuna.trial.FrozenTrial) -> bool:
    """Does a trial count towards --trials? Complete, pruned, or failed by its own
    hyperparameters (diverged). Crashed, interrupted or surplus trials do not."""
    return t.state in FINISHED or (t.state == TrialState.FAIL and "fail_reason" in t.user_attrs)


def finished_count(study: optuna.Study) -> int:
    return sum(map(counts, study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.FAIL))))


def running_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def trial_line(t: optuna.trial.FrozenTrial) -> str:
    a = t.user_attrs
    name = f" [{a['preset']}]" if "preset" in a else " [start]" if "start" in a else ""
    secs = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else 0.0
    if "infeasible" in a:
        return f"#{t.number:<4} infeasible{name}: {a['infeasible']}"
    if "surplus" in a:
        return f"#{t.number:<4} not run (another worker took the last trial): {a['surplus']}"
    acc = (a.get("curve") or [None])[-1]
    acc_s = f"val {acc:6.2f}%" if acc is not None else "val   -   "
    state = t.state.name
    if "pruned_at" in a:
        state = f"PRUNED at epoch {a['pruned_at']}"
    elif "fail_reason" in a:
        state = f"FAIL: {a['fail_reason']}"
    return f"#{t.number:<4} {a.get('params', 0):>7,} params  {acc_s}  {state}  ({secs:.0f} s){name}"


REFRESH_EVERY = 3  # trials between redraws of the dashboard figures (a redraw reads every trial: ~0.1 s)


def run(study: optuna.Study, objective: Objective, n_trials: int, timeout: float | None, on_trial=None,
        poll: float = 2.0, figures: bool = True) -> int:
    """Run until the study holds n_trials finished trials, or timeout seconds pass.

    Several processes (workers, machines) may run this on one study: when the
    trials already running would complete it, this one waits for them instead of
    starting another, and takes over if they die (their heartbeat goes stale).
    Returns the number of trials this call ran. KeyboardInterrupt propagates after
    Optuna has marked the running trial FAIL. The dashboard figures are redrawn
    every few trials and at the end (figures=False: someone else draws them).
    """
    start, ran = time.monotonic(), 0
    objective.quota = n_trials
    callbacks = [lambda st, t: on_trial(t)] if on_trial else []
    try:
        while (done := finished_count(study)) < n_trials:
            if timeout is not None and time.monotonic() - start >= timeout:
                break
            if done + running_count(study) >= n_trials:
                time.sleep(poll)
                optuna.storages.fail_stale_trials(study)  # a dead worker's trial: FAIL, and queued again
                continue
            study.optimize(objective, n_trials=1, catch=(*TRAINING_FAULTS, Surplus), callbacks=callbacks)
            ran += 1
            if figures and ran % REFRESH_EVERY == 0:
                dashboard.refresh(study)
    finally:
        if figures:
            dashboard.refresh(study)
    return ran
