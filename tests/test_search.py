"""The search on real Optuna studies in temporary SQLite files, with real training."""
import hashlib
import time
from dataclasses import replace

import optuna
import pytest
from optuna.trial import TrialState

from archsearch import search, space, studies
from archsearch.data import load
from archsearch.search import Objective, Settings, open_study
from archsearch.studies import SearchError, open_storage

from conftest import write_blobs_npz


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    return write_blobs_npz(tmp_path_factory.mktemp("d") / "blobs.npz")


def make(tmp_path, blobs, budget=6000, starts=0, **kw):
    s = Settings(dataset=blobs, budget=budget, epochs=2, val_size=200, train_size=800, **kw)
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    study, created = open_study(storage, "t", s, starts=starts)
    return s, storage, study, Objective(s, load(blobs, val_size=200, train_size=800), "fp32")


def add_unbeatable(study, size: int, schedule: str = "cosine", **trial):
    """Four finished trials of `size` params, at 100% from epoch 1, that trained `schedule`:
    a larger trial ranked against them at a rung is dominated and in the bottom 2/3.
    `trial`: more of create_trial's arguments (params, distributions)."""
    for _ in range(4):
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, values=[100.0, size],
            user_attrs={"params": size, "curve": [100.0, 100.0], "train": {"schedule": schedule}}, **trial))


def test_study_shape_budget_and_trial_records(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, min_peers=3)
    search.run(study, obj, 8, None)
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert study.metric_names == ["val_accuracy", "params"]
    assert study.user_attrs["settings"]["budget"] == 6000
    trials = study.get_trials()
    assert search.finished_count(study) == 8 and len(trials) == 8
    assert trials[0].user_attrs["preset"] == "seed-4232" and trials[0].user_attrs["params"] == 4232
    for t in trials:
        a = t.user_attrs
        if "infeasible" in a:
            assert t.state == TrialState.PRUNED and t.constraints["params_over_budget"] > 0
            continue
        assert a["params"] <= 6000 and t.constraints["params_over_budget"] <= 0
        assert {"flops", "genome", "train", "arch", "curve", "epochs_run", "epoch_seconds", "device"} <= set(a)
        if t.state == TrialState.COMPLETE:
            assert len(a["curve"]) == 2 and t.values == [a["curve"][-1], a["params"]]
            assert 0 <= a["test_acc"] <= 100
        else:
            assert t.state == TrialState.PRUNED and a["pruned_at"] == 1 and len(a["curve"]) == 1
    assert any(t.state == TrialState.COMPLETE for t in trials)
    rows = studies.front(study)
    assert rows and all(r["params"] <= 6000 for r in rows)


def test_resume_reaches_exactly_n_in_total(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000, prune=False)
    search.run(study, obj, 2, None)
    study2, created = open_study(storage, "t", s)
    assert not created
    ran = search.run(study2, obj, 4, None)
    assert search.finished_count(study2) == 4 and ran == 2


def test_a_fresh_trial_steps_back_for_a_queued_retry_numbered_before_it(tmp_path, blobs):
    # The race behind a CI failure: a dead worker's trial is queued again (WAITING, a new number),
    # and another worker creates a fresh trial before anyone takes the retry. Both would run.
    s, storage, study, obj = make(tmp_path, blobs, budget=3000)
    add_unbeatable(study, 1000)                               # trials 0-3, finished
    study.enqueue_trial({"lr": 0.05}, skip_if_exists=False)   # trial 4: the retry, queued
    fresh = optuna.Trial(study, storage.create_new_trial(study._study_id))  # trial 5
    obj.quota = 5
    with pytest.raises(search.Surplus):
        obj.check_quota(fresh)
    retry = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))[0]
    assert storage.set_trial_state_values(retry._trial_id, TrialState.RUNNING)  # taken by a worker
    obj.check_quota(optuna.Trial(study, retry._trial_id))     # runs: 4 ahead of it, quota 5


def test_different_settings_are_refused_and_the_study_is_untouched(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000)
    before = hashlib.sha256((tmp_path / "s.db").read_bytes()).hexdigest()
    with pytest.raises(SearchError, match=r"epochs=2 \(you gave 5\).*--study"):
        open_study(storage, "t", Settings(dataset=blobs, budget=3000, epochs=5, val_size=200, train_size=800))
    assert hashlib.sha256((tmp_path / "s.db").read_bytes()).hexdigest() == before


