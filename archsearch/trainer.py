"""A plain training loop over device-resident tensors. Knows nothing of Optuna.

`train(model, data, cfg, on_epoch_end)` calls `on_epoch_end(epoch, val_acc)` after
each epoch; the callback may raise to stop (the search uses this for pruning).
Speed comes from (measured in benchmarks/epoch_speed.py): batches sliced from
uint8 tensors with randperm (no DataLoader, no PIL), augmentation of the whole
batch at once with affine_grid/grid_sample, a cheaper dropout mask, channels_last on
CUDA, and bf16 autocast where the hardware has bf16.
"""
from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import Data
from .genome import Genome, TrainConfig
from .errors import ArchsearchError
from .model import build_model

CHECK_EVERY = 25  # steps between finite-loss checks: a host sync on CUDA, so not every step


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite (usually: learning rate too high)."""


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ArchsearchError(f"--device {name}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ArchsearchError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ArchsearchError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type != "cpu":
        raise ArchsearchError(f"--device {name}: use auto, cpu, cuda or cuda:N")
    return dev


def default_precision(device: torch.device) -> str:
    """bf16 on CUDA where supported; fp32 on every CPU.

    On a CPU without AVX512-BF16/AMX (this project's AVX2 machine) bf16 is emulated and
    measured 2.7-4x *slower* than fp32 (benchmarks/epoch_speed.py). On one with AMX it is
    native but bought little and cost accuracy: mnist-6.6k, 15 epochs, 3 seeds, 1 thread,
    8.0 s/epoch and 99.28% test in bf16 against 9.0 s/epoch and 99.38% in fp32
    (docs/decisions.md). --precision bf16 still asks for it.
    """
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random rotation / translation / scale per sample. x: float [B, C, H, W] in [0, 1]."""
    if not (cfg.rotation or cfg.translate or cfg.scale):
        return x
    b = x.shape[0]
    u = lambda: torch.rand(b, generator=gen, device=x.device) * 2 - 1  # uniform in [-1, 1]
    angle = u() * math.radians(cfg.rotation)
    s = 1 + u() * cfg.scale
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    tx, ty = u() * 2 * cfg.translate, u() * 2 * cfg.translate  # grid units: image spans [-1, 1]
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class FastDropout(nn.Dropout):
    """nn.Dropout with a cheaper mask: one 64-bit draw gives four 16-bit uniforms.

    On CPU, bernoulli_ draws one 32-bit number per element and was 29% of a
    seed-9798 step; this mask costs a quarter of that (3.9 vs 14.2 ms for
    128x16x28x28). Keep probability is exact to 1/65536. Same module otherwise:
    no parameters, so state_dicts and exports are unaffected.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        n = x.numel()
        bits = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
        u16 = bits.view(torch.int16)[:n]
        # Same memory layout as x (channels_last included), or the product goes strided.
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            n_, c, h, w = x.shape
            u16 = u16.view(n_, h, w, c).permute(0, 3, 1, 2)
        else:
            u16 = u16.view(x.shape)
        keep = u16 >= round(-32768 + self.p * 65536)
        return torch.where(keep, x, 0.0) * (1.0 / (1.0 - self.p))


def use_fast_dropout(model: nn.Module) -> nn.Module:
    for name, mod in list(model.named_children()):
        if type(mod) is nn.Dropout:
            setattr(model, name, FastDropout(mod.p))
        else:
            use_fast_dropout(mod)
    return model


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on CUDA (tensor-core kernels want NHWC); NCHW on CPU.

    On the 2-core AVX2 CPU neither layout wins everywhere (channels_last: 15%
    faster for seed-9798, 20% slower for seed-7932, where BatchNorm dominates),
    and the two round differently, so choosing by timing would make one seed give
    two results. A fixed rule keeps runs reproducible.
    """
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def check_compile(device: torch.device) -> None:
    """torch.compile is offered on CUDA only: on the 2-core CPU it took 50 s per
    model to compile and ran no faster (130 vs 119 ms/step)."""
    if device.type != "cuda":
        raise ArchsearchError("--compile needs CUDA (on CPU it costs ~50 s per model and is no faster); drop it")


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, nesterov=cfg.optimizer == "nesterov")


