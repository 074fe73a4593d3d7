"""The search space: the only module that calls trial.suggest_*.

A trial samples a *layout* (stages, convs per stage, kernels, padding, transition,
head, norm order, dropout, width growth per stage), a *size fraction* of the budget and a
training recipe. Every parameter is suggested in every trial with a fixed range,
whether used or not (a stage beyond `stages` ignores its values): a static space
is what multivariate TPE models jointly; conditional parameters would make it fall
back to independent sampling. `budget.fit_to_budget` turns layout + fraction into
a genome, so every model is within budget by construction.
"""
from __future__ import annotations

import math
from dataclasses import replace

import optuna
from optuna.trial import TrialState

from .genome import Conv, Genome, GenomeError, Linear, Pool, TrainConfig
from .presets import PRESETS
from .pruning import dominates

MIN_STAGES = 2          # at least one pool before the head: one-stage nets could not learn
MAX_STAGES = 4          # 28x28 -> 14 -> 7 -> 3 with three max-pool transitions
HEADS = ("gap_linear", "conv_gap", "conv_full", "gap_conv")
TRANSITIONS = ("max", "max_1x1")
FULL_HEAD_MAX = 7       # largest map a conv_full head may cover (seed-10970's 7x7)
# Share of the budget a trial's model may use: from 0.05, since 0.1-1 lost the smallest models.
SIZE_FRAC = (0.05, 1.0)


def sample(trial, epochs: int) -> tuple[dict, float, TrainConfig]:
    """Layout choices (plain dict), size fraction, training config."""
    p = {
        # At least two stages: one wide conv at full resolution reached ~80% and ate CPU time.
        "stages": trial.suggest_int("stages", MIN_STAGES, MAX_STAGES),
        "padding": trial.suggest_categorical("padding", ["same", "valid"]),
        "transition": trial.suggest_categorical("transition", list(TRANSITIONS)),
        "squeeze": trial.suggest_float("squeeze", 0.3, 1.0),          # 1x1 transition width / stage width
        "head": trial.suggest_categorical("head", list(HEADS)),
        "norm": trial.suggest_categorical("norm", ["bn_relu", "relu_bn"]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.15),
        "drop_kind": trial.suggest_categorical("drop_kind", ["dropout", "dropout2d"]),
        # Stage s is growth**s times as wide as stage 0: independent widths per stage gave most
        # models a layer of <= 3 channels.
        "width_growth": trial.suggest_float("width_growth", 1.0, 2.5),
    }
    for s in range(MAX_STAGES):
        p[f"convs{s}"] = trial.suggest_int(f"convs{s}", 1, 3)
        p[f"k{s}"] = trial.suggest_categorical(f"k{s}", [3, 5])
    frac = trial.suggest_float("size_frac", *SIZE_FRAC, log=True)  # chosen by SizeSweep, not the sampler
    # The region where small BN nets train well in 15 epochs; wider ranges wasted most trials on
    # recipes that cannot work, narrower ones did not help (docs/decisions.md).
    cfg = TrainConfig(
        epochs=epochs,
        optimizer=trial.suggest_categorical("optimizer", ["sgd", "nesterov"]),
        lr=trial.suggest_float("lr", 0.02, 0.4, log=True),  # start lr of the cosine decay
        momentum=trial.suggest_float("momentum", 0.85, 0.95),
        weight_decay=trial.suggest_float("weight_decay", 1e-5, 3e-4, log=True),
        # No batch 32: 1.1-1.4x the time per epoch, and no row won when the search used it.
        batch_size=trial.suggest_categorical("batch_size", [64, 128, 256]),
        # Cosine only: pruning compares trials at the same epoch, and OneCycle's warm-up holds its
        # early accuracy down, so its trials died at the first rung.
        schedule="cosine",
        label_smoothing=trial.suggest_float("label_smoothing", 0.0, 0.1),
        rotation=trial.suggest_float("rotation", 0.0, 10.0),      # +- degrees
        translate=trial.suggest_float("translate", 0.0, 0.1),     # +- fraction of the image
        scale=trial.suggest_float("scale", 0.0, 0.15),            # +- fraction of zoom
    )
    return p, frac, cfg


