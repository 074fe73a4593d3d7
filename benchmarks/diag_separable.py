"""Diagnostic: would depthwise-separable convs (not in the search space) reach the issue's
stretch rows? One run each of a hand-made separable net at <= 2,000 and <= 8,000 params,
trained like a search trial: 55,000 training / 5,000 validation images (the search's fixed
split), 15 epochs, seed 0, the warm-start recipe (space.START; the recorded runs had the one before
change 27: Nesterov, batch 64, lr 0.03, cosine, label smoothing 0.01, rotation 2.5,
translate 0.05), one thread. Prints params,
final validation and test accuracy and s/epoch per net, to set beside the search's own
trials of the same size (docs/search-record.md, "Depthwise-separable convs").

    python benchmarks/diag_separable.py [sep2k sep8k] [--data-dir ../shared/data]

A separable block is a 3x3 depthwise conv, BN, ReLU, then a 1x1 conv, BN, ReLU
(MobileNet's); the first conv of a net is a plain 3x3 (one input channel has nothing to
separate). Stages are split by 2x2 max pools; the head is GAP and a 1x1 conv to the classes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from archsearch import data as D  # noqa: E402
from archsearch.genome import TrainConfig  # noqa: E402
from archsearch.space import START  # noqa: E402
from archsearch.train import evaluate, train  # noqa: E402

# Stages of ("c", width) plain 3x3 convs or ("s", width) separable blocks.
NETS = {
    "sep2k": [[("c", 8), ("s", 12)], [("s", 16), ("s", 16)], [("s", 20)]],                 # 1,862 params
    "sep8k": [[("c", 12), ("s", 24)], [("s", 32), ("s", 32)], [("s", 44), ("s", 44)]],     # 7,942 params
}


def conv_bn_relu(ci: int, co: int, k: int = 3, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(ci, co, k, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(co), nn.ReLU()]


def build(stages: list) -> nn.Sequential:
    layers, c = [], 1
    for i, stage in enumerate(stages):
        for kind, w in stage:
            layers += conv_bn_relu(c, w) if kind == "c" else conv_bn_relu(c, c, 3, c) + conv_bn_relu(c, w, 1)
            c = w
        if i < len(stages) - 1:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, 10, 1), nn.Flatten())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nets", nargs="*", default=list(NETS), choices=list(NETS))
    ap.add_argument("--data-dir", default=D.default_data_dir())
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = D.load("mnist", a.data_dir, val_size=5000)
    recipe = {k: START[k] for k in ("optimizer", "lr", "momentum", "weight_decay", "batch_size",
                                    "label_smoothing", "rotation", "translate")}
    cfg = TrainConfig(epochs=15, schedule="cosine", **recipe)
    rows = []
    for name in a.nets:
        torch.manual_seed(0)
        model = build(NETS[name])
        t0 = time.time()
        hist = train(model, data, cfg, seed=0,
                     on_epoch_end=lambda e, v: print(f"{name} epoch {e}: val {v:.2f}% ({time.time() - t0:.0f} s)",
                                                     flush=True))
        rows.append({"net": name, "params": sum(p.numel() for p in model.parameters()),
                     "val": hist[-1]["val_acc"], "test": evaluate(model, data, data.test_x, data.test_y),
                     "s_per_epoch": round(sum(h["seconds"] for h in hist) / len(hist), 1)})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'net':<7} {'params':>7} {'val %':>7} {'test %':>7} {'s/epoch':>8}")
    for r in rows:
        print(f"{r['net']:<7} {r['params']:>7,} {r['val']:>7.2f} {r['test']:>7.2f} {r['s_per_epoch']:>8.1f}")


if __name__ == "__main__":
    main()
