"""The search engine on real Optuna studies in temporary SQLite files, with real training."""
import hashlib
import time
from dataclasses import asdict

import optuna
import pytest
from optuna.trial import TrialState

from archsearch import engine, space, studies
from archsearch.data import load
from archsearch.engine import Objective, Settings, open_study
from archsearch.optuna_internals import HeartbeatStorage
from archsearch.studies import SearchError, open_storage

from conftest import write_blobs_npz


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    return write_blobs_npz(tmp_path_factory.mktemp("d") / "blobs.npz")


def make(tmp_path, blobs, budget=6000, starts=0, **kw):
    given = dict(dataset=blobs, budget=budget, epochs=2, val_size=200, train_size=800, starts=starts, **kw)
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    study, created = open_study(storage, "t", given)
    s = Settings.of(study)
    return s, storage, study, Objective(s, load(blobs, val_size=200, train_size=800), "fp32")


def add_unbeatable(study, size: int, schedule: str = "cosine", **attrs):
    """Four finished trials of `size` params, at 100% from epoch 1, that trained `schedule`:
    a larger trial ranked against them at a rung is dominated and in the bottom 2/3."""
    for _ in range(4):
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, values=[100.0, size],
            user_attrs={"params": size, "curve": [100.0, 100.0], "train": {"schedule": schedule}, **attrs}))


def digest(tmp_path) -> str:
    return hashlib.sha256((tmp_path / "s.db").read_bytes()).hexdigest()


def test_study_shape_budget_and_trial_records(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, min_peers=3, presets=True)
    engine.run(study, obj, 8, None)
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert study.metric_names == ["val_accuracy", "params"]
    assert study.user_attrs["settings"] == asdict(s) and study.user_attrs["schema"] == engine.SCHEMA
    trials = study.get_trials()
    assert engine.finished_count(study) == 8 and len(trials) == 8
    assert trials[0].user_attrs["preset"] == "seed-4232" and trials[0].user_attrs["params"] == 4232
    assert trials[0].user_attrs["kind"] == "preset" and not trials[0].params
    for t in trials:
        a = t.user_attrs
        if "infeasible" in a:
            assert t.state == TrialState.PRUNED and t.constraints["params_over_budget"] > 0
            continue
        assert a["params"] <= 6000 and t.constraints["params_over_budget"] <= 0
        assert {"kind", "flops", "macs", "int8_bytes", "peak_ram", "genome", "train", "arch", "curve", "epochs_run",
                "epoch_seconds", "device"} <= set(a)
        if a["kind"] == "sampled":  # its recorded parameters are what it trained
            assert a["train"]["lr"] == t.params["lr"] and a["train"]["batch_size"] == t.params["batch_size"]
            assert a["size_frac"] == t.params["size_frac"]
        if t.state == TrialState.COMPLETE:
            assert len(a["curve"]) == 2 and t.values == [a["curve"][-1], a["params"]]
            assert 0 <= a["test_acc"] <= 100
        else:
            assert t.state == TrialState.PRUNED and a["pruned_at"] == 1 and len(a["curve"]) == 1
    assert any(t.state == TrialState.COMPLETE for t in trials)
    rows = studies.front(study)
    assert rows and all(r["params"] <= 6000 for r in rows)


def test_resume_reads_the_settings_and_reaches_exactly_n_in_total(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000, prune=False)
    engine.run(study, obj, 2, None)
    study2, created = open_study(storage, "t", {})  # nothing given: the stored settings
    assert not created and Settings.of(study2) == s
    ran = engine.run(study2, obj, 4, None)
    assert engine.finished_count(study2) == 4 and ran == 2


def test_a_fresh_trial_steps_back_for_a_queued_retry_numbered_before_it(tmp_path, blobs):
    # The race behind a CI failure: a dead worker's trial is queued again (WAITING, a new number),
    # and another worker creates a fresh trial before anyone takes the retry. Both would run.
    s, storage, study, obj = make(tmp_path, blobs, budget=3000)
    add_unbeatable(study, 1000)                               # trials 0-3, finished
    study.enqueue_trial({"lr": 0.05}, skip_if_exists=False)   # trial 4: the retry, queued
    fresh = optuna.Trial(study, storage.create_new_trial(study._study_id))  # trial 5
    obj.quota = 5
    with pytest.raises(engine.Surplus):
        obj.check_quota(fresh)
    retry = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))[0]
    assert storage.set_trial_state_values(retry._trial_id, TrialState.RUNNING)  # taken by a worker
    obj.check_quota(optuna.Trial(study, retry._trial_id))     # runs: 4 ahead of it, quota 5


def test_a_contradicting_setting_is_refused_naming_both_values_and_the_study_is_untouched(tmp_path, blobs):
    make(tmp_path, blobs, budget=3000)
    before = digest(tmp_path)
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    with pytest.raises(SearchError, match=r"you gave epochs 5 \(the study has 2\).*--study NEW_NAME"):
        open_study(storage, "t", {"epochs": 5, "budget": 3000})
    assert digest(tmp_path) == before
    assert not open_study(storage, "t", {"epochs": 2, "budget": 3000})[1]  # agreeing values are fine