# The warm starts (`starts`, default 6): a new study first trains one textbook layout with a
# proven recipe, at sizes across the budget, so the front holds a good model of that family
# from the start. They are a trial kind of their own ("start"), with no sampled parameters:
# their recipe (OneCycle, batch 32) lies outside the space, and they record what they train.
# Layout: three same-padded stages of 3x3 convs (2, 2, 3), max pools, GAP, a 1x1 conv head,
# no dropout (VGG-style); the sampler kept missing it. Recipe: seed-7932's (SGD, OneCycle to lr
# 0.05, batch 32, rotation 7) with zoom 0.1 and translation 0.05, which retrained this layout at
# 7,816 params at 99.478% over 6 seeds against 99.427% with the best in-space recipe.
START_LAYOUT = {
    "stages": 3, "padding": "same", "transition": "max", "squeeze": 1.0, "head": "gap_conv",
    "norm": "bn_relu", "dropout": 0.0, "drop_kind": "dropout", "width_growth": 1.4,
    "convs0": 2, "k0": 3, "convs1": 2, "k1": 3, "convs2": 3, "k2": 3,
}
START_RECIPE = replace(PRESETS["seed-7932"].train, translate=0.05, scale=0.1)


def sweep(number: int, low: float, high: float, shift: float = 0.0) -> float:
    """Trial `number`'s point in [low, high], log scale, by the van der Corput sequence
    (1/2, 1/4, 3/4, 1/8, ...): every octave of size gets trials in turn, evenly. `shift`
    (0-1, set by the study's seed) rotates the sequence, so that searches with other seeds
    train other sizes with the same evenness."""
    u, scale, n = shift, 0.5, number + 1
    while n:
        u, scale, n = u + scale * (n & 1), scale / 2, n >> 1
    return low * (high / low) ** (u % 1.0)


def rescale_template(trials, number: int, every: int, shift: float, start: int = 20):
    """The COMPLETE front trial that trial `number` copies at its own size, or None.

    From trial `start` on, every `every`-th trial takes the layout and recipe of the front
    model nearest its size (by size fraction) and changes only the size: a search once found
    99.52% at 6,640 params and nothing on the front between 6.6k and 14k, where the same net
    was never trained."""
    if not every or number < start or number % every != every - 1:
        return None
    done = [t for t in trials if t.state == TrialState.COMPLETE and "size_frac" in t.user_attrs]
    front = [t for t in done if not any(dominates(o.values, t.values) for o in done)]
    frac = sweep(number, *SIZE_FRAC, shift)
    return min(front, key=lambda t: abs(math.log(t.user_attrs["size_frac"] / frac)), default=None)


class SizeSweep(optuna.samplers.BaseSampler):
    """A sampler for everything but the size fraction, which sweeps the budget instead.

    Left to multivariate TPE, the size drifted to the small end: small models are cheap to
    complete and easily non-dominated, so they became TPE's "good" trials. The base sampler
    still learns which layouts and recipes work, from good trials of every size. A retried
    trial keeps its size (Optuna fixes a retried trial's parameters before sampling).

    Trials of the other kinds (starts, rescaled copies, presets) have no parameters; they
    are left out of the joint search space, which Optuna would otherwise intersect to nothing.
    """

    def __init__(self, base: optuna.samplers.BaseSampler, shift: float = 0.0):
        self.base, self.shift = base, shift

    def infer_relative_search_space(self, study, trial):
        if not isinstance(self.base, optuna.samplers.TPESampler):
            return self.base.infer_relative_search_space(study, trial)
        sampled = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                   if t.distributions]
        space = optuna.search_space.intersection_search_space(sampled, include_pruned=True)
        return {k: d for k, d in space.items() if k != "size_frac" and not d.single()}

    def sample_relative(self, study, trial, search_space):
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, name, distribution):
        if name == "size_frac":
            return sweep(trial.number, distribution.low, distribution.high, self.shift)
        return self.base.sample_independent(study, trial, name, distribution)

    def before_trial(self, study, trial):
        self.base.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self):
        self.base.reseed_rng()


