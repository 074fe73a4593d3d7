"""A CNN and its training recipe as plain, frozen data.

A Genome is an input shape, a class count and a tuple of layers. Everything else
(the nn.Module, the parameter count, FLOPs, the layer table, the exported source)
is derived from it, so a genome round-trips through JSON and two equal genomes are
the same network. Input channels are not stored: they follow from the previous
layer, which makes an inconsistent genome impossible to write down.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from .errors import ArchsearchError

NORMS = ("bn_relu", "relu_bn", "relu", "none")  # what follows a conv
DROP_KINDS = ("dropout", "dropout2d")           # element-wise or whole channels
POOL_OPS = ("max", "avg")


class GenomeError(ArchsearchError):
    """A genome (or config) that cannot describe a working network."""


@dataclass(frozen=True)
class Conv:
    out: int                  # output channels
    k: int = 3                # square kernel
    pad: int = 0
    bias: bool = False
    norm: str = "bn_relu"     # bn_relu: Conv-BN-ReLU; relu_bn: Conv-ReLU-BN; relu; none
    drop: float = 0.0         # dropout rate after the block (0 = none)
    drop_kind: str = "dropout"

    def describe(self) -> str:
        extra = {"bn_relu": " BR", "relu_bn": " RB", "relu": " R", "none": ""}[self.norm]
        d = "" if not self.drop else f" {'D2' if self.drop_kind == 'dropout2d' else 'D'}({self.drop:g})"
        return f"c{self.k}x{self.k}p{self.pad}:{self.out}{'+b' if self.bias else ''}{extra}{d}"


@dataclass(frozen=True)
class Pool:
    op: str = "max"           # max | avg
    k: int = 2                # window = stride; 0 = global (whole map to 1x1)

    def describe(self) -> str:
        if self.k == 0:
            return "GAP" if self.op == "avg" else "GMP"
        return f"{'M' if self.op == 'max' else 'AP'}{self.k}"


@dataclass(frozen=True)
class Linear:
    out: int                  # output features; a spatial input is flattened first
    bias: bool = True

    def describe(self) -> str:
        return f"L:{self.out}"


LAYER_TYPES = {"conv": Conv, "pool": Pool, "linear": Linear}
_TYPE_NAMES = {cls: name for name, cls in LAYER_TYPES.items()}


@dataclass(frozen=True)
class Genome:
    layers: tuple
    in_shape: tuple = (1, 28, 28)     # C, H, W of one input image
    num_classes: int = 10

    def to_dict(self) -> dict:
        return {
            "in_shape": list(self.in_shape),
            "num_classes": self.num_classes,
            "layers": [{"type": _TYPE_NAMES[type(l)], **asdict(l)} for l in self.layers],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Genome":
        if not isinstance(d, dict) or "layers" not in d:
            raise GenomeError("genome must be an object with a 'layers' list")
        layers = []
        for i, ld in enumerate(d["layers"]):
            ld = dict(ld)
            kind = ld.pop("type", None)
            if kind not in LAYER_TYPES:
                raise GenomeError(f"layer {i}: unknown type {kind!r}; valid types: {', '.join(LAYER_TYPES)}")
            layer_cls = LAYER_TYPES[kind]
            known = {f.name for f in fields(layer_cls)}
            unknown = set(ld) - known
            if unknown:
                raise GenomeError(f"layer {i} ({kind}): unknown field(s) {sorted(unknown)}; valid: {sorted(known)}")
            try:
                layers.append(layer_cls(**ld))
            except TypeError as e:
                raise GenomeError(f"layer {i} ({kind}): {e}") from None
        g = cls(tuple(layers), tuple(d.get("in_shape", (1, 28, 28))), int(d.get("num_classes", 10)))
        trace(g)  # refuse invalid genomes at the door
        return g

    def describe(self) -> str:
        """One line, e.g. 'c3x3p1:8 BR > c3x3p1:10 BR > M2 > ... > GAP'."""
        return " > ".join(l.describe() for l in self.layers)

    def with_input(self, in_shape: tuple, num_classes: int) -> "Genome":
        return replace(self, in_shape=tuple(in_shape), num_classes=num_classes)


def _conv_out(size: int, k: int, pad: int) -> int:
    return size + 2 * pad - k + 1


def trace(g: Genome) -> list[tuple]:
    """Walk the genome; return (layer, in_shape, out_shape) per layer.

    Shapes are per image: (C, H, W) for maps, (F,) after a Linear. Raises
    GenomeError naming the layer for anything that cannot be built.
    """
    if len(g.in_shape) != 3 or min(g.in_shape) < 1:
        raise GenomeError(f"in_shape must be (C, H, W) with positive sizes, got {g.in_shape}")
    if g.num_classes < 2:
        raise GenomeError(f"num_classes must be >= 2, got {g.num_classes}")
    if not g.layers:
        raise GenomeError("genome has no layers")
    shape = tuple(g.in_shape)
    out = []
    for i, l in enumerate(g.layers):
        where = f"layer {i} ({type(l).__name__.lower()} {l.describe()})"
        if isinstance(l, Conv):
            if len(shape) != 3:
                raise GenomeError(f"{where}: a conv cannot follow a Linear")
            if l.out < 1 or l.k < 1 or l.pad < 0:
                raise GenomeError(f"{where}: channels and kernel must be >= 1 and padding >= 0")
            if l.norm not in NORMS:
                raise GenomeError(f"{where}: norm must be one of {', '.join(NORMS)}")
            if l.drop_kind not in DROP_KINDS or not 0.0 <= l.drop < 1.0:
                raise GenomeError(f"{where}: dropout kind must be one of {', '.join(DROP_KINDS)} with rate in [0, 1)")
            c, h, w = shape
            if l.k > h + 2 * l.pad or l.k > w + 2 * l.pad:
                raise GenomeError(f"{where}: kernel {l.k} is larger than the {h}x{w} feature map (padding {l.pad})")
            new = (l.out, _conv_out(h, l.k, l.pad), _conv_out(w, l.k, l.pad))
        elif isinstance(l, Pool):
            if len(shape) != 3:
                raise GenomeError(f"{where}: pooling cannot follow a Linear")
            if l.op not in POOL_OPS or l.k < 0:
                raise GenomeError(f"{where}: pool op must be one of {', '.join(POOL_OPS)} and k >= 0")
            c, h, w = shape
            if l.k == 0:
                new = (c, 1, 1)
            elif l.k > h or l.k > w:
                raise GenomeError(f"{where}: window {l.k} shrinks the {h}x{w} map below 1x1")
            else:
                new = (c, h // l.k, w // l.k)
        elif isinstance(l, Linear):
            if l.out < 1:
                raise GenomeError(f"{where}: features must be >= 1")
            new = (l.out,)
        else:
            raise GenomeError(f"layer {i}: unknown layer object {l!r}")
        out.append((l, shape, new))
        shape = new
    if shape not in ((g.num_classes,), (g.num_classes, 1, 1)):
        raise GenomeError(
            f"output is {'x'.join(map(str, shape))} but must be {g.num_classes} classes "
            f"(a {g.num_classes}x1x1 map or {g.num_classes} features): end with a conv/Linear to "
            f"{g.num_classes} and reduce the map to 1x1")
    return out


# Training recipe -----------------------------------------------------------------

OPTIMIZERS = ("sgd", "nesterov", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "constant")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "sgd"        # sgd (momentum) | nesterov | adamw
    lr: float = 0.05              # peak lr for onecycle, start lr otherwise
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    pct_start: float = 0.25       # onecycle warm-up fraction of all steps
    step_size: int = 9            # epochs between decays (step schedule)
    gamma: float = 0.15           # decay factor (step schedule)
    label_smoothing: float = 0.0
    rotation: float = 7.0         # +- degrees, per sample
    translate: float = 0.0        # +- fraction of width/height, per sample
    scale: float = 0.0            # +- fraction of size, per sample

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise GenomeError(f"training config: unknown field(s) {sorted(unknown)}; valid: {sorted(known)}")
        cfg = cls(**d)
        cfg.check()
        return cfg

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise GenomeError(f"epochs and batch size must be >= 1 (got {self.epochs}, {self.batch_size})")
        if self.optimizer not in OPTIMIZERS:
            raise GenomeError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise GenomeError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise GenomeError("lr must be > 0, weight_decay >= 0, label_smoothing in [0, 1)")
