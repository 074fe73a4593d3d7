"""Every bad input, one table: the CLI in a subprocess must exit 2 with one line on stderr
that says what is wrong (and what to do), no traceback, and leave every study file
byte for byte as it was and no new one behind."""
import hashlib
import json
import re
import shutil

import optuna
import pytest

from conftest import copy_study
from test_cli import cli
from test_data import _write_idx

Q = ["--dataset", "{blobs}", "--epochs", "2", "--train-size", "600", "--device", "cpu"]
RUN = ["run", "--study", "blobs-b3000", "--device", "cpu"]                             # resumes the finished study
NEW = ["run", *Q, "--budget", "3000", "--study", "new", "--search-config", "small.toml"]  # would create one

CASES = [
    # the core commands
    (["train", "--preset", "seed-1"], "unknown preset 'seed-1'; choose from: seed-11588"),
    (["show", "--config", "nope.json"], "does not exist"),
    (["show", "--config", "notjson.json"], "not valid JSON"),
    (["show", "--config", "badgenome.json"], "layer 1"),
    (["train", "--preset", "seed-4232", "--dataset", "imagenet"], "choose from mnist, fashion-mnist"),
    (["train", "--preset", "seed-4232", "--channels", "2"], "invalid choice: 2"),
    (["train", "--preset", "seed-4232", "--dataset", "onefolder"], "onefolder holds 1 class folders"),
    (["train", "--preset", "seed-4232", "--data-dir", "empty"], "train-images-idx3-ubyte.gz"),
    (["train", "--preset", "seed-4232", "--data-dir", "corrupt"], "wrong magic"),
    (["train", "--preset", "seed-4232", "--epochs", "0"], "--epochs: must be a positive integer"),
    (["train", "--preset", "seed-4232", "--seeds", "-1"], "--seeds: must be a positive integer"),
    (["train", "--preset", "seed-4232", "--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["train", "--preset", "seed-4232", "--device", "cuda"], "CUDA is not available"),
    (["train", "--preset", "seed-4232", "--device", "tpu"], "use auto, cpu, cuda"),
    (["train", "--preset", "seed-4232", "--device", "cpu", "--compile"], "--compile needs CUDA"),
    (["train", "--preset", "seed-4232", "--precision", "fp64"], "invalid choice: 'fp64'"),
    (["train"], "one of the arguments --preset --config is required"),
    (["frobnicate"], "invalid choice"),
    # run
    (["run", *Q, "--budget", "0"], "--budget: must be a positive integer"),
    (["run", *Q, "--budget", "ten"], "--budget: 'ten' is not an integer"),
    ([*NEW, "--budget", "20"], "below the smallest model the search can build (82 parameters"),
    ([*RUN, "--trials", "0"], "--trials: must be a positive integer"),
    ([*RUN, "--timeout", "0"], "--timeout: must be positive"),
    ([*RUN, "--timeout", "soon"], "cannot read the duration 'soon'; write e.g. 90s, 30m or 2h"),
    ([*NEW[:-2], "--search-config", "cmaes.toml"], "unknown sampler 'cmaes'; choose tpe, nsga2 or random"),
    ([*NEW[:-2], "--search-config", "old.toml"], "unknown setting start_recipe; valid: val_size, sampler"),
    ([*NEW[:-2], "--search-config", "notjson.json"], "notjson.json is not valid JSON"),
    ([*NEW[:-2], "--search-config", "nope.toml"], "cannot read the search config nope.toml"),
    ([*NEW, "--epochs", "1"], "1 epochs leave no room for pruning at epoch 1"),
    ([*NEW, "--image-size", "6"], "images of 6x6 are smaller than the search space builds for (8x8)"),
    ([*NEW, "--max-ram", "500"], "bytes of peak RAM at minimum widths, over the limit of 500; raise the limit"),
    ([*NEW, "--max-macs", "0"], "--max-macs: must be a positive integer"),
    (["export", "--study", "blobs-b3000", "--max-ram", "100"], "no COMPLETE trial fits at most 3,000 params"),
    (["export", "--study", "blobs-b3000", "--trial", "1", "--max-macs", "9"], "drop them with --trial"),
    ([*RUN, "--jobs", "0"], "--jobs: must be a positive integer"),
    ([*NEW, "--jobs", "9", "--trials", "4"], "jobs 9 is more than trials 4"),
    ([*RUN, "--seed", "5"], "you gave seed 5 (the study has 0)"),     # resume with other settings
    (["run", "--study", "nope"], "there is no study 'nope' in sqlite:///studies/nope.db; give a budget"),
    (["run", "--storage", "sqlite:///old.db", "--study", "old"], "study 'old' was made by archsearch 0.1.0 "
                                                                  "(schema None, this is 2); start a new study"),
    (["pareto", "--storage", "sqlite:///old.db"], "study 'old' was made by archsearch 0.1.0"),
    ([*NEW, "--storage", "nosuchdb://x"], "cannot open storage"),
    ([*NEW, "--storage", "sqlite:////proc/nope/x.db"], "cannot create /proc/nope"),
    ([*NEW, "--storage", "sqlite:///corrupt.db"], "file is not a database"),
    ([*NEW, "--storage", "mysql://me:pw@127.0.0.1/x"], "database driver for mysql storage is not installed"),
    ([*NEW, "--storage", "postgresql+pg8000://me:pw@127.0.0.1:1/x"], "no module 'pg8000'"),
    ([*NEW, "--storage", "postgresql://me:pw@127.0.0.1:1/x"], "cannot open storage postgresql://me:***@"),
    # pareto
    (["pareto", "--study", "nope"], "no study 'nope' in studies/; studies there: blobs-b3000, empty"),
    (["pareto"], "2 studies in studies/ (blobs-b3000, empty); name one with --study"),
    (["pareto", "--storage", "sqlite:///corrupt.db"], "file is not a database"),
    # export
    (["export", "--study", "nope"], "no study 'nope' in studies/"),
    (["export", "--study", "empty"], "has no COMPLETE trial yet"),
    (["export", "--study", "empty", "--trial", "0"], "trial 0 is PRUNED at epoch 3, not COMPLETE"),
    (["export", "--study", "blobs-b3000", "--max-params", "10"], "no COMPLETE trial has at most 10 params; "
                                                                  "the smallest has"),
    (["export", "--study", "blobs-b3000", "--trial", "99"], "has no trial 99"),
    (["export", "--study", "blobs-b3000", "--trial", "-1"], "--trial: must be 0 or more"),
    (["export", "--study", "blobs-b3000", "--max-params", "5000", "--trial", "1"], "not allowed with argument"),
    (["export", "--study", "blobs-b3000", "--trial", "1", "--pick", "best"], "--pick chooses among the trials "
                                                                            "under a size; drop it with --trial"),
    (["export", "--study", "blobs-b3000", "--pick", "median"], "invalid choice: 'median'"),
    (["export", "--study", "blobs-b3000", "--out", "blobs.npz"], "is a file; give a folder"),
    (["export", "--study", "blobs-b3000", "--out", "full"], "already holds files (x.txt); use --force"),
    (["export", "--study", "blobs-b3000", "--out", "/proc/x"], "cannot write to /proc"),
    (["export", "--storage", "sqlite:///nowhere/x.db"], "no study database nowhere/x.db"),
    # dashboard (a busy port: tests/test_dashboard.py, which holds the port open)
    (["dashboard", "--storage", "sqlite:///elsewhere/x.db"], "no study database elsewhere/x.db"),
    (["dashboard", "--storage", "nosuchdb://x"], "cannot open storage"),
    (["dashboard", "--storage", "sqlite:///corrupt.db"], "file is not a database"),
    (["dashboard", "--study", "nope"], "no study 'nope' in studies/"),
    (["dashboard", "--study", "blobs-b3000", "--port", "70000"], "a port is 1 to 65535"),
    (["dashboard", "--study", "blobs-b3000", "--host", "256.1.1.1"], "cannot listen on 256.1.1.1:8080"),
]


@pytest.fixture(scope="module")
def base(finished_study, tmp_path_factory):
    """A folder as a user has it: a finished study, a study with only a pruned trial,
    a corrupt database, bad configs, an empty and a corrupt data folder."""
    d = copy_study(finished_study, tmp_path_factory.mktemp("bad") / "base")
    finished = optuna.storages.RDBStorage(f"sqlite:///{d}/studies/blobs-b3000.db")
    made = optuna.load_study(study_name="blobs-b3000", storage=finished).user_attrs
    finished.engine.dispose()  # closed, so that SQLite removes its -wal file now, not whenever it is collected
    empty = optuna.create_study(study_name="empty", storage=f"sqlite:///{d}/studies/empty.db",
                                directions=["maximize", "minimize"])
    for k, v in made.items():  # an archsearch study of today's schema
        empty.set_user_attr(k, v)
    old = optuna.create_study(study_name="old", storage=f"sqlite:///{d}/old.db", directions=["maximize", "minimize"])
    old.set_user_attr("archsearch_version", "0.1.0")  # as made before studies carried a schema
    old.set_user_attr("settings", made["settings"])
    (d / "small.toml").write_text("val_size = 200\n")
    (d / "cmaes.toml").write_text('sampler = "cmaes"\n')
    (d / "old.toml").write_text('start_recipe = "space"\n')
    t = empty.ask()
    t.set_user_attr("pruned_at", 3)
    empty.tell(t, state=optuna.trial.TrialState.PRUNED)
    (d / "corrupt.db").write_bytes(b"this is not an SQLite database, just 64 bytes of text......\n" * 20)
    (d / "notjson.json").write_text("{not json")
    (d / "badgenome.json").write_text(json.dumps({"genome": {"layers": [
        {"type": "conv", "out": 4}, {"type": "conv", "out": 10, "k": 99}]}}))
    (d / "empty").mkdir()
    _write_idx(d / "corrupt" / "MNIST" / "raw", magic_images=7)
    (d / "full").mkdir()
    (d / "onefolder" / "a").mkdir(parents=True)
    (d / "full" / "x.txt").write_text("mine")
    assert not list(d.rglob("*-wal")), "a finished run or a closed reader left SQLite's -wal file behind"
    return d


def snapshot(d):
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input(base, tmp_path, args, message):
    import torch
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("CUDA present")
    w = tmp_path / "w"
    shutil.copytree(base, w)
    before = snapshot(w)
    r = cli(*[a.format(blobs=w / "blobs.npz") for a in args], cwd=w)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and message in lines[0], lines[0]
    assert re.match(r"archsearch( \w+)?: error: ", lines[0])
    assert ":pw@" not in r.stderr  # passwords are masked
    assert snapshot(w) == before  # every file, every study byte for byte, and nothing new
