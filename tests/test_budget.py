import random

import pytest

from archsearch.budget import DoesNotFit, fit_to_budget, scale
from archsearch.model import count_params
from archsearch.presets import PRESETS

from conftest import random_genome


def layouts():
    rng = random.Random(7)
    out = [p.genome for p in PRESETS.values()]
    while len(out) < 60:
        g = random_genome(rng)
        if sum(1 for l in g.layers if hasattr(l, "out")) >= 2:  # something to scale
            out.append(g)
    return out


BUDGETS = [1000, 2000, 4000, 8000, 10000, 20000, 50000, 100000]


def test_never_over_budget_and_close_when_the_layout_allows():
    fits, gaps = 0, []
    for layout in layouts():
        for b in BUDGETS:
            try:
                fit = fit_to_budget(layout, b)
            except DoesNotFit as e:
                assert e.min_params > b
                assert count_params(scale(layout, 0.0)) == e.min_params
                continue
            assert fit.params == count_params(fit.genome) <= b
            fits += 1
            # One more unit of multiplier must overshoot: the fit is the largest.
            assert count_params(scale(layout, fit.multiplier * 1.05 + 1e-9)) > b or fit.multiplier > 1e6
            gaps.append(1 - fit.params / b)
    assert fits > 300
    gaps.sort()
    # Within a few percent of the budget for the large majority of fits; the
    # tail are layouts whose cheapest step is itself a few percent of a small budget.
    assert gaps[int(0.9 * len(gaps))] < 0.05, gaps[-20:]
    assert sum(gaps) / len(gaps) < 0.03


def test_seed_layouts_reach_within_a_few_percent():
    # 7%: seed-10970's 7x7 classifier costs ~490 params per input channel, 10% of 5k.
    for p in PRESETS.values():
        for b in (5000, 10000, 20000, 100000):
            assert 0.93 * b <= fit_to_budget(p.genome, b).params <= b, (p.name, b)


def test_layout_too_big_reports_minimum():
    g = PRESETS["seed-10970"].genome  # its 7x7 classifier alone is 10*k*49 + ...
    with pytest.raises(DoesNotFit) as e:
        fit_to_budget(g, 500)
    assert e.value.min_params > 500 and f"{e.value.min_params:,}" in str(e.value)


def test_classifier_keeps_num_classes():
    fit = fit_to_budget(PRESETS["seed-9798"].genome, 3000)
    assert fit.genome.layers[-2].out == 10


@pytest.mark.parametrize("max_macs, max_ram", [(200_000, None), (None, 6_000), (400_000, 8_000)])
def test_mac_and_ram_limits_are_met_by_construction_and_the_fit_is_the_largest(max_macs, max_ram):
    from archsearch.model import count_flops, peak_ram
    fitted = 0
    for layout in list(layouts())[:60]:
        try:
            fit = fit_to_budget(layout, 20000, max_macs=max_macs, max_ram=max_ram)
        except DoesNotFit as e:
            small = scale(layout, 0.0)
            assert count_params(small) > 20000 or (max_macs and count_flops(small) > max_macs) \
                or (max_ram and peak_ram(small) > max_ram), str(e)
            continue
        g = fit.genome
        assert count_params(g) <= 20000 and (max_macs is None or count_flops(g) <= max_macs) \
            and (max_ram is None or peak_ram(g) <= max_ram)
        bigger = scale(layout, fit.multiplier * 1.05 + 1e-9)  # a little wider breaks some limit
        assert count_params(bigger) > 20000 or (max_macs and count_flops(bigger) > max_macs) \
            or (max_ram and peak_ram(bigger) > max_ram) or fit.multiplier > 1e6
        fitted += 1
    assert fitted > 20