def _scheduler(opt, cfg: TrainConfig, steps_per_epoch: int):
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle" and int(cfg.pct_start * total) >= 2:
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=cfg.pct_start)
    if cfg.schedule in ("cosine", "onecycle"):  # onecycle with < 2 warm-up steps (OneCycleLR divides by 0)
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size * steps_per_epoch, gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, x: torch.Tensor, y: torch.Tensor, precision: str = "fp32",
             batch: int = 2000) -> float:
    """Accuracy in percent."""
    if len(x) == 0:
        return float("nan")
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=data.device)
    fmt = memory_format(data.device)  # the layout train() gave the model
    with autocast(data.device, precision):
        for i in range(0, len(x), batch):
            xb = data.normalize(x[i:i + batch]).contiguous(memory_format=fmt)
            correct += (model(xb).argmax(1) == y[i:i + batch]).sum()
    return 100.0 * correct.item() / len(x)


def train(model: nn.Module, data: Data, cfg: TrainConfig, on_epoch_end: Callable | None = None,
          precision: str = "fp32", seed: int = 0, progress: bool = False, compile: bool = False,
          loss_fn: Callable | None = None) -> list[dict]:
    """Train in place on data.train_*; evaluate on data.val_* after each epoch (if any).

    Returns one dict per epoch: epoch, train_loss, train_acc, val_acc (None without a
    validation split), seconds. Raises TrainingDiverged on a non-finite loss.
    compile=True runs the forward through torch.compile (see check_compile).
    loss_fn(logits, x, y) replaces the cross-entropy (x: the normalised, augmented batch).
    """
    cfg.check()
    if compile:
        check_compile(data.device)
    n = len(data.train_x)
    bs = min(cfg.batch_size, n)
    use_fast_dropout(model.to(data.device))
    fmt = memory_format(data.device)
    model.to(memory_format=fmt)
    forward = torch.compile(model) if compile else model
    torch.manual_seed(seed)  # dropout draws from the global generator
    gen = torch.Generator(device=data.device).manual_seed(seed)
    steps = n // bs  # drop the ragged last batch: a 1-sample batch breaks BatchNorm
    opt = _optimizer(model, cfg)
    sched = _scheduler(opt, cfg, steps)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.epochs * steps, file=sys.stderr, unit="step", dynamic_ncols=True, leave=False,
                   disable=None)  # None: only on a terminal
    history = []
    try:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(n, generator=gen, device=data.device)
            loss_sum = torch.zeros((), device=data.device)
            correct = torch.zeros((), dtype=torch.long, device=data.device)
            for step in range(steps):
                idx = perm[step * bs:(step + 1) * bs]
                x = augment(data.train_x[idx].float().div_(255), cfg, gen)
                x = data.normalize(x).contiguous(memory_format=fmt)
                y = data.train_y[idx]
                with autocast(data.device, precision):
                    logits = forward(x)
                if loss_fn is None:
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                else:
                    loss = loss_fn(logits.float(), x, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += loss.detach()
                correct += (logits.argmax(1) == y).sum()
                if (step + 1) % CHECK_EVERY == 0 or step == steps - 1:
                    if not torch.isfinite(loss_sum):
                        raise TrainingDiverged(f"loss became {loss_sum.item()} in epoch {epoch} step {step + 1} "
                                               f"(lr {cfg.lr:g}); lower the learning rate")
                    if bar:
                        bar.set_description(f"epoch {epoch}/{cfg.epochs}")
                        bar.set_postfix(loss=f"{loss_sum.item() / (step + 1):.4f}",
                                        acc=f"{100 * correct.item() / ((step + 1) * bs):.2f}")
                        bar.update(step + 1 - bar.n + (epoch - 1) * steps)
            val_acc = evaluate(model, data, data.val_x, data.val_y, precision) if len(data.val_x) else None
            history.append({"epoch": epoch, "train_loss": loss_sum.item() / steps,
                            "train_acc": 100.0 * correct.item() / (steps * bs), "val_acc": val_acc,
                            "seconds": time.perf_counter() - t0})
            if on_epoch_end is not None:
                on_epoch_end(epoch, val_acc)
    finally:
        if bar:
            bar.close()
    return history


def fit(genome: Genome, data: Data, cfg: TrainConfig, seed: int, precision: str = "fp32",
        on_epoch_end: Callable | None = None, progress: bool = False,
        compile: bool = False, loss_fn: Callable | None = None) -> tuple[nn.Module, list[dict]]:
    """Build the genome's model from `seed` and train it: (model, train()'s history).
    The one recipe behind `archsearch train`, a search trial and `export --retrain`,
    so the same seed gives the same model in all three."""
    torch.manual_seed(seed)  # the initial weights
    model = build_model(genome)
    history = train(model, data, cfg, on_epoch_end, precision=precision, seed=seed, progress=progress,
                    compile=compile, loss_fn=loss_fn)
    return model, history
