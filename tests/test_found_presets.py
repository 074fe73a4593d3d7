"""The presets archsearch found (archsearch/found_presets.json, written by
benchmarks/beat_seeds.py --ship): each builds, has its stated parameter count, and
trains one quick epoch; the CLI lists them with their measured accuracy."""
import json
import math
from dataclasses import replace

import pytest

from archsearch import presets
from archsearch.data import load
from archsearch.model import count_params
from archsearch.trainer import fit

from test_cli import cli

SHIPPED = json.loads(presets.FOUND_FILE.read_text()) if presets.FOUND_FILE.exists() else []


def test_a_found_preset_file_loads_with_its_measured_accuracy(tmp_path, monkeypatch):
    seed = presets.get_preset("seed-4232")
    f = tmp_path / "found.json"
    f.write_text(json.dumps([{"name": "mnist-4.2k", "params": 4232, "genome": seed.genome.to_dict(),
                              "train": seed.train.to_dict(), "source": "a test",
                              "measured": {"test_acc_mean": 99.25, "test_acc_std": 0.04,
                                           "test_accs": [99.2, 99.25, 99.3]}}]))
    monkeypatch.setattr(presets, "FOUND_FILE", f)
    [p] = presets._found()
    assert p.name == "mnist-4.2k" and p.genome == seed.genome and p.train == seed.train
    assert p.reported == "99.25 ± 0.04% (final epoch, 3 seeds, measured)"
    assert presets.found_name("mnist", 7890) == "mnist-7.9k" and presets.found_name("mnist", 18214) == "mnist-18.2k"


@pytest.mark.slow
@pytest.mark.parametrize("d", SHIPPED, ids=[d["name"] for d in SHIPPED])
def test_shipped_preset_builds_counts_and_trains_an_epoch(d, mnist):
    p = presets.get_preset(d["name"])
    assert count_params(p.genome) == d["params"]
    assert d["name"] == presets.found_name("mnist", d["params"])
    m = d["measured"]
    assert len(m["test_accs"]) == 3 and math.isclose(m["test_acc_mean"], sum(m["test_accs"]) / 3, abs_tol=1e-3)
    data = load("mnist", mnist, val_size=500, train_size=4096)
    _, hist = fit(p.genome, data, replace(p.train, epochs=1), seed=0)
    assert math.isfinite(hist[0]["train_loss"]) and hist[0]["val_acc"] > 20  # one epoch on 4k images (64 steps of 64): above chance


def test_presets_json_gives_measured_accuracy_for_found_ones():
    rows = {r["name"]: r for r in json.loads(cli("presets", "--json").stdout)}
    assert rows["seed-7932"]["kind"] == "seed" and "test_acc_mean" not in rows["seed-7932"]
    for d in SHIPPED:
        r = rows[d["name"]]
        assert r["kind"] == "found" and r["params"] == d["params"]
        assert r["test_acc_mean"] == d["measured"]["test_acc_mean"] and r["test_acc_std"] >= 0


@pytest.mark.slow
def test_train_and_show_take_a_found_preset(mnist):
    if not SHIPPED:
        pytest.skip("no found presets shipped yet")
    name = SHIPPED[0]["name"]
    show = json.loads(cli("show", "--preset", name, "--json").stdout)
    assert show["params"] == SHIPPED[0]["params"]
    r = cli("train", "--preset", name, "--train-size", "512", "--epochs", "1", "--json", "--data-dir", mnist,
            "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["params"] == SHIPPED[0]["params"]
