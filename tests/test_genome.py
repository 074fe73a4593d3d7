import json
import random

import pytest
import torch

from archsearch.genome import Conv, Genome, GenomeError, Linear, Pool, TrainConfig
from archsearch.model import build_model, count_flops, count_params, layer_table
from archsearch.presets import PRESETS, get_preset

from conftest import random_genome

PUBLISHED = {"seed-11588": 11588, "seed-9798": 9798, "seed-18214": 18214, "seed-10970": 10970,
             "seed-4232": 4232, "seed-7932": 7932, "seed-18970": 18970}
RANDOM = [random_genome(random.Random(i), *((1, 28, 28), 10) if i % 4 else ((3, 32, 32), 7)) for i in range(500)]


def numel(g):
    return sum(p.numel() for p in build_model(g).parameters())


def test_all_seven_seeds_are_presets_with_published_counts():
    assert set(PUBLISHED) <= set(PRESETS)
    for name, n in PUBLISHED.items():
        g = PRESETS[name].genome
        assert count_params(g) == n == numel(g), name


def test_closed_form_count_matches_pytorch_on_500_random_genomes():
    assert len({g for g in RANDOM}) > 400  # really different networks
    for g in RANDOM:
        assert count_params(g) == numel(g), g.describe()


@pytest.mark.parametrize("g", [p.genome for p in PRESETS.values()] + RANDOM[:40], ids=lambda g: g.describe()[:40])
def test_built_model_output_shape_finite_and_every_parameter_gets_a_gradient(g):
    torch.manual_seed(0)
    m = build_model(g).train()
    x = torch.randn(4, *g.in_shape)
    y = m(x)
    assert y.shape == (4, g.num_classes)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_flops_match_fvcore_for_conv_and_linear():
    from fvcore.nn import FlopCountAnalysis
    for g in [p.genome for p in PRESETS.values()] + RANDOM[:20]:
        m = build_model(g).eval()
        fca = FlopCountAnalysis(m, torch.zeros(1, *g.in_shape))
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        ops = fca.by_operator()
        assert count_flops(g) == ops.get("conv", 0) + ops.get("linear", 0) + ops.get("addmm", 0), g.describe()


def test_round_trip_is_exact_and_plain_json():
    for g in [p.genome for p in PRESETS.values()] + RANDOM:
        d = json.loads(json.dumps(g.to_dict()))
        assert Genome.from_dict(d) == g
    cfg = TrainConfig(lr=0.1, schedule="step")
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("layers, words", [
    ((Conv(0), Pool("avg", 0), Conv(10, 1)), ["layer 0", "channels"]),
    ((Pool("max", 2), Pool("max", 2), Pool("max", 2), Conv(10, 5), Pool("avg", 0)), ["layer 3", "kernel 5", "3x3"]),
    ((Pool("max", 2), Pool("max", 2), Pool("max", 2), Pool("max", 2), Pool("max", 2)), ["layer 4", "below 1x1"]),
    ((Conv(8), Pool("avg", 0), Linear(7)), ["output", "10 classes"]),
    ((Conv(8), Pool("avg", 0)), ["output is 8x1x1"]),
    ((Conv(8), Linear(10), Conv(10)), ["layer 2", "Linear"]),
])
def test_invalid_genomes_are_refused_naming_the_layer(layers, words):
    with pytest.raises(GenomeError) as e:
        Genome.from_dict(Genome(layers).to_dict())
    for w in words:
        assert w in str(e.value)


def test_unknown_layer_type_lists_valid_types():
    with pytest.raises(GenomeError, match="conv, pool, linear"):
        Genome.from_dict({"layers": [{"type": "attention"}]})


def test_unknown_preset_lists_names():
    with pytest.raises(GenomeError, match="seed-7932"):
        get_preset("seed-1")


def test_layer_table_rows_add_up():
    g = PRESETS["seed-7932"].genome
    rows = layer_table(g)
    assert sum(r["params"] for r in rows) == 7932
    assert rows[0]["layer"] == "Conv2d-1" and rows[0]["shape"] == [8, 28, 28]
    assert rows[-1]["shape"] == [10]


def deployed(g) -> tuple[int, int]:
    """(int8 weight bytes, peak RAM bytes) measured on the built module in eval mode: weights from
    its Conv2d/Linear tensors, activations from the real tensors of one forward pass (hooks), with
    BatchNorm, ReLU, Dropout and Flatten run in place on their input (they make no new buffer)."""
    from torch import nn
    m = build_model(g).eval()
    weights = sum(mod.weight.numel() + 4 * mod.weight.shape[0] for mod in m.modules()
                  if isinstance(mod, (nn.Conv2d, nn.Linear)))
    sizes = []
    kernels = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)
    hooks = [mod.register_forward_hook(lambda mod, i, o: sizes.append(i[0][0].numel() + o[0].numel()))
             for mod in m.modules() if isinstance(mod, kernels)]
    with torch.no_grad():
        m(torch.zeros(1, *g.in_shape))
    for h in hooks:
        h.remove()
    return weights, max(sizes)


@pytest.mark.parametrize("g", [p.genome for p in PRESETS.values()] + RANDOM[:100], ids=lambda g: g.describe()[:40])
def test_int8_bytes_and_peak_ram_match_the_built_model(g):
    from archsearch.model import figures
    f = figures(g)
    assert (f["int8_bytes"], f["peak_ram"]) == deployed(g)
    assert f["macs"] == count_flops(g) and f["params"] == count_params(g)


def test_seed_7932s_deployment_figures_by_hand():
    from archsearch.model import figures
    f = figures(PRESETS["seed-7932"].genome)
    # The largest kernel is its second conv, 8 -> 10 channels at 28x28: 8 x 784 + 10 x 784 bytes.
    assert f["peak_ram"] == (8 + 10) * 28 * 28
