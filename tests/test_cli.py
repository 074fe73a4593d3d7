"""The CLI in real subprocesses: JSON contracts, help text, one-line errors."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from test_data import _write_idx


def cli(*args, env=None, cwd=None):
    e = {**os.environ, "ARCHSEARCH_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "archsearch", *args], capture_output=True, text=True,
                          env=e, cwd=cwd or ROOT, timeout=600)


def commands():
    from archsearch.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


def test_every_command_and_option_has_help_and_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name, p in commands().items():
        assert f"archsearch {name}" in readme, name
        assert p.description or p.format_help()
        for a in p._actions:
            if a.option_strings and a.dest != "help":
                assert a.help and a.help.strip(), (name, a.option_strings)


def test_presets_json():
    r = cli("presets", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {"seed-4232": 4232, "seed-7932": 7932}.items() <= {x["name"]: x["params"] for x in rows}.items()


def test_show_json_and_table():
    r = cli("show", "--preset", "seed-7932", "--json")
    out = json.loads(r.stdout)
    assert out["params"] == 7932 and out["flops"] == 1207088
    assert sum(l["params"] for l in out["layers"]) == 7932
    t = cli("show", "--preset", "seed-7932").stdout
    assert "Total params: 7,932" in t and "Conv2d-1" in t and "[-1, 8, 28, 28]" in t


@pytest.mark.slow
def test_train_json_on_a_real_mnist_slice(mnist, tmp_path):
    cfg = tmp_path / "config.json"
    out = json.loads(cli("show", "--preset", "seed-4232", "--json").stdout)
    cfg.write_text(json.dumps({"genome": out["genome"], "train": {**out["train"], "epochs": 2}}))
    r = cli("train", "--config", str(cfg), "--train-size", "3000", "--seeds", "2", "--json",
            "--data-dir", mnist, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)  # stdout is exactly one JSON object
    assert res["params"] == 4232 and res["flops"] == 682236 and res["epochs"] == 2
    assert len(res["test_accs"]) == 2 and res["test_accs"][0] != res["test_accs"][1]
    assert 40 < res["test_acc_mean"]  # 2 short epochs: far above chance (10%), not converged
    assert res["test_acc_mean"] <= 100 and res["test_acc_std"] >= 0 and res["epoch_seconds"] > 0
    assert "seed 0: test" in r.stderr


BAD = [
    (["train", "--preset", "seed-1"], "unknown preset 'seed-1'; choose from: seed-11588"),
    (["show", "--config", "nope.json"], "does not exist"),
    (["show", "--config", "{notjson}"], "not valid JSON"),
    (["show", "--config", "{badgenome}"], "layer 1"),
    (["train", "--preset", "seed-4232", "--dataset", "imagenet"], "choose from mnist, fashion-mnist"),
    (["train", "--preset", "seed-4232", "--data-dir", "{empty}"], "train-images-idx3-ubyte.gz"),
    (["train", "--preset", "seed-4232", "--data-dir", "{corrupt}"], "wrong magic"),
    (["train", "--preset", "seed-4232", "--epochs", "0"], "--epochs: must be a positive integer"),
    (["train", "--preset", "seed-4232", "--seeds", "-1"], "--seeds: must be a positive integer"),
    (["train", "--preset", "seed-4232", "--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["train", "--preset", "seed-4232", "--device", "cuda"], "CUDA is not available"),
    (["train", "--preset", "seed-4232", "--device", "tpu"], "use auto, cpu, cuda"),
    (["train", "--preset", "seed-4232", "--device", "cpu", "--compile"], "--compile needs CUDA"),
    (["train"], "one of the arguments --preset --config is required"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a)[:50] for a, _ in BAD])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    import torch
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("CUDA present")
    (tmp_path / "notjson.json").write_text("{not json")
    (tmp_path / "badgenome.json").write_text(json.dumps({"genome": {"layers": [
        {"type": "conv", "out": 4}, {"type": "conv", "out": 10, "k": 99}]}}))
    (tmp_path / "empty").mkdir()
    _write_idx(tmp_path / "corrupt" / "MNIST" / "raw", magic_images=7)
    args = [a.format(notjson=tmp_path / "notjson.json", badgenome=tmp_path / "badgenome.json",
                     empty=tmp_path / "empty", corrupt=tmp_path / "corrupt") for a in args]
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and message in lines[0], lines[0]
    assert re.match(r"archsearch( \w+)?: error: ", lines[0])


def test_python_dash_m_and_version():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("archsearch ")
