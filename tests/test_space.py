"""The search space: every layout it can sample is a possible network."""
import optuna

from archsearch import space
from archsearch.budget import DoesNotFit, fit_to_budget
from archsearch.genome import trace


def test_every_sampled_layout_is_a_possible_network():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    too_big = 0
    for _ in range(600):
        trial = study.ask()
        choices, frac, cfg = space.sample(trial, 15)
        cfg.check()
        try:  # anything but "too big for the budget" would be a space that describes impossible nets
            genome = fit_to_budget(space.layout(choices, (1, 28, 28), 10), 10000).genome
        except DoesNotFit:
            too_big += 1
            continue
        assert trace(genome)[-1][2] in ((10,), (10, 1, 1))
    assert too_big < 0.1 * 600
