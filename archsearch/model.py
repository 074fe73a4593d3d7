"""Genome -> list of torch ops -> nn.Module, parameter count, FLOPs, layer table.

`ops(genome)` is the single place that decides which torch modules a genome means.
The builder instantiates them, the counters add up their closed-form numbers, the
table prints them and export writes them out as source, so the four cannot drift.

FLOPs are multiply-accumulates (MACs) of Conv2d and Linear per image, closed form: the
convention fvcore uses (one MAC = one flop), tested equal to fvcore's count for
those ops. BatchNorm, ReLU and pooling are left out: BN folds into the conv at
inference and the rest is a few percent of a conv's work.

Deployment figures, for int8 inference executed layer by layer (as TFLite Micro does):
- int8 bytes: 1 byte per Conv2d/Linear weight and 4 per output channel (an int32 bias: the
  layer's own, or BatchNorm folded into it). Scales and zero points are left out.
- peak RAM: the largest input + output of one kernel, 1 byte per activation. Kernels are
  Conv2d (with its BatchNorm and ReLU fused, in place), pooling and Linear; Dropout and
  Flatten cost nothing. The input image counts as the first kernel's input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .genome import Conv, Genome, Linear, Pool, trace

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Op:
    module: str              # class name in torch.nn
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    shape: tuple = ()        # output shape per image
    params: int = 0
    flops: int = 0           # MACs per image

    def source(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"nn.{self.module}({', '.join(parts)})"


def ops(g: Genome) -> list[Op]:
    out: list[Op] = []
    for layer, (c, *hw), shape in trace(g):
        if isinstance(layer, Conv):
            co, h, w = shape
            out.append(Op("Conv2d", (c, co, layer.k), {"padding": layer.pad, "bias": layer.bias}, shape,
                          c * co * layer.k ** 2 + (co if layer.bias else 0), c * co * layer.k ** 2 * h * w))
            bn, relu = Op("BatchNorm2d", (co,), {}, shape, 2 * co), Op("ReLU", (), {}, shape)
            out += {"bn_relu": [bn, relu], "relu_bn": [relu, bn], "relu": [relu], "none": []}[layer.norm]
            if layer.drop:
                out.append(Op("Dropout2d" if layer.drop_kind == "dropout2d" else "Dropout", (layer.drop,), {}, shape))
        elif isinstance(layer, Pool):
            name = {"max": "MaxPool2d", "avg": "AvgPool2d"}[layer.op]
            if layer.k == 0:  # global: whole map to 1x1 whatever its size
                out.append(Op(f"Adaptive{name}", (1,), {}, shape))
            else:
                out.append(Op(name, (layer.k,), {}, shape))
        elif isinstance(layer, Linear):
            fin = c * (hw[0] * hw[1] if hw else 1)
            if hw:
                out.append(Op("Flatten", (), {}, (fin,)))
            out.append(Op("Linear", (fin, layer.out), {"bias": layer.bias}, shape,
                          fin * layer.out + (layer.out if layer.bias else 0), fin * layer.out))
    if len(out[-1].shape) == 3:  # a Cx1x1 map: logits are its channels
        out.append(Op("Flatten", (), {}, (out[-1].shape[0],)))
    return out


def build_model(g: Genome) -> nn.Sequential:
    """CPU fp32 module; device, dtype and memory format are the trainer's business."""
    from torch import nn  # here, not at the top: counting and tables need no torch (studies.py says why)
    return nn.Sequential(*[getattr(nn, op.module)(*op.args, **op.kwargs) for op in ops(g)])


def count_params(g: Genome) -> int:
    return sum(op.params for op in ops(g))


def count_flops(g: Genome) -> int:
    return sum(op.flops for op in ops(g))


KERNELS = ("Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "AdaptiveMaxPool2d", "AdaptiveAvgPool2d")


def count_int8_bytes(g: Genome) -> int:
    """Bytes of the weights of an int8 deployment (module docstring)."""
    return sum(op.params - (op.shape[0] if op.kwargs.get("bias") else 0) + 4 * op.shape[0]
               for op in ops(g) if op.module in ("Conv2d", "Linear"))


def _size(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def peak_ram(g: Genome) -> int:
    """Bytes of int8 activations alive at once, layer by layer (module docstring)."""
    peak, current = 0, _size(g.in_shape)
    for op in ops(g):
        if op.module in KERNELS:
            peak = max(peak, current + _size(op.shape))
            current = _size(op.shape)
    return peak


def figures(g: Genome) -> dict:
    """What must fit on a device: params, MACs per image, int8 weight bytes, peak RAM bytes."""
    return {"params": count_params(g), "macs": count_flops(g), "int8_bytes": count_int8_bytes(g),
            "peak_ram": peak_ram(g)}


def layer_table(g: Genome) -> list[dict]:
    """Rows like torchsummary's: one per module, numbered from 1."""
    return [{"layer": f"{op.module}-{i}", "shape": list(op.shape), "params": op.params, "flops": op.flops}
            for i, op in enumerate(ops(g), 1)]
