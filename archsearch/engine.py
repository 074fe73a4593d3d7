"""The search: a two-objective Optuna study (max val accuracy, min params).

Optuna forbids `trial.report` in multi-objective studies, so pruning is ours: the trainer's
on_epoch_end hook stores the learning curve as a user attr and, at each rung, asks
pruning.keeps() against the curves of every other trial in the storage that trained the
same schedule (so several workers share one pruner). A study carries its settings and a
schema version; resuming with other settings, or a study of another schema, is refused.
The search reports through callbacks (a trial started, finished, a model trained, the front
changed); it never imports the views (dashboard, bundle) that workers.py wires to them.
"""
from __future__ import annotations

import os
import random
import socket
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import optuna
import torch
from optuna.trial import TrialState

from . import __version__, space
from .budget import DoesNotFit, fit_to_budget, scale
from .data import load
from .genome import Genome, GenomeError, TrainConfig
from .model import count_flops, count_params, figures
from .optuna_internals import experimental_ok
from .presets import PRESETS
from .pruning import hypervolume, keeps, rungs
from .signals import raise_if_stopped
from .studies import SCHEMA, SearchError, check_schema, study_names
from .trainer import TrainingDiverged, evaluate, fit

METRICS = ["val_accuracy", "params"]
# Faults of one trial's own making: it ends FAIL with the reason, the search goes on.
TRAINING_FAULTS = (TrainingDiverged, torch.cuda.OutOfMemoryError)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
KINDS = ("sampled", "start", "rescaled", "preset")  # user attr "kind": where a trial's model came from


class Surplus(Exception):
    """Two workers started the last trial at once, or one started a trial while a retry was queued
    before it; the later one steps back (its trial ends FAIL, not counted)."""


@dataclass(frozen=True)
class Settings:
    """What defines a study; stored in it, read back on resume."""
    dataset: str
    budget: int
    epochs: int = 15
    train_size: int | None = None  # use only the first N training images (quick runs)
    image_size: int | None = None  # images resized to N x N (None: as stored)
    channels: int | None = None    # 1 (grayscale) or 3 (RGB) (None: as stored)
    max_macs: int | None = None    # every model under this many multiply-accumulates per image, too
    max_ram: int | None = None     # and under this many bytes of peak int8 activations (model.peak_ram)
    seed: int = 0          # the sampler's seed; trial n trains with seed + n
    # How the search works: `run --search-config FILE` sets these (README, "Search settings").
    val_size: int = 5000   # validation images carved from the training set (fixed split seed)
    sampler: str = "tpe"   # tpe (multivariate), nsga2 or random
    prune: bool = True     # successive halving at epochs min_rung * eta^k
    eta: int = 3           # a trial at a rung continues if in the top 1/eta of its size peers
    min_rung: int = 1
    min_peers: int = 4     # trials that must reach a rung before anyone is pruned there
    size_peers: int = 12   # ranked among this many trials nearest its size: large models start slower
    rescale_every: int = 3  # from trial 20, every Nth trial copies a front model at a new size (0: never)
    starts: int = 6        # warm-start trials of a proven layout and recipe, first (space.START_LAYOUT)
    presets: bool = False  # also train the seed presets that fit, as reference points

    @classmethod
    def of(cls, study: optuna.Study) -> "Settings":
        """A stored study's settings; a study of another schema is refused in one line."""
        check_schema(study)
        return cls(**study.user_attrs["settings"])

    @property
    def rungs(self) -> list[int]:
        return rungs(self.epochs, self.min_rung, self.eta) if self.prune else []

    def load(self, data_dir: str | None, device):
        """The study's data: its dataset and split, at its image size and channels."""
        return load(self.dataset, data_dir, val_size=self.val_size, train_size=self.train_size, device=device,
                    image_size=self.image_size, channels=self.channels)

    def check(self) -> None:
        """Values a search cannot run with, as one line each."""
        for k in ("max_macs", "max_ram"):
            if getattr(self, k) is not None and (not isinstance(getattr(self, k), int) or getattr(self, k) < 1):
                raise SearchError(f"{k} must be a positive integer, got {getattr(self, k)!r}")
        if self.sampler not in ("tpe", "nsga2", "random"):
            raise SearchError(f"unknown sampler {self.sampler!r}; choose tpe, nsga2 or random")
        for k in ("budget", "epochs", "val_size", "eta", "min_rung", "min_peers", "size_peers"):
            if not isinstance(getattr(self, k), int) or isinstance(getattr(self, k), bool) or getattr(self, k) < 1:
                raise SearchError(f"{k} must be a positive integer, got {getattr(self, k)!r}")
        for k in ("rescale_every", "starts"):
            if not isinstance(getattr(self, k), int) or getattr(self, k) < 0:
                raise SearchError(f"{k} must be 0 or more, got {getattr(self, k)!r}")
        if self.prune and self.epochs <= self.min_rung:
            raise SearchError(f"{self.epochs} epochs leave no room for pruning at epoch {self.min_rung}; "
                              f"train more epochs or set prune = false")