@pytest.mark.parametrize("schema", [None, engine.SCHEMA - 1])
def test_a_study_of_another_schema_is_refused_in_one_line_and_untouched(tmp_path, blobs, schema):
    _, storage, study, _ = make(tmp_path, blobs, budget=3000)
    study.set_user_attr("archsearch_version", "0.1.0")
    study.set_user_attr("schema", schema)  # None: as a study made before schemas were stamped
    before = digest(tmp_path)
    with pytest.raises(SearchError, match=r"^study 't' was made by archsearch .* start a new study") as e:
        open_study(storage, "t", {})
    assert "\n" not in str(e.value) and digest(tmp_path) == before
    with pytest.raises(SearchError):
        Settings.of(study)  # export and pareto refuse it too


def test_a_new_study_needs_a_budget_and_sane_settings(tmp_path, blobs):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    with pytest.raises(SearchError, match="no study 'x' yet; give --budget"):
        open_study(storage, "x", {"dataset": blobs})
    with pytest.raises(SearchError, match="eta must be a positive integer"):
        open_study(storage, "x", {"dataset": blobs, "budget": 3000, "eta": 0})
    with pytest.raises(SearchError, match="unknown sampler 'cmaes'"):
        open_study(storage, "x", {"dataset": blobs, "budget": 3000, "sampler": "cmaes"})
    assert engine.study_names(storage) == []


def test_the_seed_sets_where_the_size_sweep_starts(tmp_path, blobs):
    shifts = {seed: engine.size_shift(Settings(dataset=blobs, budget=6000, seed=seed)) for seed in range(4)}
    assert len(set(shifts.values())) == 4 and all(0 < v < 1 for v in shifts.values())
    s, storage, study, obj = make(tmp_path, blobs, budget=6000, seed=3, prune=False)
    engine.run(study, obj, 2, None)
    fracs = [t.params["size_frac"] for t in study.get_trials()]
    assert fracs == [space.sweep(n, *space.SIZE_FRAC, shifts[3]) for n in (0, 1)]


def test_presets_that_fit_are_enqueued_smallest_first(tmp_path, blobs):
    _, _, study, _ = make(tmp_path, blobs, budget=12000, presets=True)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["preset"] for t in waiting] == ["seed-4232", "seed-7932", "seed-9798", "seed-10970",
                                                         "seed-11588"]


def test_no_more_trials_are_queued_than_the_run_takes(tmp_path, blobs):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    for name, starts, trials, queued in [("a", 3, 4, ["start"] * 3 + ["seed-4232"]), ("b", 6, 2, ["start"] * 2),
                                         ("c", 0, 2, ["seed-4232", "seed-7932"])]:
        given = dict(dataset=blobs, budget=12000, epochs=2, val_size=200, train_size=800, presets=True, starts=starts)
        study, _ = open_study(storage, name, given, trials=trials)
        waiting = study.get_trials(states=(TrialState.WAITING,))
        assert [t.user_attrs.get("preset", t.user_attrs["kind"]) for t in waiting] == queued, name


def test_warm_starts_record_exactly_what_they_train(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=12000, starts=3, prune=False)
    engine.run(study, obj, 2, None)
    first = study.get_trials(states=(TrialState.COMPLETE,))
    assert [t.number for t in first] == [0, 1]
    for t in first:
        a = t.user_attrs
        assert a["kind"] == "start" and t.params == {} and t.distributions == {}  # nothing the space sampled
        assert a["train"] == {**space.START_RECIPE.to_dict(), "epochs": 2}      # the recipe it trained
        assert a["train"]["schedule"] == "onecycle" and a["train"]["batch_size"] == 32
        assert a["size_frac"] == space.sweep(t.number, *space.SIZE_FRAC, engine.size_shift(s))  # like any trial
        convs = [l for l in a["genome"]["layers"] if l["type"] == "conv"]
        assert [(l["k"], l["pad"], l["drop"]) for l in convs] == [(3, 1, 0.0)] * 7 + [(1, 0, 0.0)]
    assert first[0].user_attrs["params"] != first[1].user_attrs["params"]


