"""The search space: every layout it can sample is a possible network."""
import optuna

from archsearch import space
from archsearch.budget import DoesNotFit, fit_to_budget
from archsearch.genome import Conv, GenomeError, trace


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
        body = [l.out for l in genome.layers[:-1] if isinstance(l, Conv) and l.k > 1]  # not squeezes, head
        assert all(b >= a - 1 for a, b in zip(body, body[1:])), body  # never narrower with depth (+-1 rounding)
    assert too_big < 0.1 * 600 and full_head < 0.15 * 600
