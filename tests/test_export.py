"""`archsearch export`: a real study, real files, model.py run without archsearch."""
import json
import subprocess
import sys

import optuna
import pytest
import torch

from archsearch.bundle import pick
from conftest import copy_study
from test_cli import cli


@pytest.fixture(scope="module")
def study_dir(finished_study, tmp_path_factory):
    return copy_study(finished_study, tmp_path_factory.mktemp("export") / "w")


def trials(d):
    return optuna.load_study(study_name="blobs-b3000", storage=f"sqlite:///{d}/studies/blobs-b3000.db").get_trials()


def best(fits):
    return max(fits, key=lambda t: (t.values[0], -t.values[1]))


def within_one_se(fits, val_images):
    """export's default pick, worked out here from the binomial formula: the largest trial whose
    validation accuracy is at most one standard error below the best's."""
    top = best(fits).values[0]
    se = 100 * ((top / 100) * (1 - top / 100) / val_images) ** 0.5
    return max((t for t in fits if t.values[0] >= top - se), key=lambda t: (t.values[1], t.values[0]))


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
    t = next(t for t in done if t.number == cfg["provenance"]["trial"])
    assert t.number == within_one_se(done, 200).number  # the study's --val-size
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


def test_max_params_picks_within_one_se_and_pick_best_the_best(study_dir, tmp_path):
    done = [t for t in trials(study_dir) if t.state.name == "COMPLETE"]
    cap = sorted(int(t.values[1]) for t in done)[1]  # the second smallest: at least two candidates
    fits = [t for t in done if t.values[1] <= cap]
    for flags, want in (([], within_one_se(fits, 200)), (["--pick", "best"], best(fits))):
        out = tmp_path / f"e{len(flags)}"
        r = cli("export", "--max-params", str(cap), *flags, "--out", str(out), cwd=study_dir)
        assert r.returncode == 0, r.stderr
        provenance = json.loads((out / "config.json").read_text())["provenance"]
        assert provenance["trial"] == want.number and provenance["pick"] == (flags[1] if flags else "se")
        # Only a default pick that is not the best validation score says why.
        assert ("is the largest within one standard error" in r.stderr) == (not flags and want.number != best(fits).number)


def test_pick_rules_on_a_study_with_known_scores(tmp_path):
    """Trials 0-5 as (val %, params); one standard error on 5,000 images is 0.089 points at 99.60%
    and 0.077 at 99.70%."""
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/s.db",
                                directions=["maximize", "minimize"])
    study.set_user_attr("settings", {"budget": 20000, "val_size": 5000})
    scores = [(99.60, 8000), (99.52, 10000), (99.55, 10000), (99.40, 12000), (99.70, 15000), (99.61, 19000)]
    for val, params in scores:
        study.add_trial(optuna.trial.create_trial(values=[val, params]))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))  # never picked
    assert pick(study, 12000).number == 2  # 99.55 at 10,000: within 0.089 of 99.60; the better of two 10,000s
    assert pick(study, 12000, rule="best").number == 0
    assert pick(study, 9000).number == pick(study, 9000, rule="best").number == 0  # nothing else fits
    assert pick(study).number == 4  # the budget: 99.61 at 19,000 is 0.09 below 99.70, outside one SE
    assert pick(study, number=3).number == 3  # --trial: that one, whatever the rule


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


