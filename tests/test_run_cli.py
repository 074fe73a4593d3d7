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

from conftest import write_blobs_npz
from test_cli import cli


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    return write_blobs_npz(tmp_path_factory.mktemp("d") / "blobs.npz")


def quick(blobs, *extra):
    return ["run", "--dataset", blobs, "--epochs", "2", "--train-size", "600", "--val-size", "200",
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
    assert rows and set(rows[0]) == {"trial", "params", "flops", "val_acc", "test_acc", "epochs"}
    assert all(row["params"] <= 3000 for row in rows)
    r2 = cli(*quick(blobs, "--budget", "3000", "--trials", "5"), cwd=tmp_path)
    assert r2.returncode == 0 and "resumed, 3 of 5" in r2.stdout
    assert len([s for s in states(db) if s in ("COMPLETE", "PRUNED")]) == 5


RUN_BAD = [
    (["--budget", "0"], "--budget: must be a positive integer"),
    (["--budget", "ten"], "--budget: 'ten' is not an integer"),
    (["--budget", "20"], "below the smallest model the search can build (42 parameters"),
    (["--budget", "3000", "--trials", "0"], "--trials: must be a positive integer"),
    (["--budget", "3000", "--timeout", "0"], "--timeout: must be positive"),
    (["--budget", "3000", "--sampler", "cmaes"], "invalid choice: 'cmaes'"),
    (["--budget", "3000", "--epochs", "1"], "leaves no room for pruning"),
    (["--budget", "3000", "--storage", "nosuchdb://x"], "cannot open storage"),
    (["--budget", "3000", "--storage", "sqlite:////proc/nope/x.db"], "cannot create /proc/nope"),
]


@pytest.mark.parametrize("args, message", RUN_BAD, ids=[" ".join(a) for a, _ in RUN_BAD])
def test_run_bad_input_one_line_and_no_study(tmp_path, blobs, args, message):
    r = cli(*quick(blobs, *args), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr and message in lines[0], r.stderr
    assert not (tmp_path / "studies").exists() or not list((tmp_path / "studies").glob("*.db"))


def test_resume_with_other_settings_is_refused_byte_for_byte(tmp_path, blobs):
    assert cli(*quick(blobs, "--budget", "3000", "--trials", "1", "--no-prune"), cwd=tmp_path).returncode == 0
    db = tmp_path / "studies" / "blobs-b3000.db"
    before = digest(db)
    r = cli(*quick(blobs, "--budget", "3000", "--trials", "2", "--no-prune", "--seed", "5"), cwd=tmp_path)
    assert r.returncode == 2 and "seed=0 (you gave 5)" in r.stderr and "--study" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert digest(db) == before


def test_pareto_on_missing_study_lists_what_is_there(tmp_path, blobs):
    (tmp_path / "studies").mkdir()
    r = cli("pareto", "--study", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "no study 'nope' in studies/" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_marks_the_running_trial_fail_and_rerun_resumes(tmp_path, blobs, sig, code, word):
    env = {**os.environ, "ARCHSEARCH_OFFLINE": "1"}
    args = quick(blobs, "--budget", "3000", "--trials", "3", "--no-presets", "--no-prune")
    args[args.index("--epochs") + 1] = "30"  # long enough to be interrupted mid-trial
    p = subprocess.Popen([sys.executable, "-m", "archsearch", *args], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = tmp_path / "studies" / "blobs-b3000.db"
    deadline = time.time() + 120
    while time.time() < deadline and not (db.exists() and "RUNNING" in states(db)):
        time.sleep(0.5)
    time.sleep(2)  # inside training
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert f"{word}: running trials are marked FAIL" in err and "resume with: archsearch run" in err
    assert "Traceback" not in err
    assert "RUNNING" not in states(db) and "FAIL" in states(db)
    # --timeout is not a study setting: the same study resumes, runs one trial, stops.
    r = subprocess.run([sys.executable, "-m", "archsearch", *args, "--timeout", "1"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resumed, 0 of 3 trials finished" in r.stdout
    assert states(db).count("COMPLETE") == 1 and states(db)[0] == "FAIL"