def test_a_study_made_with_other_choices_is_refused_and_untouched(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000)
    # As a study made before a change to the space stored one of its trials: other batch sizes.
    old = optuna.distributions.CategoricalDistribution([64, 128])
    study.add_trial(optuna.trial.create_trial(params={"batch_size": 64}, distributions={"batch_size": old},
                                              values=[90.0, 1000]))
    before = hashlib.sha256((tmp_path / "s.db").read_bytes()).hexdigest()
    with pytest.raises(SearchError, match=r"another search space \(batch_size \(64, 128\) \(now \(.*--study NEW"):
        open_study(storage, "t", s)
    assert hashlib.sha256((tmp_path / "s.db").read_bytes()).hexdigest() == before
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]  # no trial was started and failed


def test_a_study_made_before_size_peers_resumes_with_size_peers_0(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000)
    old = {k: v for k, v in study.user_attrs["settings"].items() if k != "size_peers"}
    study.set_user_attr("settings", old)                 # as search v5 stored its settings
    with pytest.raises(SearchError, match=r"size_peers=0 \(you gave 12\)"):
        open_study(storage, "t", s)
    resumed, created = open_study(storage, "t", replace(s, size_peers=0))
    assert not created


def test_the_seed_sets_where_the_size_sweep_starts_and_older_studies_resume_without_a_shift(tmp_path, blobs):
    shifts = {seed: search.size_shift(Settings(dataset=blobs, budget=6000, seed=seed)) for seed in range(4)}
    assert len(set(shifts.values())) == 4 and all(0 < v < 1 for v in shifts.values())
    assert search.size_shift(Settings(dataset=blobs, budget=6000, seed=3, size_shift=False)) == 0.0
    s, storage, study, obj = make(tmp_path, blobs, budget=6000, seed=3, prune=False)
    search.run(study, obj, 3, None)  # trial 0 is the seed-4232 preset, unsized
    fracs = [t.params["size_frac"] for t in study.get_trials()[1:]]
    assert fracs == [space.sweep(n, *space.SIZE_FRAC, shifts[3]) for n in (1, 2)]
    assert fracs != [space.sweep(n, *space.SIZE_FRAC) for n in (1, 2)]  # not the unshifted sizes
    # As a study made before this setting stored its settings: it resumes only without a shift.
    study.set_user_attr("settings", {k: v for k, v in study.user_attrs["settings"].items() if k != "size_shift"})
    with pytest.raises(SearchError, match=r"size_shift=False \(you gave True\)"):
        open_study(storage, "t", s)
    old = replace(s, size_shift=False)
    resumed, created = open_study(storage, "t", old)
    search.run(resumed, Objective(old, obj.data, "fp32"), 4, None)
    assert resumed.get_trials()[3].params["size_frac"] == space.sweep(3, *space.SIZE_FRAC)


def test_presets_that_fit_are_enqueued_smallest_first(tmp_path, blobs):
    _, _, study, _ = make(tmp_path, blobs, budget=12000)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["preset"] for t in waiting] == ["seed-4232", "seed-7932", "seed-9798", "seed-10970",
                                                         "seed-11588"]


def test_no_more_trials_are_queued_than_the_run_takes(tmp_path, blobs):
    s = Settings(dataset=blobs, budget=12000, epochs=2, val_size=200, train_size=800)
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    for name, starts, trials, queued in [("a", 3, 4, ["vgg"] * 3 + ["seed-4232"]), ("b", 6, 2, ["vgg"] * 2),
                                         ("c", 0, 2, ["seed-4232", "seed-7932"])]:
        study, _ = open_study(storage, name, s, presets=True, starts=starts, trials=trials)
        waiting = study.get_trials(states=(TrialState.WAITING,))
        assert [t.user_attrs.get("start", t.user_attrs.get("preset")) for t in waiting] == queued, name


