"""`archsearch dashboard`: our figures and notes in the study, and the real UI in headless Chromium."""
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from screenshot import chromium, free_port, wait_for_figures  # noqa: E402

from archsearch import dashboard
from conftest import copy_study
from test_cli import cli
from test_run_cli import digest


@pytest.fixture(scope="module")
def study_dir(finished_study, tmp_path_factory):
    return copy_study(finished_study, tmp_path_factory.mktemp("dash") / "w")


def load(d):
    return optuna.load_study(study_name="blobs-b3000", storage=f"sqlite:///{d}/studies/blobs-b3000.db")


def test_staircase():
    assert dashboard.staircase([(3, 60.0), (1, 50.0), (2, 40.0)]) == ([1, 3, 3], [50.0, 50.0, 60.0])
    assert dashboard.staircase([]) == ([], [])


def test_the_front_figure_zooms_on_the_best_five_points_of_accuracy():
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("settings", {"budget": 10000})
    for acc, params in [(16.3, 550), (84.4, 650), (96.8, 2895), (98.3, 9053)]:  # a first search's front
        study.add_trial(optuna.trial.create_trial(values=[acc, params], user_attrs={"params": params,
                                                                                    "curve": [acc]}))
    low, high = dashboard.figures(study)["front"].layout.yaxis.range
    assert 92.5 < low < 93.3 and 98.3 < high < 99.0  # 16% and 84% are off the axis, not flattening it


def test_run_saves_figures_and_a_note_per_trial(study_dir):
    from optuna_dashboard._custom_plot_data import list_graph_object_ids
    study = load(study_dir)
    assert sorted(list_graph_object_ids(attrs(study))) == sorted(dashboard.FIGURES)
    figs = dashboard.figures(study)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    front = next(tr for tr in figs["front"].data if tr.name == "Pareto front")
    assert max(front.y) == max(t.values[0] for t in done)
    curves = [tr for tr in figs["curves"].data if tr.x[0] is not None]
    assert len(curves) == len([t for t in study.trials if t.user_attrs.get("curve")])
    for t in study.trials:
        if "params" in t.user_attrs:  # every trial that got a model (not the infeasible ones)
            note = _note(study, t)  # get_note() wants a live Trial; a FrozenTrial has its id only
            assert f"{t.user_attrs['params']:,} params" in note and "| training |" in note


def attrs(study):
    return study._storage.get_study_system_attrs(study._study_id)


def _note(study, t):
    from optuna_dashboard._note import get_note_from_system_attrs
    return get_note_from_system_attrs(attrs(study), t._trial_id)["body"]


def browser():
    """Headless Debian Chromium through Selenium, or a skip that says what is missing."""
    try:
        return chromium()
    except RuntimeError as e:  # CI sets ARCHSEARCH_REQUIRE_BROWSER=1: there a missing browser fails
        (pytest.fail if os.environ.get("ARCHSEARCH_REQUIRE_BROWSER") == "1" else pytest.skip)(str(e))


@pytest.mark.slow
def test_dashboard_renders_in_headless_chromium_and_stops_on_ctrl_c(study_dir, tmp_path):
    db = study_dir / "studies" / "blobs-b3000.db"
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "archsearch", "dashboard", "--port", str(port)], cwd=study_dir,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    drv = None
    try:
        line = p.stdout.readline()
        assert f"http://127.0.0.1:{port}/dashboard/" in line, line + p.stderr.read()
        before = digest(db)  # from here on the dashboard only reads
        drv = browser()
        drv.get(f"http://127.0.0.1:{port}/dashboard/studies/1")
        titles = wait_for_figures(drv)
        body = drv.find_element("tag name", "body").text
        assert "blobs-b3000" in body and "Pareto Front" in body
        assert "Validation accuracy vs parameters" in titles
        assert any(t.startswith("Validation accuracy per epoch") for t in titles)
        assert any(t.startswith("Hypervolume") for t in titles)
        assert drv.execute_script("return document.querySelectorAll('.js-plotly-plot .scatterlayer .point')"
                                  ".length") > 0  # points drawn, not just empty axes
        drv.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        assert digest(db) == before
    finally:
        if drv:
            drv.quit()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0 and "dashboard stopped" in err and "Traceback" not in err


def test_busy_port_is_one_line_naming_the_port(study_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("dashboard", "--port", str(port), cwd=study_dir)
    assert r.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in r.stderr and "--port" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_swallowed_signal_still_stops_the_server(study_dir):
    # A KeyboardInterrupt raised inside a finalizer is swallowed by Python (signals.py); the
    # server must still notice the recorded signal. optuna_dashboard.run_server's loop never
    # did, and `archsearch dashboard` ignored a SIGINT on CI. No request arrives here.
    code = (f"import signal, threading; from archsearch import dashboard, signals\n"
            f"threading.Timer(1.0, signals._received.append, [signal.SIGINT]).start()\n"
            f"try: dashboard.serve('sqlite:///{study_dir}/studies/blobs-b3000.db', '127.0.0.1', {free_port()})\n"
            f"except KeyboardInterrupt: print('stopped')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "stopped", r.stderr