def test_warm_starts_and_rescaled_copies_run_all_epochs_and_copies_train_their_template(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=6000, starts=2, rescale_every=2)
    # Smaller than any model, as accurate at epoch 1 as anything can be, of both schedules: every
    # sampled trial is pruned at epoch 1 against them.
    add_unbeatable(study, 50, "onecycle")
    add_unbeatable(study, 50, "cosine")
    engine.run(study, obj, 22, None)  # 8 above, the 2 starts (numbers 0, 1), trials 10-21: copies from 20 on
    trials = study.get_trials()
    starts = [t for t in trials if t.user_attrs.get("kind") == "start"]
    copies = [t for t in trials if t.user_attrs.get("kind") == "rescaled"]
    assert len(starts) == 2 and copies
    for t in starts + copies:
        assert t.state == TrialState.COMPLETE and len(t.user_attrs["curve"]) == 2 and t.params == {}
    for t in copies:
        template = trials[t.user_attrs["rescaled_from"]]
        assert template.state == TrialState.COMPLETE and t.number >= 20 and t.number % 2 == 1
        assert t.user_attrs["train"] == template.user_attrs["train"], t.number
        kinds = lambda g: [(l["type"], l.get("k"), l.get("pad")) for l in g["layers"]]
        assert kinds(t.user_attrs["genome"]) == kinds(template.user_attrs["genome"])
    sampled = [t for t in trials if t.user_attrs.get("kind") == "sampled"]
    assert sampled and all(t.state == TrialState.PRUNED for t in sampled if "infeasible" not in t.user_attrs)


def test_tpe_models_the_sampled_trials_jointly_beside_trials_without_parameters(tmp_path, blobs):
    # Optuna intersects the parameters of every finished trial; a start (no parameters) would
    # leave nothing for multivariate TPE to model.
    s, storage, study, obj = make(tmp_path, blobs, budget=3000, starts=1, prune=False)
    engine.run(study, obj, 3, None)
    space_now = study.sampler.infer_relative_search_space(study, study.trials[-1])
    assert {"lr", "stages", "batch_size"} <= set(space_now) and "size_frac" not in space_now


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_trial_is_ranked_at_a_rung_only_against_its_own_schedule(tmp_path, blobs, schedule):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000)
    add_unbeatable(study, 50, schedule)  # finished trials of `schedule` that dominate anything at the rung
    engine.run(study, obj, 5, None)
    t = study.get_trials()[-1]
    assert t.user_attrs["train"]["schedule"] == "cosine"  # the space's one schedule
    if schedule == "cosine":
        assert t.state == TrialState.PRUNED and t.user_attrs["pruned_at"] == 1
    else:  # no cosine peers: too few to compare with (min_peers), so it runs on
        assert t.state == TrialState.COMPLETE and len(t.user_attrs["curve"]) == 2


def test_callbacks_hear_every_finished_trial_and_each_change_of_the_front(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000, prune=False)
    heard, fronts = [], []
    engine.run(study, obj, 3, None, on_trial=lambda t: heard.append(t.number),
               on_front_change=lambda st: fronts.append([t.number for t in st.best_trials]))
    assert heard == [0, 1, 2] and fronts and fronts[0] == [0]
    joined = [t.number for t in study.trials if engine.on_front(t, study)]
    assert len(fronts) >= len(joined) >= 1


def test_password_is_masked():
    assert studies.mask_url("postgresql://me:secret@db:5432/x") == "postgresql://me:***@db:5432/x"


def test_a_diverging_trial_fails_with_its_reason_and_the_search_goes_on(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000, prune=False)
    # An absurd learning rate (far outside the space's range: Optuna warns and uses it).
    study.enqueue_trial({"lr": 1e9, "optimizer": "sgd", "size_frac": 0.5})
    lines = []
    engine.run(study, obj, 3, None, on_trial=lambda t: lines.append(engine.trial_line(t)))
    first = study.trials[0]
    assert first.state == TrialState.FAIL and "loss became" in first.user_attrs["fail_reason"]
    assert "FAIL: loss became" in lines[0]
    assert engine.finished_count(study) == 3 and study.trials[-1].state != TrialState.FAIL


def test_a_trial_that_never_beat_is_failed_and_retried_after_two_grace_periods(tmp_path):
    # A worker killed after creating its trial but before the first heartbeat leaves a
    # RUNNING trial with no heartbeat; Optuna alone never fails it and a rerun waited forever.
    storage = HeartbeatStorage(
        f"sqlite:///{tmp_path}/h.db", heartbeat_interval=1, grace_period=1,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    dead = study.ask()  # RUNNING, and nobody will ever beat for it
    optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state == TrialState.RUNNING  # younger than 2 grace periods: maybe alive
    time.sleep(2.2)
    fresh = study.ask()  # silent too, but just started
    optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state for t in study.trials}
    assert states[dead.number] == TrialState.FAIL and states[fresh.number] == TrialState.RUNNING
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING


def test_status_counts_trials_by_state_and_reads_the_front_at_four_sizes(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=4000)
    add_unbeatable(study, 300)  # 4 COMPLETE trials at 100% with 300 params
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={"infeasible": "too big"}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={"pruned_at": 1}))
    line = engine.status(study)
    assert line.startswith("4 complete, 1 pruned, 1 infeasible or failed | best <= 0.2k: -, 1.0k: 100.00%")
    assert "4.0k: 100.00%" in line and "hypervolume 333,000" in line  # (100 - 10) x (4000 - 300)
