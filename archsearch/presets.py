"""Named architectures as plain data: the seven hand-designed MNIST seeds, and the
models archsearch found that beat them (found_presets.json, written by
benchmarks/beat_seeds.py --ship from a real search and a 3-seed retrain).

Each preset is written from the layer tables in shared/seeds/README.md; a test
checks every parameter count against the published number. A seed's recipe is
its default TrainConfig where the write-up states it; what it leaves unsaid
(e.g. the lr of seed-10970) takes TrainConfig's defaults, listed in `recipe`.
Dropout rates that a write-up does not give (D2 in the 003 models) are 0.05.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .genome import Conv, Genome, GenomeError, Linear, Pool, TrainConfig


@dataclass(frozen=True)
class Preset:
    name: str
    genome: Genome
    train: TrainConfig
    source: str          # where it comes from
    reported: str        # the seed's own headline accuracy, as published
    recipe: str          # which TrainConfig fields the seed states
    measured: dict | None = None  # found presets: test_acc_mean/std/accs, epochs, machine, command

    @property
    def kind(self) -> str:
        """'seed' (a hand design, as published) or 'found' (a search's model, measured)."""
        return "found" if self.measured else "seed"


M, GAP = Pool("max", 2), Pool("avg", 0)


def _c(out, k=3, pad=1, bias=False, norm="bn_relu", drop=0.0, kind="dropout"):
    return Conv(out, k, pad, bias, norm, drop, kind)


def _rb(out, k=3, drop=0.1):  # seed-11588's unpadded, biased Conv-ReLU-BN-Dropout block
    return Conv(out, k, 0, True, "relu_bn", drop)


def _b(out, k=3, pad=1, drop=0.0, norm="bn_relu"):  # biased convs of seed-9798 / seed-18970
    return Conv(out, k, pad, True, norm, drop)


D2 = dict(drop=0.05, kind="dropout2d")

PRESETS = {p.name: p for p in [
    Preset("seed-11588",
           Genome((_rb(16), _rb(32), Conv(10, 1, 0, True, "none"), M, _rb(16), _rb(16), _rb(16), GAP, Linear(10))),
           TrainConfig(epochs=20, batch_size=128, optimizer="sgd", momentum=0.9),
           "shared/seeds/000_131861b3967ff315.txt", "99.28% (best = final)", "SGD momentum, bs 128, 20 epochs"),
    Preset("seed-9798",
           Genome((_b(10, drop=.05), _b(16, drop=.05), M, _b(10, 1, 0, norm="none"),
                   _b(16, drop=.05), _b(16, drop=.05), M, _b(10, 1, 0, norm="none"),
                   _b(16, drop=.05), _b(16, drop=.05), _b(10, 1, 0, norm="none"), GAP)),
           TrainConfig(epochs=19, batch_size=128, optimizer="sgd", momentum=0.9, lr=0.015, weight_decay=1e-4,
                       schedule="onecycle", rotation=7.0),
           "shared/seeds/001_f505d3a248fa0eb2.txt", "99.38% best (ep 16), 99.33% final",
           "SGD m 0.9, OneCycle max lr 0.015, wd 1e-4, bs 128, rotation 7, 19 epochs"),
    Preset("seed-18214",
           Genome((_c(4), _c(8), M, _c(16), _c(32), M, _c(40), GAP, Linear(10))),
           TrainConfig(epochs=15, batch_size=64),
           "shared/seeds/002_7c809534f2dd8652.txt, 003_86d878d7acb7154b.txt (model 0)",
           "99.44% best; 99.37-99.41% final", "bs 64, 15 epochs"),
    Preset("seed-10970",
           Genome((_c(10, pad=0), _c(10, pad=0), _c(20, pad=0, **D2), M, _c(10, 1, 0), _c(10, pad=0),
                   _c(20, pad=0, **D2), _c(10, 1, 0), _c(10, 7, 0, norm="none"))),
           TrainConfig(epochs=15, batch_size=64),
           "shared/seeds/003_86d878d7acb7154b.txt (model 1)", "99.40% best (ep 11), 99.37% final", "bs 64, 15 epochs"),
    Preset("seed-4232",
           Genome((_c(4), _c(8), M, _c(10, **D2), _c(12), M, _c(8, 1, 0), _c(12), _c(10, 1, 0),
                   _c(10, 3, 0, norm="none"), Pool("avg", 5))),
           TrainConfig(epochs=15, batch_size=128),
           "shared/seeds/003_86d878d7acb7154b.txt (model 2)", "99.16% (best = final)", "bs 128, 15 epochs"),
    Preset("seed-7932",
           Genome((_c(8), _c(10), M, _c(10, **D2), _c(16), M, _c(10, 1, 0), _c(16), _c(10, 3, 0),
                   _c(16, 3, 0, norm="none"), Pool("avg", 3), _c(10, 1, 0, norm="none"))),
           TrainConfig(epochs=15, batch_size=32),
           "shared/seeds/003_86d878d7acb7154b.txt (model 3)", "99.44% best (ep 13), 99.38% final", "bs 32, 15 epochs"),
    Preset("seed-18970",
           Genome((_b(10, drop=.1), _b(20, drop=.1), M, _b(10, drop=.1), _b(10, drop=.1), M,
                   _b(10, pad=0, drop=.1), _b(10, pad=0, drop=.1), _b(120, pad=0, drop=.1), Linear(10))),
           TrainConfig(epochs=20, batch_size=128, optimizer="sgd", momentum=0.9, lr=0.025, schedule="step",
                       step_size=9, gamma=0.15, rotation=7.0),
           "shared/seeds/004_e0f597909c6fbbdf.txt", "99.47% best (ep 12), ~99.40% final",
           "SGD m 0.9, lr 0.025, StepLR(9, 0.15), bs 128, rotation 7, ~20 epochs"),
]}


FOUND_FILE = Path(__file__).with_name("found_presets.json")


def _found() -> list[Preset]:
    """Presets found by a search: name (dataset and size, e.g. mnist-7.9k), genome, recipe,
    and the accuracy measured by retraining them (benchmarks/beat_seeds.py)."""
    if not FOUND_FILE.exists():
        return []
    out = []
    for d in json.loads(FOUND_FILE.read_text()):
        m = d["measured"]
        out.append(Preset(d["name"], Genome.from_dict(d["genome"]), TrainConfig.from_dict(d["train"]),
                          d["source"], f"{m['test_acc_mean']:.2f} ± {m['test_acc_std']:.2f}% (final epoch, "
                          f"{len(m['test_accs'])} seeds, measured)", "found by archsearch", m))
    return out


PRESETS.update((p.name, p) for p in _found())


def found_name(dataset: str, params: int) -> str:
    """mnist, 7,890 -> 'mnist-7.9k': what a user reads as dataset and size."""
    return f"{dataset}-{params / 1000:.1f}k"


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise GenomeError(f"unknown preset {name!r}; choose from: {', '.join(PRESETS)}") from None
