"""Load a dataset once, as uint8 tensors on the training device.

Why tensors and not a DataLoader: MNIST-sized sets fit in memory many times
over, and for models this small the per-batch Python of a DataLoader + PIL
pipeline costs more than the convolutions (benchmarks/epoch_speed.py). Images
stay uint8 (1 byte/pixel) until a batch is sliced; normalisation happens there.

Splits: the training set is shuffled once with a fixed seed (SPLIT_SEED, not the
run's seed, so every trial of every study sees the same validation images); the
first `val_size` images are the validation split, the next `train_size` (or all
the rest) the training split. The test set is only ever read to report.
"""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import default_data_dir  # in the package, so that the CLI's --help needs no torch
from .errors import ArchsearchError

SPLIT_SEED = 20260101
IDX_SETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}
DATASETS = (*IDX_SETS, "cifar10")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataError(ArchsearchError):
    """Data that is missing, corrupt, or not what the user asked for."""




# Raw arrays (CPU numpy), cached per process -----------------------------------------

def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e}); delete it and fetch the file again") from None
    if len(raw) < 4 + 4 * ndim or struct.unpack(">I", raw[:4])[0] != magic:
        raise DataError(f"{path}: not an IDX file (wrong magic number); delete it and fetch the file again")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise DataError(f"{path}: truncated or padded: header says {dims} = {int(np.prod(dims))} bytes, "
                        f"file holds {len(body)}; fetch the file again")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for p in (folder / stem, folder / f"{stem}.gz"):
        if p.exists():
            return p
    return None


def _load_idx(name: str, data_dir: str):
    folder = Path(data_dir) / IDX_SETS[name] / "raw"
    paths = [_find(folder, s) for s in IDX_FILES]
    missing = f"{name} not found: expected {', '.join(s + '.gz' for s in IDX_FILES)} in {folder}"
    if None in paths and os.environ.get("ARCHSEARCH_OFFLINE"):
        raise DataError(f"{missing} (ARCHSEARCH_OFFLINE is set, so no download); copy them there or set --data-dir")
    if None in paths:
        import torchvision  # only to download; reading is ours (no writes next to the source files)
        cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST,
               "kmnist": torchvision.datasets.KMNIST}[name]
        try:
            cls(data_dir, train=True, download=True)
        except Exception as e:  # no network, unwritable dir, ...: one message that says where files go
            raise DataError(f"{missing} (download failed: {str(e).splitlines()[0][:100]}); copy them there or set "
                            f"--data-dir / ARCHSEARCH_DATA") from None
        paths = [_find(folder, s) for s in IDX_FILES]
    xtr, ytr, xte, yte = (_read_idx(p, 0x803 if "images" in p.name else 0x801, 3 if "images" in p.name else 1)
                          for p in paths)
    return xtr[:, None], ytr, xte[:, None], yte


def _load_cifar10(data_dir: str):
    import torchvision
    if os.environ.get("ARCHSEARCH_OFFLINE") and not (Path(data_dir) / "cifar-10-batches-py").is_dir():
        raise DataError(f"cifar10 not found: expected {Path(data_dir) / 'cifar-10-batches-py'} "
                        f"(ARCHSEARCH_OFFLINE is set, so no download); set --data-dir")
    try:
        tr = torchvision.datasets.CIFAR10(data_dir, train=True, download=True)
        te = torchvision.datasets.CIFAR10(data_dir, train=False, download=True)
    except Exception as e:
        raise DataError(f"cifar10 not found: expected {Path(data_dir) / 'cifar-10-batches-py'} "
                        f"(download failed: {str(e).splitlines()[0][:100]}); set --data-dir / ARCHSEARCH_DATA") from None
    to_nchw = lambda a: np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2))
    return to_nchw(tr.data), np.asarray(tr.targets), to_nchw(te.data), np.asarray(te.targets)


