import gzip
import struct

import numpy as np
import pytest
import torch

from archsearch.data import IDX_FILES, DataError, load, load_arrays

from conftest import write_npz


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_npz_layouts_load_as_nchw(tmp_path, layout):
    path = write_npz(tmp_path / f"d{layout}.npz", layout=layout, shape=(12, 10))
    d = load(path, val_size=8)
    assert d.in_shape == (1, 12, 10)
    assert d.train_x.dtype == torch.uint8 and len(d.train_x) == 56 and len(d.val_x) == 8
    assert d.num_classes == 3


def test_split_is_fixed_and_train_size_takes_a_prefix(tmp_path):
    path = write_npz(tmp_path / "d.npz", n_train=100)
    a, b = load(path, val_size=10), load(path, val_size=10, train_size=20)
    assert torch.equal(a.val_x, b.val_x)                 # same validation images whatever else changes
    assert torch.equal(a.train_x[:20], b.train_x)        # --train-size is a prefix of the training split
    assert not set(a.val_y.tolist()) or len(a.train_x) == 90


def test_normalisation_stats_come_from_the_training_split(tmp_path):
    path = write_npz(tmp_path / "d.npz", n_train=200)
    d = load(path, val_size=50)
    x = d.train_x.double() / 255
    assert torch.allclose(d.mean.flatten().double(), x.mean().reshape(1), atol=1e-6)
    z = d.normalize(d.train_x)
    assert abs(z.mean().item()) < 1e-4 and abs(z.std().item() - 1) < 1e-2


@pytest.mark.parametrize("bad, message", [
    ({"x_train": np.zeros((4, 5, 5), np.float32)}, "uint8"),
    ({"y_train": np.zeros((3,), np.int64)}, "integer labels"),
    ({"drop": "x_test"}, "missing"),
])
def test_bad_npz_is_refused(tmp_path, bad, message):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 255, (4, 5, 5), dtype=np.uint8), "y_train": np.arange(4) % 2,
              "x_test": rng.integers(0, 255, (2, 5, 5), dtype=np.uint8), "y_test": np.arange(2)}
    arrays.pop(bad.pop("drop", None), None)
    arrays.update(bad)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_arrays(str(tmp_path / "bad.npz"), "data")


def _write_idx(folder, n=20, magic_images=0x803, truncate=0, label_max=9):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for stem in IDX_FILES:
        if "images" in stem:
            body = struct.pack(">IIII", magic_images, n, 28, 28) + rng.integers(0, 255, n * 784, dtype=np.uint8).tobytes()
        else:
            body = struct.pack(">II", 0x801, n) + (np.arange(n) % (label_max + 1)).astype(np.uint8).tobytes()
        with gzip.open(folder / f"{stem}.gz", "wb") as f:
            f.write(body[:len(body) - truncate] if "train-images" in stem else body)


@pytest.mark.parametrize("kwargs, message", [
    ({"magic_images": 0x1234}, "wrong magic"),
    ({"truncate": 100}, "truncated"),
    ({"label_max": 40}, "labels out of range"),
])
def test_corrupt_idx_files_are_refused(tmp_path, kwargs, message):
    _write_idx(tmp_path / "MNIST" / "raw", **kwargs)
    load_arrays.cache_clear()
    with pytest.raises(DataError, match=message):
        load_arrays("mnist", str(tmp_path))


def test_valid_idx_files_load(tmp_path):
    _write_idx(tmp_path / "FashionMNIST" / "raw")
    load_arrays.cache_clear()
    d = load("fashion-mnist", str(tmp_path), val_size=5)
    assert d.in_shape == (1, 28, 28) and len(d.train_x) == 15 and len(d.test_x) == 20


def test_missing_data_offline_names_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHSEARCH_OFFLINE", "1")
    load_arrays.cache_clear()
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_arrays("kmnist", str(tmp_path))