SEARCH_KNOBS = tuple(f.name for f in fields(Settings))[[f.name for f in fields(Settings)].index("val_size"):]
# (what --search-config may set: val_size and the fields after it)


def default_study_name(dataset: str, budget: int) -> str:
    path = Path(dataset)
    return f"{path.stem if dataset.endswith('.npz') or path.is_dir() else dataset}-b{budget}"


def size_shift(settings: Settings) -> float:
    """Where in the size sweep a study starts (0-1): from its seed, the same for all its workers
    (their samplers' seeds differ: workers.worker_seed)."""
    return random.Random(settings.seed).random()


def make_sampler(name: str, seed: int, shift: float = 0.0):
    """The named sampler for layouts and recipes; model sizes sweep the budget from `shift`."""
    if name == "tpe":
        # 20 random trials before TPE models (Optuna's default: 10): fitted to the few models
        # finished by trial 10, TPE sampled one body almost exclusively.
        base = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=20)
    elif name == "nsga2":
        base = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        base = optuna.samplers.RandomSampler(seed=seed)
    return space.SizeSweep(base, shift=shift)


def open_study(storage, name: str, given: dict, trials: int | None = None) -> tuple[optuna.Study, bool]:
    """Resume `name` if it exists, else create it from `given` (Settings fields; budget and
    dataset required), with the warm starts, then the seed presets, queued first (at most
    `trials` in all: one queued beyond the run's target would stay WAITING for good).
    A value in `given` that contradicts the stored settings is refused. (study, created)."""
    given = {k: v for k, v in given.items() if v is not None}
    if name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        settings = Settings.of(study)
        diff = [f"{k} {v!r} (the study has {getattr(settings, k)!r})" for k, v in given.items()
                if getattr(settings, k) != v]
        if diff:
            raise SearchError(f"study {name!r} was made with other settings: you gave {', '.join(diff)}; "
                              f"drop those options to resume it, or start a new study with --study NEW_NAME")
        study.sampler = make_sampler(settings.sampler, settings.seed, size_shift(settings))
        return study, False
    if "budget" not in given:
        raise SearchError(f"there is no study {name!r} yet; give --budget to create it")
    settings = Settings(**given)
    settings.check()
    study = optuna.create_study(storage=storage, study_name=name, directions=["maximize", "minimize"],
                                sampler=make_sampler(settings.sampler, settings.seed, size_shift(settings)))
    with experimental_ok():
        study.set_metric_names(METRICS)
    study.set_user_attr("settings", asdict(settings))
    study.set_user_attr("schema", SCHEMA)
    study.set_user_attr("archsearch_version", __version__)
    study.set_user_attr("torch_version", torch.__version__)
    room = settings.starts + len(PRESETS) if trials is None else trials
    for _ in range(min(settings.starts, room)):
        study.enqueue_trial({}, user_attrs={"kind": "start"})
    if settings.presets:
        enqueue_presets(study, settings, limit=max(room - settings.starts, 0))
    return study, True


def load_study(storage, name: str, sampler_seed: int | None = None) -> tuple[optuna.Study, Settings]:
    """An existing study with its sampler (seeded by the study's seed unless a worker gives its own)."""
    study = optuna.load_study(study_name=name, storage=storage)
    settings = Settings.of(study)
    seed = settings.seed if sampler_seed is None else sampler_seed
    study.sampler = make_sampler(settings.sampler, seed, size_shift(settings))
    return study, settings


def enqueue_presets(study: optuna.Study, settings: Settings, limit: int = len(PRESETS)) -> list[str]:
    """The hand-designed seeds that fit the budget, smallest first, as trials of kind "preset"
    (no parameters: they are not points of the sampled space). Found presets are a search's
    output, not the designs a search is measured against, and are left out."""
    fitting = sorted((count_params(p.genome), name) for name, p in PRESETS.items()
                     if p.kind == "seed" and count_params(p.genome) <= settings.budget)[:limit]
    for _, name in fitting:
        study.enqueue_trial({}, user_attrs={"kind": "preset", "preset": name})
    return [n for _, n in fitting]


def min_budget(in_shape: tuple, num_classes: int) -> int:
    return count_params(scale(space.smallest_layout(in_shape, num_classes), 0.0))


