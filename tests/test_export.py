"""`archsearch export`: a real study, real files, model.py run without archsearch."""
import json
import subprocess
import sys

import optuna
import pytest
import torch

from conftest import copy_study
from test_cli import cli


@pytest.fixture(scope="module")
def study_dir(finished_study, tmp_path_factory):
    return copy_study(finished_study, tmp_path_factory.mktemp("export") / "w")


def trials(d):
    return optuna.load_study(study_name="blobs-b3000", storage=f"sqlite:///{d}/studies/blobs-b3000.db").get_trials()


# model.py must stand alone: run it in a fresh interpreter where importing archsearch fails.
CHECK = """
import json, sys
sys.modules["archsearch"] = None
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from model import Net
net = Net()
net.load_state_dict(torch.load(sys.argv[1] + "/weights.pt", weights_only=True))
net.eval()
d = np.load(sys.argv[2])
x = torch.from_numpy(d["x_test"]).unsqueeze(1)
with torch.no_grad():
    acc = 100.0 * (net(Net.normalize(x)).argmax(1) == torch.from_numpy(d["y_test"])).float().mean().item()
print(json.dumps({"params": sum(p.numel() for p in net.parameters()), "acc": acc}))
"""


def test_export_round_trip(study_dir, tmp_path):
    r = cli("export", "--out", str(tmp_path / "best"), cwd=study_dir)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "best"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.py", "weights.pt"]
    cfg = json.loads((out / "config.json").read_text())
    done = [t for t in trials(study_dir) if t.state.name == "COMPLETE"]
    best = max(done, key=lambda t: (t.values[0], -t.values[1]))
    t = next(t for t in done if t.number == cfg["provenance"]["trial"])
    assert t.number == best.number
    assert cfg["genome"] == t.user_attrs["genome"] and cfg["train"] == t.user_attrs["train"]
    assert cfg["metrics"]["params"] == t.user_attrs["params"] and cfg["metrics"]["test_acc"] == t.user_attrs["test_acc"]
    assert {"study", "trial", "dataset", "archsearch_version", "torch_version"} <= set(cfg["provenance"])
    assert f"{t.user_attrs['params']:,} parameters" in (out / "model.py").read_text()
    p = subprocess.run([sys.executable, "-c", CHECK, str(out), str(study_dir / "blobs.npz")], capture_output=True,
                       text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["params"] == t.user_attrs["params"]
    assert abs(got["acc"] - t.user_attrs["test_acc"]) < 0.01  # the recorded test accuracy, within rounding
    # The exported config trains again with exactly the same parameter count.
    tr = cli("train", "--config", str(out / "config.json"), "--dataset", str(study_dir / "blobs.npz"),
             "--epochs", "1", "--train-size", "300", "--json", cwd=tmp_path)
    assert tr.returncode == 0, tr.stderr
    assert json.loads(tr.stdout)["params"] == t.user_attrs["params"]


def test_max_params_picks_the_most_accurate_at_or_under(study_dir, tmp_path):
    done = [t for t in trials(study_dir) if t.state.name == "COMPLETE"]
    cap = sorted(int(t.values[1]) for t in done)[1]  # the second smallest: at least two candidates
    r = cli("export", "--max-params", str(cap), "--out", str(tmp_path / "e"), cwd=study_dir)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "e" / "config.json").read_text())
    fits = [t for t in done if t.values[1] <= cap]
    assert cfg["provenance"]["trial"] == max(fits, key=lambda t: (t.values[0], -t.values[1])).number


def test_retrain_reproduces_the_trial(study_dir, tmp_path):
    t = next(t for t in trials(study_dir) if t.state.name == "COMPLETE")
    r = cli("export", "--trial", str(t.number), "--retrain", "--out", str(tmp_path / "r"), "--device", "cpu",
            cwd=study_dir)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    # Same split, config and seed on CPU: the same model, so the same test accuracy.
    assert cfg["metrics"]["test_acc_retrained"] == pytest.approx(t.user_attrs["test_acc"], abs=0.01)
    stored = cli("export", "--trial", str(t.number), "--out", str(tmp_path / "s"), cwd=study_dir)
    assert stored.returncode == 0
    a = torch.load(tmp_path / "r" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "s" / "weights.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_force_overwrites_only_our_files(study_dir, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert cli("export", "--out", str(out), cwd=study_dir).returncode == 2
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert cli("export", "--out", str(out), "--force", cwd=study_dir).returncode == 0
    assert (out / "mine.txt").read_text() == "keep" and (out / "weights.pt").is_file()