def _to_nchw(x: np.ndarray, key: str, path: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[1] <= 4 < x.shape[3]:
            return x
        if x.shape[3] <= 4:
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    raise DataError(f"{path}: {key} has shape {x.shape}; expected uint8 images NHW, NHWC or NCHW (C <= 4)")


def _load_npz(path: str):
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test") if k in z.files}
    except Exception as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}); save it with numpy.savez") from None
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays)
    if missing:
        raise DataError(f"{path}: missing array(s) {sorted(missing)}; need x_train, y_train, x_test, y_test")
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8:
            raise DataError(f"{path}: x_{split} is {x.dtype}; expected uint8 images (0-255)")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(x):
            raise DataError(f"{path}: y_{split} must be {len(x)} integer labels, got shape {y.shape} {y.dtype}")
        out += [_to_nchw(x, f"x_{split}", path), y]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise DataError(f"{path}: train images {out[0].shape[1:]} and test images {out[2].shape[1:]} differ in shape")
    return tuple(out)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
HOLD_OUT = 1 / 6  # a folder without test/: this share of each class is the test set (MNIST's 10k of 60k)


def _class_images(folder: Path) -> list[tuple[Path, int]]:
    """(image path, class index) under one folder per class, ImageFolder's layout: classes sorted by name."""
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{folder} holds {len(classes)} class folders; give one subfolder of images per class "
                        f"(at least 2)")
    out = [(p, k) for k, d in enumerate(classes) for p in sorted(d.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not out:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...) in the class folders of {folder}")
    return out


def _read_images(items: list[tuple[Path, int]], size: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Images as NCHW uint8 of size x size in `mode` ("L" or "RGB"), and their labels."""
    from PIL import Image, UnidentifiedImageError
    x = np.empty((len(items), size, size, 3 if mode == "RGB" else 1), dtype=np.uint8)
    for i, (path, _) in enumerate(items):
        try:
            with Image.open(path) as im:
                im = im.convert(mode)
                x[i] = np.asarray(im if im.size == (size, size) else im.resize((size, size), Image.BILINEAR)) \
                    .reshape(size, size, -1)
        except (OSError, UnidentifiedImageError) as e:
            raise DataError(f"cannot read the image {path} ({e}); remove it or replace it") from None
    return x.transpose(0, 3, 1, 2), np.array([k for _, k in items], dtype=np.int64)


def _load_folder(path: str):
    """A folder of images as torchvision's ImageFolder reads it: train/ and test/ with one subfolder
    per class, or the class folders directly (then HOLD_OUT of each class, fixed seed, is the test
    set). Every image is converted to grayscale if all are, else RGB, at the first image's size."""
    root = Path(path)
    if (root / "train").is_dir():
        if not (root / "test").is_dir():
            raise DataError(f"{root} has train/ but no test/; add test/ with the same class folders, or put the "
                            f"class folders directly in {root}")
        train, test = _class_images(root / "train"), _class_images(root / "test")
    else:
        items = _class_images(root)
        rng = np.random.default_rng(SPLIT_SEED)
        held = set()
        for k in sorted({k for _, k in items}):
            mine = [i for i, (_, c) in enumerate(items) if c == k]
            held.update(rng.permutation(mine)[:max(1, round(len(mine) * HOLD_OUT))].tolist())
        train = [it for i, it in enumerate(items) if i not in held]
        test = [it for i, it in enumerate(items) if i in held]
    size = _header(train[0][0])[0][0]
    gray = all(_header(p)[1] in ("1", "L", "LA", "I", "I;16", "F") for p, _ in train[:200])  # a sample suffices
    return (*_read_images(train, size, "L" if gray else "RGB"), *_read_images(test, size, "L" if gray else "RGB"))


def _header(path: Path) -> tuple[tuple[int, int], str]:
    """(size, mode) of an image, from its header."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"cannot read the image {path} ({e}); remove it or replace it") from None


@lru_cache(maxsize=4)
def load_arrays(name: str, data_dir: str):
    """(x_train, y_train, x_test, y_test) as numpy, NCHW uint8 + int labels; checked."""
    if Path(name).is_dir():
        xtr, ytr, xte, yte = _load_folder(name)
    elif name.endswith(".npz"):
        if not Path(name).is_file():
            raise DataError(f"dataset file {name} does not exist")
        xtr, ytr, xte, yte = _load_npz(name)
    elif name in IDX_SETS:
        xtr, ytr, xte, yte = _load_idx(name, data_dir)
    elif name == "cifar10":
        xtr, ytr, xte, yte = _load_cifar10(data_dir)
    else:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}, or give a path to an .npz "
                        f"file or to a folder of images")
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise DataError(f"{name}: {len(xtr)} training images but {len(ytr)} labels "
                        f"({len(xte)}/{len(yte)} for test); the files do not belong together")
    k = int(max(ytr.max(), yte.max())) + 1
    if ytr.min() < 0 or yte.min() < 0 or (name in IDX_SETS or name == "cifar10") and k > 10:
        raise DataError(f"{name}: labels out of range (min {min(ytr.min(), yte.min())}, max {k - 1}); "
                        f"the label file is corrupt")
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


# Device-resident splits ------------------------------------------------------------

@dataclass
class Data:
    name: str
    train_x: torch.Tensor      # uint8 [N, C, H, W] on device
    train_y: torch.Tensor      # int64 [N]
    val_x: torch.Tensor        # may be empty (train on the full training set)
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor         # float32 [1, C, 1, 1], of x/255 over the training split
    std: torch.Tensor
    num_classes: int

    @property
    def in_shape(self) -> tuple:
        return tuple(self.train_x.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def normalization(self) -> dict:
        """Per-channel mean and std as plain lists: what an exported model.py needs."""
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float images -> normalised float32."""
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return (x - self.mean) / self.std


def reshape(x: np.ndarray, size: int | None = None, channels: int | None = None) -> np.ndarray:
    """NCHW uint8 images at size x size (bilinear, antialiased) with 1 or 3 channels (gray <-> RGB)."""
    if channels and channels != x.shape[1]:
        if channels == 3:
            x = np.repeat(x, 3, axis=1)
        else:  # ITU-R 601 luma, as PIL's convert("L")
            x = np.clip(np.tensordot(np.array([0.299, 0.587, 0.114]), x, axes=([0], [1])).round(), 0, 255) \
                .astype(np.uint8)[:, None]
    if size and x.shape[2:] != (size, size):
        chunks = [torch.nn.functional.interpolate(torch.from_numpy(x[i:i + 8192]).float(), size=(size, size),
                                                  mode="bilinear", antialias=True, align_corners=False)
                  for i in range(0, len(x), 8192)]  # 8192 images at a time: bounded memory
        x = torch.cat(chunks).round().clamp(0, 255).to(torch.uint8).numpy()
    return x


@lru_cache(maxsize=4)
def shaped_arrays(name: str, data_dir: str, image_size: int | None = None, channels: int | None = None):
    """load_arrays, with the images at image_size x image_size and `channels` channels (None: as stored)."""
    xtr, ytr, xte, yte = load_arrays(name, data_dir)
    return reshape(xtr, image_size, channels), ytr, reshape(xte, image_size, channels), yte


def load(name: str, data_dir: str | None = None, val_size: int = 5000, train_size: int | None = None,
         device: str | torch.device = "cpu", image_size: int | None = None, channels: int | None = None) -> Data:
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    xtr, ytr, xte, yte = shaped_arrays(name, data_dir or default_data_dir(), image_size, channels)
    if val_size < 0 or val_size >= len(xtr) - 1:
        raise DataError(f"a validation split of {val_size} images leaves no training images ({len(xtr)} in "
                        f"{name}); set a smaller val_size in --search-config")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(xtr))
    val_idx, train_idx = order[:val_size], order[val_size:]
    if train_size is not None:
        if train_size < 2:
            raise DataError(f"--train-size must be at least 2, got {train_size}")
        train_idx = train_idx[:train_size]
    dev = torch.device(device)
    t = lambda a: torch.from_numpy(np.array(a)).to(dev)  # a writable copy: the IDX buffers are read-only
    train_x = t(xtr[train_idx])
    # Stats from the training split only, in float64 to keep 60k x 784 sums exact enough.
    xf = train_x.double().div_(255)
    mean = xf.mean(dim=(0, 2, 3), keepdim=True).float()
    std = xf.std(dim=(0, 2, 3), keepdim=True).float().clamp_min(1e-3)
    return Data(name, train_x, t(ytr[train_idx]), t(xtr[val_idx]), t(ytr[val_idx]), t(xte), t(yte),
                mean, std, int(max(ytr.max(), yte.max())) + 1)