def trial_seed(settings: Settings, number: int) -> int:
    return settings.seed + number


class Objective:
    """Trains one trial: its model from its kind, pruned at the rungs, within the budget."""

    def __init__(self, settings: Settings, data, precision: str, compile: bool = False,
                 on_start: Callable | None = None, on_model: Callable | None = None):
        """on_start(trial, genome, cfg): before training (the dashboard's note); on_model(trial, model):
        after a trial completes (keeping its weights). Neither may raise."""
        self.s, self.data, self.precision, self.compile = settings, data, precision, compile
        self.on_start, self.on_model = on_start, on_model
        self.shift = size_shift(settings)

    def kind(self, trial: optuna.Trial) -> str:
        """The trial's kind: queued ones (starts, presets, retries) carry it; a new trial is a
        rescaled copy on its turn when the front has a model to copy, else sampled."""
        kind = trial.user_attrs.get("kind")
        if kind is None:
            t = space.rescale_template(trial.study.get_trials(deepcopy=False), trial.number,
                                       self.s.rescale_every, self.shift)
            kind = "sampled" if t is None else "rescaled"
            if t is not None:
                trial.set_user_attr("rescaled_from", t.number)
            trial.set_user_attr("kind", kind)
        return kind

    def layout_and_config(self, trial: optuna.Trial, kind: str) -> tuple[Genome, float, TrainConfig]:
        """(layout with relative widths, size fraction, training config) of a trial not a preset."""
        shape, classes = self.data.in_shape, self.data.num_classes
        if kind == "sampled":
            choices, frac, cfg = space.sample(trial, self.s.epochs)
            return space.layout(choices, shape, classes), frac, cfg
        # A retried trial keeps its size; a new one takes its point of the sweep, as a sampled one does.
        frac = trial.user_attrs.get("size_frac") or space.sweep(trial.number, *space.SIZE_FRAC, self.shift)
        if kind == "start":
            return space.layout(space.START_LAYOUT, shape, classes), frac, space.START_RECIPE
        number = trial.user_attrs["rescaled_from"]
        a = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == number).user_attrs
        return Genome.from_dict(a["genome"]), frac, TrainConfig.from_dict(a["train"])

    def genome_and_config(self, trial: optuna.Trial, kind: str) -> tuple[Genome, TrainConfig]:
        if kind == "preset":
            p = PRESETS[trial.user_attrs["preset"]]
            return p.genome.with_input(self.data.in_shape, self.data.num_classes), replace(p.train, epochs=self.s.epochs)
        try:
            layout, frac, cfg = self.layout_and_config(trial, kind)
            trial.set_user_attr("size_frac", frac)
            limits = {"max_macs": self.s.max_macs, "max_ram": self.s.max_ram}
            try:
                genome = fit_to_budget(layout, int(self.s.budget * frac), **limits).genome
            except DoesNotFit as e:  # too big for its fraction but not for the budget: its smallest form
                if e.min_params > self.s.budget or e.limit:
                    raise DoesNotFit(e.min_params, self.s.budget, e.limit) from None  # name the study's limits
                genome = fit_to_budget(layout, e.min_params, **limits).genome
        except GenomeError as e:
            # Infeasible: end at once, and tell the sampler by how much it missed (params over the budget;
            # 1 where a MAC or RAM limit is what it breaks).
            over = max(1, getattr(e, "min_params", self.s.budget + 1) - self.s.budget)
            trial.set_constraint("params_over_budget", float(over))
            trial.set_user_attr("infeasible", str(e))
            raise optuna.TrialPruned(str(e)) from None
        return genome, replace(cfg, epochs=self.s.epochs)

    quota: int | None = None  # --trials; set by run() to step back from a race between workers

    def check_quota(self, trial: optuna.Trial) -> None:
        # Queued (WAITING) trials count too: a dead worker's trial is queued again under a new number,
        # and a worker that starts a fresh trial before anyone takes the retry would otherwise run one
        # trial past --trials.
        ahead = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number
                 and (counts(t) or t.state in (TrialState.RUNNING, TrialState.WAITING))]
        if self.quota is not None and len(ahead) >= self.quota:
            trial.set_user_attr("surplus", f"{self.quota} trials were already finished, running or queued")
            raise Surplus()

    def __call__(self, trial: optuna.Trial):
        self.check_quota(trial)
        trial.set_user_attr("curve", [])  # a retried trial inherits its dead original's attrs
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        kind = self.kind(trial)
        genome, cfg = self.genome_and_config(trial, kind)
        params = count_params(genome)
        trial.set_constraint("params_over_budget", float(min(0, params - self.s.budget)))
        for k, v in {**figures(genome), "flops": count_flops(genome), "genome": genome.to_dict(),
                     "train": cfg.to_dict(), "arch": genome.describe(), "device": str(self.data.device),
                     "normalize": self.data.normalization()}.items():
            trial.set_user_attr(k, v)
        if self.on_start:
            self.on_start(trial, genome, cfg)
        curve: list[float] = []
        t0 = time.perf_counter()
        # Copies of proven designs run all their epochs: cut at the first rung they were noise.
        exempt = kind in ("start", "rescaled")

        def on_epoch_end(epoch: int, val_acc: float) -> None:
            raise_if_stopped()  # a Ctrl-C that Python swallowed (signals.py) stops the trial here
            curve.append(round(val_acc, 4))
            trial.set_user_attr("curve", curve)
            trial.set_user_attr("epochs_run", epoch)
            trial.set_user_attr("epoch_seconds", round((time.perf_counter() - t0) / epoch, 3))
            if epoch in self.s.rungs and not exempt:
                # Peers trained the same schedule: OneCycle's warm-up holds its early accuracy
                # below cosine's, whatever it ends at.
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
        if self.on_model:
            self.on_model(trial, model)
        return curve[-1], params


