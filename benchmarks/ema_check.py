"""Would an exponential moving average (EMA) of the weights lift final-epoch accuracy?

Paired: one training run per seed, the raw weights and EMAs of them (several decays,
per optimizer step, BatchNorm buffers averaged too) evaluated on the test set after
every epoch, so the comparison is free of seed-to-seed noise. The product does not use
EMA; this is the evidence for that (docs/search-record.md, "EMA of the weights").

    python benchmarks/ema_check.py runs/beat-seeds-v6/train-trial68.json [--seeds 0 1]

The JSON is what `archsearch train --json` writes (genome + recipe). Needs MNIST in
$ARCHSEARCH_DATA. One thread: run two of these side by side on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from archsearch.data import load  # noqa: E402
from archsearch.genome import Genome, TrainConfig  # noqa: E402
from archsearch.model import build_model  # noqa: E402
from archsearch.train import evaluate, train  # noqa: E402

DECAYS = (0.998, 0.999, 0.9995)  # per step; at batch 64 an epoch is 937 steps


def run(genome: Genome, cfg: TrainConfig, data, seed: int) -> list[dict]:
    torch.manual_seed(seed)  # as train.fit: same seed, same initial weights
    model = build_model(genome)
    emas = {d: AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d), use_buffers=True) for d in DECAYS}

    def before_forward(module, _inputs):  # in training mode a forward follows every optimizer step
        if module.training:
            for e in emas.values():
                e.update_parameters(module)

    model.register_forward_pre_hook(before_forward)
    rows = []

    def on_epoch_end(epoch, _val):
        row = {"epoch": epoch, "raw": evaluate(model, data, data.test_x, data.test_y)}
        row.update({str(d): evaluate(e.module, data, data.test_x, data.test_y) for d, e in emas.items()})
        rows.append(row)
        print("  ".join(f"{k} {v:g}" for k, v in row.items()), flush=True)

    train(model, data, cfg, on_epoch_end, seed=seed)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trained", type=Path, help="a JSON from `archsearch train --json`")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    a = ap.parse_args()
    torch.set_num_threads(1)
    src = json.loads(a.trained.read_text())
    genome, cfg = Genome.from_dict(src["genome"]), TrainConfig.from_dict(src["train"])
    data = load("mnist", val_size=0)  # the full 60,000 training images, as `archsearch train`
    finals = [run(genome, cfg, data, s)[-1] for s in a.seeds]
    print(f"\n{a.trained.name}, final epoch, test accuracy by seed:")
    for key in ("raw", *map(str, DECAYS)):
        accs = [f[key] for f in finals]
        print(f"  {key:>7}: {', '.join(f'{x:.2f}' for x in accs)}  (mean {sum(accs) / len(accs):.3f})")


if __name__ == "__main__":
    main()
