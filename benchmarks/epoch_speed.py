"""Seconds per full 60k-image MNIST epoch: a seed-style loop vs the archsearch trainer.

(a) seed-style, as the seed write-ups train: torchvision MNIST + DataLoader (batch
    128, shuffle, num_workers=0 as their CPU path) + PIL RandomRotation(+-7) +
    ToTensor + Normalize, fp32, SGD momentum, loss.item() every step for tqdm.
(b) archsearch's train() on the same preset, batch size and augmentation, with
    the precision named on the command line (default: the trainer's default).

Same model (seed-9798 unless --preset), same 60,000 images, one epoch each after
a short warm-up. Prints both, side by side, and the ratio.

    python benchmarks/epoch_speed.py [--preset seed-9798] [--epochs 1] [--device cpu]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from archsearch import data as D  # noqa: E402
from archsearch.model import build_model  # noqa: E402
from archsearch.presets import get_preset  # noqa: E402
from archsearch.trainer import default_precision, resolve_device, train  # noqa: E402


def seed_style_epoch(genome, data_dir: str, device: torch.device, batch: int) -> float:
    import torchvision
    from torchvision import transforms
    # torchvision extracts the .gz files next to themselves: give it a private copy
    # so nothing is written into a shared, read-only data directory.
    tmp = Path(tempfile.mkdtemp(prefix="archsearch-bench-"))
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in D.IDX_FILES:
        shutil.copy(Path(data_dir) / "MNIST" / "raw" / f"{f}.gz", raw)
    tf = transforms.Compose([transforms.RandomRotation((-7.0, 7.0), fill=(0,)), transforms.ToTensor(),
                             transforms.Normalize((0.1307,), (0.3081,))])
    ds = torchvision.datasets.MNIST(str(tmp), train=True, download=True, transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0)
    torch.manual_seed(0)
    model = build_model(genome).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.015, momentum=0.9, weight_decay=1e-4)
    model.train()
    t0 = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()  # the seeds' tqdm postfix reads the loss every step
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    shutil.rmtree(tmp)
    return seconds


def archsearch_epoch(preset, data_dir: str, device: torch.device, batch: int, precision: str, epochs: int) -> float:
    data = D.load("mnist", data_dir, val_size=0, device=device)  # all 60,000 training images
    cfg = replace(preset.train, epochs=epochs, batch_size=batch, rotation=7.0)
    torch.manual_seed(0)
    model = build_model(preset.genome)
    hist = train(model, data, cfg, precision=precision)
    return min(h["seconds"] for h in hist)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="seed-9798")
    ap.add_argument("--data-dir", default=D.default_data_dir())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default=None, help="bf16 or fp32 (default: the trainer's default here)")
    ap.add_argument("--epochs", type=int, default=1, help="archsearch epochs; the fastest is reported")
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    device = resolve_device(a.device)
    precision = a.precision or default_precision(device)
    preset = get_preset(a.preset)
    print(f"# {a.preset}, batch {a.batch}, device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    seed = seed_style_epoch(preset.genome, a.data_dir, device, a.batch)
    print(f"seed-style  (DataLoader + PIL rotation, fp32): {seed:7.2f} s/epoch", flush=True)
    ours = archsearch_epoch(preset, a.data_dir, device, a.batch, precision, a.epochs)
    print(f"archsearch  (device tensors, {precision:>4}):            {ours:7.2f} s/epoch", flush=True)
    print(f"speed-up: {seed / ours:.2f}x")


if __name__ == "__main__":
    main()