def test_warm_starts_run_first_with_the_start_layout_at_swept_sizes(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=12000, starts=3, prune=False)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs.get("start", t.user_attrs.get("preset")) for t in waiting][:4] == ["vgg"] * 3 + ["seed-4232"]
    search.run(study, obj, 2, None)
    first = study.get_trials(states=(TrialState.COMPLETE,))
    assert [t.number for t in first] == [0, 1]
    for t in first:
        assert {k: t.params[k] for k in space.START} == space.START
        trained = t.user_attrs["train"]  # the recipe it really trained, augmentation included (change 33)
        assert (trained["rotation"], trained["translate"], trained["scale"]) == (7.0, 0.05, 0.1)
        assert t.params["size_frac"] == space.sweep(t.number, *space.SIZE_FRAC, search.size_shift(s))  # like any trial
        convs = [l for l in t.user_attrs["genome"]["layers"] if l["type"] == "conv"]
        assert [(l["k"], l["pad"], l["drop"]) for l in convs] == [(3, 1, 0.0)] * 7 + [(1, 0, 0.0)]
    assert first[0].user_attrs["params"] != first[1].user_attrs["params"]


@pytest.mark.parametrize("prune_starts", [False, True])
def test_warm_starts_run_all_epochs_unless_prune_starts(tmp_path, blobs, prune_starts):
    s, storage, study, obj = make(tmp_path, blobs, budget=6000, starts=2, prune_starts=prune_starts)
    # Smaller than either start, as accurate at epoch 1 as anything can be, and of the starts' schedule.
    add_unbeatable(study, 100, schedule=space.START_RECIPES[s.start_recipe].schedule)
    search.run(study, obj, 6, None)
    starts = [t for t in study.get_trials() if "start" in t.user_attrs]
    assert len(starts) == 2
    if prune_starts:  # as before change 20, and as studies made before it resume
        assert all(t.state == TrialState.PRUNED and t.user_attrs["pruned_at"] == 1 for t in starts)
    else:
        assert all(t.state == TrialState.COMPLETE and len(t.user_attrs["curve"]) == 2 for t in starts)


@pytest.mark.parametrize("recipe", ["onecycle32", "space"])
def test_warm_starts_and_their_rescaled_copies_train_the_start_recipe(tmp_path, blobs, recipe):
    s, storage, study, obj = make(tmp_path, blobs, budget=6000, starts=2, prune=False, start_recipe=recipe)
    study.sampler = space.SizeSweep(optuna.samplers.RandomSampler(seed=0), every=2, start=3)
    search.run(study, obj, 6, None)  # 2 starts, the seed preset, then rescaled, sampled, rescaled
    trials = study.get_trials()
    starts = [t for t in trials if "start" in t.user_attrs]
    copies = [t for t in trials if "rescaled_from" in t.user_attrs]
    assert len(starts) == 2 and len(copies) == 2 and all(t.state == TrialState.COMPLETE for t in starts + copies)
    for t in starts:  # the sampler learns START's in-space values either way
        assert {k: t.params[k] for k in space.START} == space.START
        if recipe == "space":
            assert {k: t.user_attrs["train"][k] for k in ("schedule", "batch_size", "lr", "scale")} == \
                {"schedule": "cosine", "batch_size": 64, "lr": 0.05, "scale": 0.1}
            assert "recipe" not in t.user_attrs
        else:  # off the space: the point of it
            assert t.user_attrs["recipe"] == recipe and t.user_attrs["train"] == {
                **space.START_RECIPES[recipe].to_dict(), "epochs": 2, "schedule": "onecycle", "batch_size": 32}
    # A copy trains its template's recipe, whichever it was; the first copy's template is a start.
    assert "start" in trials[copies[0].user_attrs["rescaled_from"]].user_attrs
    for t in copies:
        template = trials[t.user_attrs["rescaled_from"]]
        assert t.user_attrs["train"] == template.user_attrs["train"], t.number
        assert t.user_attrs.get("recipe") == template.user_attrs.get("recipe")
    others = [t for t in trials if t not in starts + copies]
    assert others and all("recipe" not in t.user_attrs for t in others)


def test_a_study_made_before_start_recipe_resumes_with_the_space_recipe(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000)
    study.set_user_attr("settings", {k: v for k, v in study.user_attrs["settings"].items() if k != "start_recipe"})
    with pytest.raises(SearchError, match=r"start_recipe='space' \(you gave 'onecycle32'\)"):
        open_study(storage, "t", s)
    assert not open_study(storage, "t", replace(s, start_recipe="space"))[1]


