"""`archsearch export --rescore K`: the top K trials trained again on fresh seeds,
the pick by their mean validation accuracy; a real study, real training runs."""
import json

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from archsearch import bundle as export, rescore
from archsearch.data import load
from archsearch.genome import Genome, TrainConfig
from archsearch.engine import Settings, trial_seed
from archsearch.trainer import evaluate, fit
from conftest import copy_study
from test_cli import cli

STUDY = "blobs-b3000"


@pytest.fixture()
def study_dir(finished_study, tmp_path):
    return copy_study(finished_study, tmp_path / "w")


def open_study(d):
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{d}/studies/{STUDY}.db")


def test_rescore_trains_the_top_k_on_fresh_seeds_and_picks_by_their_mean(study_dir, tmp_path):
    s = open_study(study_dir)
    done = [t for t in s.get_trials() if t.state == TrialState.COMPLETE]
    assert len(done) >= 3
    r = cli("export", "--rescore", "2", "--rescore-seeds", "2", "--device", "cpu", "--out", str(tmp_path / "e"),
            cwd=study_dir)
    assert r.returncode == 0, r.stderr
    s = open_study(study_dir)
    top = sorted(done, key=lambda t: (-t.values[0], t.values[1]))[:2]
    stored = {t.number: [s.user_attrs[f"rescore:{t.number}:{k}"] for k in (1, 2)] for t in top}
    assert set(k for k in s.user_attrs if k.startswith("rescore:")) == {f"rescore:{n}:{k}" for n in stored
                                                                      for k in (1, 2)}
    settings = Settings(**s.user_attrs["settings"])
    for t in top:  # two fresh seeds each, neither the trial's own
        assert [x["seed"] for x in stored[t.number]] == [trial_seed(settings, t.number) + k * 1_000_000
                                                         for k in (1, 2)]
    mean = {n: sum(x["val_acc"] for x in runs) / 2 for n, runs in stored.items()}
    want = max(top, key=lambda t: (mean[t.number], -t.values[1]))
    cfg = json.loads((tmp_path / "e" / "config.json").read_text())
    assert cfg["provenance"]["trial"] == want.number and cfg["provenance"]["pick"] == "rescore"
    assert cfg["metrics"]["val_acc_rescored"] == pytest.approx(mean[want.number], abs=1e-4)
    assert cfg["metrics"]["rescore_runs"] == stored[want.number]
    # A stored run is a real training: the same genome, recipe and seed on the search's split give it again.
    t = top[0]
    data = load(str(study_dir / "blobs.npz"), val_size=settings.val_size, train_size=settings.train_size)
    model, _ = fit(Genome.from_dict(t.user_attrs["genome"]), data, TrainConfig.from_dict(t.user_attrs["train"]),
                   stored[t.number][0]["seed"])
    assert evaluate(model, data, data.val_x, data.val_y) == pytest.approx(stored[t.number][0]["val_acc"], abs=0.01)

    # Asked again: nothing is trained twice; one more seed adds one run per candidate, the old ones kept.
    again = cli("export", "--rescore", "2", "--rescore-seeds", "3", "--device", "cpu", "--out",
                str(tmp_path / "f"), cwd=study_dir)
    assert again.returncode == 0, again.stderr
    assert "2 training runs" in again.stderr
    s = open_study(study_dir)
    for n, runs in stored.items():
        assert rescore.runs(s, n)[:2] == runs and len(rescore.runs(s, n)) == 3


def test_the_pick_follows_the_fresh_mean_not_the_search_score(tmp_path):
    s = optuna.create_study(study_name="x", storage=f"sqlite:///{tmp_path}/x.db", directions=["maximize", "minimize"])
    dist = {"f": FloatDistribution(0, 1)}
    for val, params in ((99.5, 4672), (99.44, 5820), (99.34, 8110), (99.6, 9000)):
        s.add_trial(create_trial(values=[val, params], params={"f": 0.5}, distributions=dist,
                                 state=TrialState.COMPLETE))
    for n, accs in ((0, (99.20, 99.30)), (1, (99.30, 99.34)), (2, (99.40, 99.36))):
        for k, acc in enumerate(accs, 1):
            s.set_user_attr(f"rescore:{n}:{k}", {"seed": k, "val_acc": acc})
    cands = export.fits(s, 8500)[:3]
    assert [t.number for t in cands] == [0, 1, 2]  # trial 3 is over the size
    assert rescore.best(s, cands, 2).number == 2
    assert rescore.score(s, 2, 1) == pytest.approx(99.40)  # only the first R runs count


def test_rescore_with_a_single_candidate_exports_it_without_training(study_dir, tmp_path):
    s = open_study(study_dir)
    smallest = min((t for t in s.get_trials() if t.state == TrialState.COMPLETE), key=lambda t: t.values[1])
    r = cli("export", "--max-params", str(int(smallest.values[1])), "--rescore", "3", "--device", "cpu",
            "--out", str(tmp_path / "e"), cwd=study_dir)
    assert r.returncode == 0, r.stderr
    assert "nothing to re-score" in r.stderr
    cfg = json.loads((tmp_path / "e" / "config.json").read_text())
    assert cfg["provenance"]["trial"] == smallest.number and "val_acc_rescored" not in cfg["metrics"]
    assert not any(k.startswith("rescore:") for k in open_study(study_dir).user_attrs)


def test_rescore_with_trial_is_one_line(study_dir):
    r = cli("export", "--trial", "0", "--rescore", "2", cwd=study_dir)
    assert r.returncode == 2 and "--rescore" in r.stderr and len(r.stderr.strip().splitlines()) == 1
