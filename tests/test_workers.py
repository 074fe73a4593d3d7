"""Several workers on one study, dead workers, signals: real processes, real SQLite files."""
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from archsearch import studies
from conftest import ROOT, write_blobs_npz
from test_cli import cli
from test_run_cli import quick, training_trials

GRACE = "6"  # seconds of silence before a worker counts as dead (30 for users; short here for speed)


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    return write_blobs_npz(tmp_path_factory.mktemp("d") / "blobs.npz")


def rows(db, sql):
    try:
        with sqlite3.connect(db, timeout=30) as c:
            return c.execute(sql).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []


def check_study(db, n, url=None, name="blobs-b3000"):
    """The invariants every multi-worker run must keep: n trials counted, none left
    RUNNING or WAITING, no trial number twice. Returns the study."""
    from archsearch.engine import counts
    study = optuna.load_study(study_name=name, storage=url or f"sqlite:///{db}")
    trials = study.get_trials()
    assert sum(map(counts, trials)) == n
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == numbers[-1] + 1
    return study


def start(blobs, tmp_path, *extra, **settings):
    env = {**os.environ, "ARCHSEARCH_OFFLINE": "1", "ARCHSEARCH_GRACE_S": GRACE}
    return subprocess.Popen([sys.executable, "-m", "archsearch", *quick(blobs, "--budget", "3000", *extra, **settings)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(pred, seconds=180):
    """The first truthy value pred() returns within `seconds`, else None: callers use the reading."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.3)
    return None


@pytest.mark.slow
def test_four_workers_share_one_sqlite_study(tmp_path, blobs):
    r = cli(*quick(blobs, "--budget", "3000", "--trials", "10", "--jobs", "4"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "locked" not in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert "4 workers" in r.stdout
    study = check_study(tmp_path / "studies" / "blobs-b3000.db", 10)
    assert len({t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs}) > 1
    from archsearch import engine as search, space
    shift = search.size_shift(search.Settings.of(study))  # the study's, though each worker's sampler has its own seed
    assert 0 < shift < 1
    sized = [t for t in study.trials if "size_frac" in t.user_attrs]  # not a trial that stepped back
    assert len(sized) >= 10 and all(t.user_attrs["size_frac"] == space.sweep(t.number, *space.SIZE_FRAC, shift)
                                    for t in sized)


@pytest.mark.slow
def test_kill_9_of_a_worker_mid_trial_fails_and_retries_its_trial_and_the_worker_restarts(tmp_path, blobs):
    db = tmp_path / "studies" / "blobs-b3000.db"
    p = start(blobs, tmp_path, "--trials", "6", "--jobs", "2", "--epochs", "6", prune=False)
    # A RUNNING trial past its first epoch (so in training, all its parameters drawn) with at
    # least 3 of its 6 epochs to go (so it is still running when the kill lands), and its worker.
    running = lambda: rows(db, "select t.number, a.value_json from trials t join trial_user_attributes a "
                               "on a.trial_id = t.trial_id join trial_user_attributes e on e.trial_id = t.trial_id "
                               "where t.state = 'RUNNING' and a.key = 'worker' and e.key = 'epochs_run' "
                               "and cast(e.value_json as integer) <= 3")
    complete = lambda: rows(db, "select t.number, v.value from trials t join trial_values v on "
                                "v.trial_id = t.trial_id where t.state = 'COMPLETE' and v.objective = 0")

    def both():  # one reading of the two, so the trial picked is one that was seen running
        c, r = complete(), running()
        return c and r and (c, r)
    seen = wait_for(both)
    assert seen, p.communicate(timeout=60)
    before, (number, worker) = dict(seen[0]), seen[1][0]
    os.kill(int(json.loads(worker).split(":")[1]), signal.SIGKILL)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert "ended with signal 9" in out and "worker" in out
    restarted = [line for line in out.splitlines() if "started again as pid" in line]
    assert len(restarted) == 1, out  # one crash, one replacement
    study = check_study(db, 6)
    killed = study.trials[number]
    assert killed.state.name == "FAIL"
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE" and retry[0].params == killed.params
    assert {t.number: t.values[0] for t in study.trials if t.number in before} == before


def worker_pids(parent: int) -> set[int]:
    """The run's worker processes: its children started by multiprocessing's spawn (Linux /proc)."""
    out = set()
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline") as f:
                spawned = "spawn_main" in f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and spawned:
            out.add(int(d))
    return out


@pytest.mark.slow
def test_workers_that_keep_crashing_are_restarted_at_most_jobs_times(tmp_path, blobs):
    p = start(blobs, tmp_path, "--trials", "20", "--jobs", "2", "--epochs", "60", prune=False)
    killed: set[int] = set()
    for _ in range(3):  # jobs + 1 crashes: the first two get a replacement, the third does not
        assert wait_for(lambda: len(worker_pids(p.pid) - killed) == 2), p.communicate(timeout=60)
        victim = min(worker_pids(p.pid) - killed)
        os.kill(victim, signal.SIGKILL)
        killed.add(victim)
    time.sleep(5)  # the parent polls each second: time to (not) start a third replacement
    assert len(worker_pids(p.pid) - killed) == 1
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert out.count("ended with signal 9") == 3 and out.count("started again as pid") == 2, out
    assert "restart 2 of at most 2" in out and "Traceback" not in err


@pytest.mark.slow
def test_rerun_after_the_whole_run_was_killed_retries_the_dead_trial(tmp_path, blobs):
    db = tmp_path / "studies" / "blobs-b3000.db"
    args = ("--trials", "3")
    p = start(blobs, tmp_path, *args, prune=False)
    assert wait_for(lambda: rows(db, "select number from trials where state = 'RUNNING'"))
    p.kill()  # SIGKILL, no cleanup at all: the trial stays RUNNING in the file
    p.communicate()
    dead = rows(db, "select number from trials where state = 'RUNNING'")[0][0]
    r = start(blobs, tmp_path, *args, prune=False)
    out, err = r.communicate(timeout=300)
    assert r.returncode == 0, err
    study = check_study(db, 3)
    assert study.trials[dead].state.name == "FAIL"
    assert [t.number for t in study.trials if t.system_attrs.get("failed_trial") == dead]


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_all_workers_and_rerun_resumes(tmp_path, blobs, sig, code):
    db = tmp_path / "studies" / "blobs-b3000.db"
    args = ["--trials", "4", "--jobs", "2"]
    p = start(blobs, tmp_path, *args, "--epochs", "60", prune=False)  # the later --epochs wins: long trials
    # Both workers inside training (an epoch ended), then the signal at once: a fixed sleep let a
    # trial finish first on a fast CPU (tests/test_run_cli.py's signal test did on CI).
    assert wait_for(lambda: len(training_trials(db)) == 2)
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert "running trials are marked FAIL" in err and "resume with: archsearch run" in err
    assert "Traceback" not in err
    assert not rows(db, "select number from trials where state = 'RUNNING'")
    assert len(rows(db, "select number from trials where state = 'FAIL'")) == 2
    done = len(rows(db, "select number from trials where state = 'COMPLETE'"))
    r = start(blobs, tmp_path, *args, "--epochs", "60", "--timeout", "1s", prune=False)
    out, err = r.communicate(timeout=300)
    assert r.returncode == 0 and f"resumed, {done} of 4" in out, err


def take_queued(url, barrier, out):
    """A worker's share of the queue: every queued trial it manages to start."""
    study = optuna.load_study(study_name="q", storage=studies.open_storage(url))
    barrier.wait()  # all processes race for the same trials from here
    taken = []
    while (trial_id := study._pop_waiting_trial_id()) is not None:  # what study.optimize does first
        taken.append(trial_id)
    out.put(taken)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_each_queued_trial_is_started_by_exactly_one_worker(tmp_path, request, backend):
    # Optuna's own WAITING -> RUNNING was a read then a write, with no lock on SQLite: 4 processes
    # took 99-108 of 60 queued trials, and a trial run twice killed its second worker at the end
    # with "Cannot tell a COMPLETE trial" (CI). Warm starts and retried trials are queued.
    url = f"sqlite:///{tmp_path / 'q.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    study = optuna.create_study(study_name="q", storage=studies.open_storage(url, writer=True))
    for i in range(60):
        study.enqueue_trial({"x": i})
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=take_queued, args=(url, barrier, out)) for _ in range(4)]
    for p in procs:
        p.start()
    taken = [t for _ in procs for t in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    assert sorted(taken) == sorted(t._trial_id for t in study.get_trials())
    assert all(t.state.name == "RUNNING" and t.datetime_start for t in study.get_trials())


@pytest.mark.slow
def test_workers_share_a_postgresql_study_and_the_password_is_never_shown(tmp_path, blobs, postgres_url):
    url = postgres_url.replace("postgres@", "postgres:s3cret-pw@")  # trust auth: any password is accepted
    args = ("--trials", "6", "--jobs", "3", "--storage", url, "--study", "pg")
    r = cli(*quick(blobs, "--budget", "3000", *args), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "s3cret-pw" not in r.stdout + r.stderr and "postgres:***@" in r.stdout
    study = check_study(None, 6, url=url, name="pg")
    assert len({t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs}) > 1
    stored = json.dumps([study.user_attrs, study._storage.get_study_system_attrs(study._study_id)]
                        + [[t.user_attrs, t.system_attrs] for t in study.trials])
    assert "s3cret-pw" not in stored
    p = cli("pareto", "--storage", url, "--study", "pg", "--json", cwd=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout) and "s3cret-pw" not in p.stderr
    # Interrupted: the resume hint repeats the command, with the password masked.
    env = {**os.environ, "ARCHSEARCH_OFFLINE": "1"}
    long_run = [*quick(blobs, "--budget", "3000"), "--epochs", "40", "--storage", url, "--study", "pg2",
                "--trials", "2", "--jobs", "2"]
    more = subprocess.Popen([sys.executable, "-m", "archsearch", *long_run], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    running = lambda: "pg2" in studies.study_names(url) and optuna.load_study(study_name="pg2", storage=url) \
        .get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert wait_for(running)
    more.send_signal(signal.SIGINT)
    out, err = more.communicate(timeout=120)
    assert more.returncode == 130 and "resume with: archsearch run" in err and "postgres:***@" in err, err
    assert "s3cret-pw" not in out + err
    # A wrong port: one line, password masked.
    bad = url.rsplit(":", 1)[0] + ":1/archsearch"
    b = cli("pareto", "--storage", bad, "--study", "pg", cwd=tmp_path)
    assert b.returncode == 2 and "s3cret-pw" not in b.stderr and len(b.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_pareto_export_and_dashboard_read_while_a_search_writes(tmp_path, blobs):
    import urllib.request

    from test_run_cli import digest
    sys.path.insert(0, str(ROOT / "scripts"))
    from screenshot import free_port
    db = tmp_path / "studies" / "blobs-b3000.db"
    p = start(blobs, tmp_path, "--trials", "10", "--jobs", "2", "--epochs", "4")
    assert wait_for(lambda: rows(db, "select number from trials where state = 'COMPLETE'"))
    port = free_port()
    dash = subprocess.Popen([sys.executable, "-m", "archsearch", "dashboard", "--port", str(port)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    reads = 0
    try:
        assert "dashboard" in dash.stdout.readline()
        while p.poll() is None and reads < 4:  # every reader, again and again, while trials are written
            r = cli("pareto", "--study", "blobs-b3000", "--json", cwd=tmp_path)
            assert r.returncode == 0 and json.loads(r.stdout), r.stderr
            e = cli("export", "--study", "blobs-b3000", "--out", f"e{reads}", cwd=tmp_path)
            assert e.returncode == 0, e.stderr
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/1?after=0", timeout=30) as resp:
                assert resp.status == 200 and json.load(resp)["name"] == "blobs-b3000"
            reads += 1
    finally:
        dash.send_signal(signal.SIGINT)
        dash.communicate(timeout=30)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0 and "locked" not in out + err, err
    assert reads >= 1
    check_study(db, 10)
    # At rest, pareto and export read only: the file does not change by a byte.
    before = digest(db)
    assert cli("pareto", "--study", "blobs-b3000", cwd=tmp_path).returncode == 0
    assert cli("export", "--study", "blobs-b3000", "--out", "last", cwd=tmp_path).returncode == 0
    assert digest(db) == before


def test_workers_of_runs_with_other_seeds_draw_other_trials_and_one_seed_repeats():
    """Worker seeds were seed + index: with 2 workers, --seed 1's worker 0 drew --seed 0's worker 1's
    numbers, and two searches trained the same sampled trials."""
    from archsearch.engine import make_sampler
    from archsearch.workers import worker_seed

    def draws(sampler_seed):
        study = optuna.create_study(sampler=make_sampler("random", sampler_seed))
        return tuple(study.ask().suggest_float("x", 0, 1) for _ in range(3))

    runs = [(seed, index, restarts) for seed in range(3) for index in range(4) for restarts in range(3)]
    assert len({draws(worker_seed(*r)) for r in runs}) == len(runs)
    assert draws(worker_seed(1, 0)) == draws(worker_seed(1, 0))  # a run is repeatable from its --seed
