"""Shared fixtures: random valid genomes, the real MNIST copy, synthetic data."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

from archsearch.genome import Conv, Genome, GenomeError, Linear, Pool, trace

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def mnist_dir() -> str | None:
    """Where real MNIST is: $ARCHSEARCH_DATA or ../shared/data, if the files are there."""
    for d in (os.environ.get("ARCHSEARCH_DATA"), str(SHARED_DATA)):
        if d and (Path(d) / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").exists():
            return d
    return None


@pytest.fixture
def mnist():
    d = mnist_dir()
    if d is None:
        pytest.skip("real MNIST not found (set ARCHSEARCH_DATA)")
    return d


def random_genome(rng: random.Random, in_shape=(1, 28, 28), num_classes=10) -> Genome:
    """A random *valid* genome: convs with random kernels/padding/norms, pools that
    keep the map >= 1x1, and one of the head kinds the genome supports."""
    while True:
        layers, (c, h, w) = [], in_shape
        for _ in range(rng.randint(1, 7)):
            if rng.random() < 0.25 and h >= 2:
                k = rng.choice([2, 2, 3]) if h >= 3 else 2
                layers.append(Pool(rng.choice(["max", "avg"]), k))
                h, w = h // k, w // k
                continue
            k = rng.choice([1, 3, 3, 5])
            pad = rng.choice([0, k // 2])
            if k > h + 2 * pad:
                k, pad = 1, 0
            layers.append(Conv(rng.randint(1, 40), k, pad, rng.random() < 0.3, rng.choice(
                ["bn_relu", "relu_bn", "relu", "none"]), rng.choice([0.0, 0.1]), rng.choice(["dropout", "dropout2d"])))
            h, w = h + 2 * pad - k + 1, w + 2 * pad - k + 1
        head = rng.choice(["gap_linear", "conv_gap", "gap_conv", "flatten_linear", "linear_linear"])
        if head == "gap_linear":
            layers += [Pool("avg", 0), Linear(num_classes, rng.random() < 0.8)]
        elif head == "conv_gap":
            layers += [Conv(num_classes, 1, 0, rng.random() < 0.5, "none"), Pool(rng.choice(["avg", "max"]), 0)]
        elif head == "gap_conv":
            layers += [Pool("avg", 0), Conv(num_classes, 1, 0, rng.random() < 0.5, "none")]
        elif head == "flatten_linear":
            layers += [Linear(num_classes)]
        else:
            layers += [Pool("max", 0), Linear(rng.randint(2, 30)), Linear(num_classes)]
        g = Genome(tuple(layers), in_shape, num_classes)
        try:
            trace(g)
            return g
        except GenomeError:
            continue


def write_npz(path, n_train=64, n_test=32, shape=(12, 12), classes=3, seed=0, layout="NHW"):
    rng = np.random.default_rng(seed)
    def imgs(n):
        x = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        return {"NHW": x, "NHWC": x[..., None], "NCHW": x[:, None]}[layout]
    np.savez(path, x_train=imgs(n_train), y_train=rng.integers(0, classes, n_train),
             x_test=imgs(n_test), y_test=rng.integers(0, classes, n_test))
    return str(path)


def write_blobs_npz(path, n_train=1500, n_test=300, classes=10, seed=0):
    """28x28 uint8 images, class k = a bright 4x4 blob at one of 10 places plus noise.
    MNIST-shaped, so presets fit; learnable to >90% in a couple of epochs."""
    rng = np.random.default_rng(seed)
    spots = [(3 + 8 * (k % 3), 3 + 7 * (k // 3)) for k in range(classes)]
    def make(n):
        y = rng.integers(0, classes, n)
        x = rng.integers(0, 70, (n, 28, 28), dtype=np.uint8)
        for i, k in enumerate(y):
            r, c = spots[k]
            x[i, r:r + 4, c:c + 4] = 250
        return x, y
    (xtr, ytr), (xte, yte) = make(n_train), make(n_test)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return str(path)


# A real PostgreSQL server on loopback, in a temporary folder ----------------------------

def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_url():
    """postgresql://postgres@127.0.0.1:PORT/archsearch on a throwaway server (initdb + pg_ctl).

    Skips, saying why, where Debian's postgresql is not installed; .ci/run installs it and
    sets ARCHSEARCH_REQUIRE_POSTGRES=1, so in CI a missing server fails instead."""
    import getpass
    import shutil
    import socket
    import subprocess
    need = os.environ.get("ARCHSEARCH_REQUIRE_POSTGRES") == "1"
    bin_dir = _pg_bin()
    if bin_dir is None:
        (pytest.fail if need else pytest.skip)("PostgreSQL server binaries not found (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401 (SQLAlchemy 2's default driver for postgresql://)
    except ImportError:
        (pytest.fail if need else pytest.skip)("psycopg not installed (pip install -e '.[postgres]')")
    import tempfile
    # Directly under /tmp: pytest's own temp folders are private to this user. initdb refuses
    # to run as root, so as root the server runs as the 'postgres' system user.
    root = Path(tempfile.mkdtemp(prefix="archsearch-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if getpass.getuser() == "root" else []
    if as_user:
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data, log = root / "data", root / "log"
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True)
    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
        f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off", "start")
    try:
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "archsearch")
        yield f"postgresql://postgres@127.0.0.1:{port}/archsearch"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory):
    """A folder with blobs.npz and a finished 4-trial study (studies/blobs-b3000.db, no
    pruning: several COMPLETE trials of different sizes, their weights kept), made once
    by the real CLI. Tests copy it (see copy_study) rather than change it."""
    import subprocess
    import sys
    d = tmp_path_factory.mktemp("finished")
    blobs = write_blobs_npz(d / "blobs.npz")
    r = subprocess.run([sys.executable, "-m", "archsearch", "run", "--dataset", blobs, "--epochs", "2",
                        "--train-size", "600", "--device", "cpu", "--budget", "3000", "--trials", "4",
                        "--search-config", search_config(d / "quick.toml", val_size=200, prune=False)],
                       cwd=d, capture_output=True, text=True,
                       env={**os.environ, "ARCHSEARCH_OFFLINE": "1"}, timeout=600)
    assert r.returncode == 0, r.stderr
    return d


def search_config(path, **settings) -> str:
    """A --search-config TOML file holding `settings` (engine.SEARCH_KNOBS); returns its path."""
    toml = lambda v: str(v).lower() if isinstance(v, bool) else repr(v)
    Path(path).write_text("".join(f"{k} = {toml(v)}\n" for k, v in settings.items()))
    return str(path)


def copy_study(finished: Path, dest: Path) -> Path:
    import shutil
    shutil.copytree(finished, dest)
    return dest


def write_image_folder(root, images, labels, split: str | None = None, mode: str = "L"):
    """Images (N, H, W) or (N, H, W, 3) uint8 as PNG files, one subfolder per class (c0, c1, ...),
    under root/split if given: torchvision's ImageFolder layout. Returns root."""
    from PIL import Image
    base = Path(root) / split if split else Path(root)
    for i, (x, y) in enumerate(zip(images, labels)):
        folder = base / f"c{int(y)}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(x), mode).save(folder / f"{i}.png")
    return str(root)


def digits_folder(root) -> str:
    """scikit-learn's bundled 8x8 digits (1,797 images, 16 grey levels) as a folder of PNGs,
    stretched to 0-255: a small real data set of another shape than MNIST."""
    sklearn = pytest.importorskip("sklearn.datasets")
    d = sklearn.load_digits()
    x = (d.images * 255 / 16).round().astype(np.uint8)
    return write_image_folder(root, x, d.target)