def counts(t: optuna.trial.FrozenTrial) -> bool:
    """Does a trial count towards --trials? Complete, pruned, or failed by its own
    hyperparameters (diverged). Crashed, interrupted or surplus trials do not."""
    return t.state in FINISHED or (t.state == TrialState.FAIL and "fail_reason" in t.user_attrs)


def finished_count(study: optuna.Study) -> int:
    return sum(map(counts, study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.FAIL))))


def running_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


STATUS_SIZES = (1 / 16, 1 / 4, 1 / 2, 1)  # fractions of the budget the progress line reports the front at


def status(study: optuna.Study) -> str:
    """One line: trials by state, the best validation accuracy at or under a few sizes, and the
    front's hypervolume (reference: chance accuracy, the budget; the dashboard's)."""
    s = Settings.of(study)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = sum(t.state == TrialState.PRUNED and "infeasible" not in t.user_attrs for t in trials)
    other = sum(counts(t) for t in trials) - len(done) - pruned
    parts = [f"{len(done)} complete, {pruned} pruned" + (f", {other} infeasible or failed" if other else "")]
    points = [(t.values[0], int(t.values[1])) for t in done]
    best = [(cap, max((a for a, p in points if p <= cap), default=None))
            for cap in (int(s.budget * f) for f in STATUS_SIZES)]
    if points:
        parts.append("best <= " + ", ".join(f"{cap / 1000:.1f}k: {'-' if a is None else f'{a:.2f}%'}"
                                            for cap, a in best))
        chance = 100.0 / max(2, int(study.user_attrs.get("num_classes", 10)))
        parts.append(f"hypervolume {hypervolume(points, (chance, s.budget)):,.0f}")
    return " | ".join(parts)


def trial_line(t: optuna.trial.FrozenTrial) -> str:
    a = t.user_attrs
    kind = a.get("kind", "sampled")
    name = f" [{a['preset']}]" if "preset" in a else "" if kind == "sampled" else f" [{kind}]"
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


def on_front(t: optuna.trial.FrozenTrial, study: optuna.Study) -> bool:
    """Is a just-finished trial on the study's Pareto front?"""
    return t.state == TrialState.COMPLETE and any(b.number == t.number for b in study.best_trials)


def run(study: optuna.Study, objective: Objective, n_trials: int, timeout: float | None,
        on_trial: Callable | None = None, on_front_change: Callable | None = None, poll: float = 2.0) -> int:
    """Run until the study holds n_trials finished trials, or timeout seconds pass.

    Several processes (workers, machines) may run this on one study: when the trials already
    running would complete it, this one waits for them instead of starting another, and takes
    over if they die (their heartbeat goes stale). on_trial(frozen_trial) hears of every
    finished trial, on_front_change(study) of each that joins the front. Returns the number of
    trials this call ran. KeyboardInterrupt propagates after Optuna has marked the running
    trial FAIL.
    """
    start, ran = time.monotonic(), 0
    objective.quota = n_trials

    def finished(st: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        if on_trial:
            on_trial(t)
        if on_front_change and on_front(t, st):
            on_front_change(st)

    while (done := finished_count(study)) < n_trials:
        if timeout is not None and time.monotonic() - start >= timeout:
            break
        if done + running_count(study) >= n_trials:
            time.sleep(poll)
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial: FAIL, and queued again
            continue
        study.optimize(objective, n_trials=1, catch=(*TRAINING_FAULTS, Surplus), callbacks=[finished])
        ran += 1
    return ran