@pytest.mark.parametrize("prune_rescaled", [False, True])
def test_rescaled_trials_run_all_epochs_unless_prune_rescaled(tmp_path, blobs, prune_rescaled):
    s, storage, study, obj = make(tmp_path, blobs, budget=6000, prune_rescaled=prune_rescaled)
    # Four finished trials that dominate anything at the rung, as above; they are the front,
    # so every trial rescales one of them (every=1 from trial 0).
    frac = optuna.distributions.FloatDistribution(*space.SIZE_FRAC, log=True)
    # 50 params: smaller than any model, so no trial is on the rung's front.
    add_unbeatable(study, 50, params={"size_frac": 0.1}, distributions={"size_frac": frac})
    study.sampler = space.SizeSweep(optuna.samplers.RandomSampler(seed=0), every=1, start=0)
    search.run(study, obj, 8, None)  # the seed preset queued first, the 4 above, 3 sampled
    ran = [t for t in study.get_trials() if "genome" in t.user_attrs and "curve" in t.user_attrs
           and "preset" not in t.user_attrs]
    assert len(ran) >= 2 and all("rescaled_from" in t.user_attrs for t in ran)
    if prune_rescaled:  # as before change 22, and as studies made before it resume
        assert all(t.state == TrialState.PRUNED and t.user_attrs["pruned_at"] == 1 for t in ran)
    else:
        assert all(t.state == TrialState.COMPLETE and len(t.user_attrs["curve"]) == 2 for t in ran)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_trial_is_ranked_at_a_rung_only_against_its_own_schedule(tmp_path, blobs, schedule):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000)
    add_unbeatable(study, 50, schedule)  # finished trials of `schedule` that dominate anything at the rung
    search.run(study, obj, 5, None)
    t = study.get_trials()[-1]
    assert t.user_attrs["train"]["schedule"] == "cosine"  # the space's one schedule
    if schedule == "cosine":
        assert t.state == TrialState.PRUNED and t.user_attrs["pruned_at"] == 1
    else:  # no cosine peers: too few to compare with (min_peers), so it runs on
        assert t.state == TrialState.COMPLETE and len(t.user_attrs["curve"]) == 2


def test_a_study_made_before_prune_starts_resumes_pruning_its_starts(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000)
    study.set_user_attr("settings", {k: v for k, v in study.user_attrs["settings"].items() if k != "prune_starts"})
    with pytest.raises(SearchError, match=r"prune_starts=True \(you gave False\)"):
        open_study(storage, "t", s)
    assert not open_study(storage, "t", replace(s, prune_starts=True))[1]


def test_a_study_with_a_setting_this_version_lacks_is_refused(tmp_path, blobs):
    # As a study made with a change since reverted would be (e.g. v23's val_size, had it been new).
    s, storage, study, obj = make(tmp_path, blobs, budget=3000)
    study.set_user_attr("settings", {**study.user_attrs["settings"], "warm_restarts": True})
    with pytest.raises(SearchError, match=r"created with warm_restarts=True, a setting this version does not"):
        open_study(storage, "t", s)
    assert Settings.of(study) == s  # export and rescore still read its trials


def test_password_is_masked():
    assert studies.mask_url("postgresql://me:secret@db:5432/x") == "postgresql://me:***@db:5432/x"


def test_a_diverging_trial_fails_with_its_reason_and_the_search_goes_on(tmp_path, blobs):
    s, storage, study, obj = make(tmp_path, blobs, budget=3000, prune=False)
    # An absurd learning rate (far outside the space's range: Optuna warns and uses it).
    study.enqueue_trial({"lr": 1e9, "optimizer": "sgd", "size_frac": 0.5})
    lines = []
    search.run(study, obj, 3, None, on_trial=lambda t: lines.append(search.trial_line(t)))
    first = study.trials[0]
    assert first.state == TrialState.FAIL and "loss became" in first.user_attrs["fail_reason"]
    assert "FAIL: loss became" in lines[0]
    assert search.finished_count(study) == 3 and study.trials[-1].state != TrialState.FAIL


def test_a_trial_that_never_beat_is_failed_and_retried_after_two_grace_periods(tmp_path):
    # A worker killed after creating its trial but before the first heartbeat leaves a
    # RUNNING trial with no heartbeat; Optuna alone never fails it and a rerun waited forever.
    storage = studies.HeartbeatStorage(
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
