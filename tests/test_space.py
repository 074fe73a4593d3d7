import math
"""The search space: every layout it can sample is a possible network."""
import optuna

from archsearch import space
from archsearch.budget import DoesNotFit, fit_to_budget
from archsearch.genome import Conv, GenomeError, Pool, trace


def test_every_sampled_layout_is_a_possible_network():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    too_big = full_head = 0
    for _ in range(600):
        trial = study.ask()
        choices, frac, cfg = space.sample(trial, 15)
        cfg.check()
        # Only two refusals are allowed: too big for the budget, and a conv_full head on a
        # map over 7x7 (refused on purpose). Anything else would be an impossible net.
        try:
            genome = fit_to_budget(space.layout(choices, (1, 28, 28), 10), 10000).genome
        except DoesNotFit:
            too_big += 1
            continue
        except GenomeError as e:
            assert choices["head"] == "conv_full" and "conv_full head over a" in str(e), e
            full_head += 1
            continue
        assert trace(genome)[-1][2] in ((10,), (10, 1, 1))
        assert sum(isinstance(l, Pool) and l.k == 2 for l in genome.layers) >= 1  # a pool before the head
        body = [l.out for l in genome.layers[:-1] if isinstance(l, Conv) and l.k > 1]  # not squeezes, head
        assert all(b >= a - 1 for a, b in zip(body, body[1:])), body  # never narrower with depth (+-1 rounding)
    assert too_big < 0.1 * 600 and full_head < 0.15 * 600


def test_sizes_sweep_the_budget_evenly_and_the_sampler_picks_the_rest():
    assert [round(space.sweep(n, 1, 16), 3) for n in range(4)] == [4.0, 2.0, 8.0, 1.414]  # 2^4u, u = 1/2, 1/4, 3/4, 1/8
    fracs = sorted(space.sweep(n, *space.SIZE_FRAC) for n in range(64))
    octaves = [sum(lo <= f < 2 * lo for f in fracs) for lo in (0.05, 0.1, 0.2, 0.4)]
    assert max(octaves) - min(octaves) <= 1  # 64 trials: the same number in every octave of size
    for shift in (0.3, 0.9):  # a rotated sweep is as even, at other sizes
        moved = sorted(space.sweep(n, *space.SIZE_FRAC, shift) for n in range(64))
        octaves = [sum(lo <= f < 2 * lo for f in moved) for lo in (0.05, 0.1, 0.2, 0.4)]
        assert max(octaves) - min(octaves) <= 1 and not set(moved) & set(fracs)
        assert all(space.SIZE_FRAC[0] <= f <= space.SIZE_FRAC[1] for f in moved)
    from archsearch.engine import make_sampler
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler("tpe", 0))
    for n in range(14):  # past TPE's 10 random start-up trials
        t = study.ask()
        space.sample(t, 15)
        assert t.params["size_frac"] == space.sweep(t.number, *space.SIZE_FRAC)
        study.tell(t, [90.0 + n % 5, 1000.0 * (n + 1)])
    study.enqueue_trial({"size_frac": 0.5})  # what a retried trial looks like: its parameters fixed
    t = study.ask()
    space.sample(t, 15)
    assert t.params["size_frac"] == 0.5


def test_every_third_trial_from_20_copies_the_front_model_nearest_its_size():
    done = lambda n, frac, acc, size: optuna.trial.create_trial(
        values=[acc, size], user_attrs={"size_frac": frac}, params={}, distributions={})
    study = optuna.create_study(directions=["maximize", "minimize"])
    for frac, acc, size in [(0.1, 98.0, 1000), (0.3, 99.0, 3000), (0.9, 99.5, 9000), (0.5, 98.5, 5000)]:
        study.add_trial(done(0, frac, acc, size))  # the last is dominated by the 3000-param one
    trials = study.get_trials()
    for number in range(40):
        t = space.rescale_template(trials, number, every=3, shift=0.0)
        if number < 20 or number % 3 != 2:
            assert t is None, number
            continue
        frac = space.sweep(number, *space.SIZE_FRAC)
        front = [x for x in trials if x.values[1] != 5000]
        nearest = min(front, key=lambda x: abs(math.log(x.user_attrs["size_frac"] / frac)))
        assert t.number == nearest.number, number
    assert space.rescale_template(trials, 23, every=0, shift=0.0) is None  # off
    assert space.rescale_template([], 23, every=3, shift=0.0) is None      # no front yet