def test_unknown_dataset_lists_choices():
    with pytest.raises(DataError, match="mnist, fashion-mnist, kmnist, cifar10"):
        load_arrays("imagenet", "data")


def test_real_mnist(mnist):
    d = load("mnist", mnist, val_size=5000)
    assert (len(d.train_x), len(d.val_x), len(d.test_x)) == (55000, 5000, 10000)
    assert d.num_classes == 10 and d.in_shape == (1, 28, 28)
    assert abs(d.mean.item() - 0.1307) < 2e-3 and abs(d.std.item() - 0.3081) < 2e-3
    assert torch.bincount(d.val_y).min() > 400  # the validation split holds every class


def test_an_image_folder_loads_as_imagefolder_does_with_a_held_out_test_set(tmp_path):
    from conftest import digits_folder
    d = load(digits_folder(tmp_path / "digits"), val_size=200)
    assert d.in_shape == (1, 8, 8) and d.num_classes == 10
    assert len(d.train_x) + len(d.val_x) + len(d.test_x) == 1797
    assert 0.15 < len(d.test_x) / 1797 < 0.18            # a sixth of each class, held out
    assert set(d.test_y.tolist()) == set(range(10))
    again = load(str(tmp_path / "digits"), val_size=200)  # the same split every time
    assert torch.equal(again.test_x, d.test_x) and torch.equal(again.val_x, d.val_x)


def test_an_image_folder_with_train_and_test_and_rgb_images(tmp_path):
    from conftest import write_image_folder
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, 10, 10, 3), dtype=np.uint8), np.arange(40) % 4
    write_image_folder(tmp_path / "f", x[:30], y[:30], "train", mode="RGB")
    write_image_folder(tmp_path / "f", x[30:], y[30:], "test", mode="RGB")
    d = load(str(tmp_path / "f"), val_size=6)
    assert d.in_shape == (3, 10, 10) and len(d.test_x) == 10 and d.num_classes == 4
    assert sorted(d.test_x.reshape(10, -1).sum(1).tolist()) == sorted(
        torch.from_numpy(x[30:]).reshape(10, -1).sum(1).tolist())  # the test images, pixel for pixel


@pytest.mark.parametrize("size, channels, shape", [(14, None, (1, 14, 14)), (32, 3, (3, 32, 32)), (None, 3, (3, 12, 12))])
def test_images_are_resized_and_converted_once_loaded(tmp_path, size, channels, shape):
    path = write_npz(tmp_path / "d.npz", n_train=40, shape=(12, 12))
    d = load(path, val_size=8, image_size=size, channels=channels)
    assert d.in_shape == shape and d.train_x.dtype == torch.uint8
    if shape[0] == 3:  # gray to RGB: three equal channels
        assert torch.equal(d.train_x[:, 0], d.train_x[:, 2])


def test_an_rgb_image_converts_to_its_luma():
    from archsearch.data import reshape
    x = np.zeros((1, 3, 2, 2), dtype=np.uint8)
    x[0, 1] = 200  # pure green
    assert reshape(x, channels=1)[0, 0, 0, 0] == round(0.587 * 200)


@pytest.mark.parametrize("make, message", [
    (lambda p: (p / "only").mkdir(parents=True), "holds 1 class folders"),
    (lambda p: [(p / c).mkdir(parents=True) for c in ("a", "b")], "no images"),
    (lambda p: [(p / "train" / c).mkdir(parents=True) for c in ("a", "b")], "has train/ but no test/"),
])
def test_bad_image_folders_are_one_line(tmp_path, make, message):
    make(tmp_path / "f")
    with pytest.raises(DataError, match=message):
        load(str(tmp_path / "f"))


def test_an_unreadable_image_is_named(tmp_path):
    from conftest import write_image_folder
    write_image_folder(tmp_path / "f", np.zeros((6, 8, 8), np.uint8), np.arange(6) % 2)
    (tmp_path / "f" / "c0" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read the image .*bad.png"):
        load(str(tmp_path / "f"), val_size=1)