def layout(p: dict, in_shape: tuple, num_classes: int) -> Genome:
    """Layout choices -> a Genome with relative widths (for fit_to_budget).

    "valid" padding shrinks the map only while at least 3x3 (and enough for the
    stage's remaining 2x2 pools) would remain; later convs pad "same". (Strict valid
    padding over 3-4 stages shrank the map below the kernel: 10 of 38 sampled trials in
    the first real search were impossible.) A conv_full head over a map larger than
    7x7 raises GenomeError: the search records it as infeasible at once.
    """
    layers: list = []
    h = in_shape[1]
    for s in range(p["stages"]):
        k, w = p[f"k{s}"], 8.0 * p["width_growth"] ** s  # relative: fit_to_budget scales them all
        drop = dict(drop=round(p["dropout"], 4), drop_kind=p["drop_kind"]) if p["dropout"] >= 0.01 else {}
        keep = max(3, 2 ** (p["stages"] - 1 - s))  # smallest map a valid conv may leave
        for _ in range(p[f"convs{s}"]):
            pad = 0 if p["padding"] == "valid" and h - k + 1 >= keep else k // 2
            layers.append(Conv(w, k, pad, False, p["norm"], **drop))
            h = h + 2 * pad - k + 1
        if s < p["stages"] - 1:
            layers.append(Pool("max", 2))
            h //= 2
            if p["transition"] == "max_1x1":
                layers.append(Conv(w * p["squeeze"], 1, 0, False, p["norm"]))
    head = p["head"]
    if head == "gap_linear":
        layers += [Pool("avg", 0), Linear(num_classes)]
    elif head == "gap_conv":
        layers += [Pool("avg", 0), Conv(num_classes, 1, 0, False, "none")]
    elif head == "conv_gap":
        layers += [Conv(num_classes, 1, 0, False, "none"), Pool("avg", 0)]
    else:  # conv_full: one conv whose kernel covers the whole remaining map (seed-10970's 7x7)
        if h > FULL_HEAD_MAX:  # a 14x14 or 28x28 kernel would hold most of the budget
            raise GenomeError(f"a conv_full head over a {h}x{h} map (at most {FULL_HEAD_MAX}x{FULL_HEAD_MAX}): "
                              f"its kernel would take most of the budget")
        layers += [Conv(num_classes, max(1, h), 0, False, "none")]
    return Genome(tuple(layers), tuple(in_shape), num_classes)


MIN_SIDE = 8  # the smallest images the space builds for: 4 stages pool 8x8 down to 1x1


def check_input(in_shape: tuple) -> None:
    """Refuse, in one line, images the space cannot build for: not square, or under 8x8."""
    c, h, w = in_shape
    if h != w:
        raise GenomeError(f"images of {h}x{w} are not square; resize them (--image-size N)")
    if h < MIN_SIDE:
        raise GenomeError(f"images of {h}x{w} are smaller than the search space builds for ({MIN_SIDE}x{MIN_SIDE}); "
                          f"enlarge them (--image-size {MIN_SIDE})")


def smallest_layout(in_shape: tuple, num_classes: int) -> Genome:
    """The cheapest network the space can describe: two one-conv stages, a 1x1 conv head, GAP."""
    return Genome((Conv(1, 3, 1), Pool("max", 2), Conv(1, 3, 1), Conv(num_classes, 1, 0, False, "none"),
                   Pool("avg", 0)), tuple(in_shape), num_classes)
