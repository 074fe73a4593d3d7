"""The CLI in real subprocesses: JSON contracts, help text, one-line errors."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT


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


# How the project's history names things ("search v12", "change 7", "issue 6"): the code and the
# help say what and why, never which step of the history.
HISTORY = re.compile(r"\b(search|study)\s+v\d+|\bv\d+\b|\bchanges?\s+\d+|\bissue\s+\d+|search-record", re.I)


def test_code_and_help_name_no_search_versions_or_change_numbers():
    files = sorted((ROOT / "archsearch").glob("*.py")) + sorted((ROOT / "archsearch").glob("*.json"))
    hits = [f"{p.name}:{n}: {line.strip()}" for p in files for n, line in enumerate(p.read_text().splitlines(), 1)
            if HISTORY.search(line)]
    assert not hits, hits
    for name in commands():
        for flag in ("--help", "--help-all") if name == "run" else ("--help",):
            r = cli(name, flag)
            assert r.returncode == 0 and not HISTORY.search(r.stdout), (name, HISTORY.search(r.stdout))
    assert HISTORY.search("as in search v27 (change 35)")  # the pattern finds what it is for


def test_run_help_shows_at_most_15_options_and_help_all_the_rest():
    shown = re.findall(r"^  (-\S+)", cli("run", "--help").stdout, re.M)
    every = re.findall(r"^  (-\S+)", cli("run", "--help-all").stdout, re.M)
    assert len(set(shown) - {"-h,", "--help-all"}) <= 15 and "--budget" in shown and "--train-size" not in shown
    assert set(shown) < set(every) and "--train-size" in every


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


def test_python_dash_m_and_version():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("archsearch ")


@pytest.mark.parametrize("args", [["presets"], ["show", "--preset", "seed-7932"], ["pareto", "--study", "nope"],
                                  ["export", "--study", "nope"], ["dashboard", "--study", "nope"]])
def test_commands_that_train_nothing_never_import_torch(tmp_path, args):
    # Importing torch costs seconds (3.9 s on the 2-core CI machine); listing, tables, the front
    # and every mistake found before any weights are touched answer without it (studies.py).
    code = ("import sys; from archsearch.cli import main; code = main(sys.argv[1:]); "
            "print('torch' in sys.modules); sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "ARCHSEARCH_OFFLINE": "1"}, timeout=120)
    assert r.returncode in (0, 2), r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False", (args, r.stdout[-300:], r.stderr)
