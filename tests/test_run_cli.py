"""`archsearch run` and `pareto` as a user runs them: subprocesses, real SQLite files."""
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import search_config, write_blobs_npz
from test_cli import cli


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    return write_blobs_npz(tmp_path_factory.mktemp("d") / "blobs.npz")


def quick(blobs, *extra, **settings):
    """A new study on blobs: 2 epochs on 600 images, 200 validation images, `settings` in a search config."""
    cfg = search_config(os.path.join(os.path.dirname(blobs), f"c{len(os.listdir(os.path.dirname(blobs)))}.toml"),
                        val_size=200, **settings)
    return ["run", "--dataset", blobs, "--epochs", "2", "--train-size", "600", "--search-config", cfg,
            "--device", "cpu", *extra]


def states(db):
    try:
        with sqlite3.connect(db) as c:
            return [s for (s,) in c.execute("select state from trials order by number")]
    except sqlite3.OperationalError:  # Optuna has not created its tables yet
        return []


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_then_pareto_then_resume(tmp_path, blobs):
    r = cli(*quick(blobs, "--budget", "3000", "--trials", "3"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    db = tmp_path / "studies" / "blobs-b3000.db"
    assert db.exists()
    assert "Pareto front" in r.stdout and "archsearch pareto --study blobs-b3000" in r.stdout
    assert r.stdout.count(" params ") >= 1 and "#0" in r.stdout
    p = cli("pareto", "--study", "blobs-b3000", "--json", cwd=tmp_path)
    rows = json.loads(p.stdout)
    assert rows and set(rows[0]) == {"trial", "params", "flops", "int8_bytes", "peak_ram", "val_acc", "test_acc",
                                     "epochs"}
    assert all(row["int8_bytes"] > row["params"] and row["peak_ram"] > 0 for row in rows)
    assert all(row["params"] <= 3000 for row in rows)
    r2 = cli("run", "--study", "blobs-b3000", "--trials", "5", cwd=tmp_path)  # its settings are the study's
    assert r2.returncode == 0 and "resumed, 3 of 5" in r2.stdout, r2.stderr
    assert len([s for s in states(db) if s in ("COMPLETE", "PRUNED")]) == 5


def test_starts_are_the_first_trials_and_never_outnumber_them(tmp_path, blobs):
    r = cli(*quick(blobs, "--budget", "3000", "--trials", "2", starts=6, prune=False), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "#0 " in r.stdout and "[start]" in r.stdout
    db = tmp_path / "studies" / "blobs-b3000.db"
    with sqlite3.connect(db) as c:
        attrs = c.execute("select t.number, a.value_json from trials t join trial_user_attributes a "
                          "on a.trial_id = t.trial_id where a.key = 'kind'").fetchall()
    assert sorted(attrs) == [(0, '"start"'), (1, '"start"')]
    assert states(db) == ["COMPLETE", "COMPLETE"]  # two starts queued for two trials: none left WAITING


def training_trials(db):
    """Numbers of the RUNNING trials that have finished an epoch (so are inside training)."""
    if not db.exists():  # connecting would create it
        return []
    try:
        with sqlite3.connect(db) as c:
            return [n for (n,) in c.execute("select t.number from trials t join trial_user_attributes a "
                                            "using (trial_id) where t.state = 'RUNNING' and a.key = 'epochs_run'")]
    except sqlite3.OperationalError:  # Optuna has not created its tables yet
        return []


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_marks_the_running_trial_fail_and_rerun_resumes(tmp_path, blobs, sig, code, word):
    env = {**os.environ, "ARCHSEARCH_OFFLINE": "1"}
    args = quick(blobs, "--budget", "3000", "--trials", "3", prune=False)
    # 60 epochs of 600 images: seconds even on a fast CPU, so the trial is still running when the
    # signal lands. The signal is sent as soon as an epoch has ended, not after a fixed sleep: on a
    # fast CI machine a 2 s sleep let a whole 30-epoch trial finish first.
    args[args.index("--epochs") + 1] = "60"
    p = subprocess.Popen([sys.executable, "-m", "archsearch", *args], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = tmp_path / "studies" / "blobs-b3000.db"
    deadline, training = time.time() + 120, []
    while time.time() < deadline and not training:
        time.sleep(0.05)
        training = training_trials(db)
    assert training, "no trial reached its first epoch within 120 s"
    running = training[0]
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert f"{word}: running trials are marked FAIL" in err and "resume with: archsearch run" in err
    assert "Traceback" not in err
    before = states(db)
    assert "RUNNING" not in before and before[running] == "FAIL"
    done = before.count("COMPLETE")
    # --timeout is not a study setting: the same study resumes, runs one trial, stops.
    r = subprocess.run([sys.executable, "-m", "archsearch", *args, "--timeout", "1s"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"resumed, {done} of 3 trials finished" in r.stdout
    after = states(db)
    assert after.count("COMPLETE") == done + 1 and after[running] == "FAIL"
