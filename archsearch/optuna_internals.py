"""Every use of Optuna's private API, in one place (pyproject pins Optuna to the minor
version the tests run on, because these can change without notice)."""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from datetime import datetime, timedelta

import optuna
from optuna.storages._rdb import models  # Optuna's own tables
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import TrialState


def storage_of(study: optuna.Study):
    """The storage object a study reads and writes (optuna-dashboard serves it)."""
    return study._storage


@contextmanager
def experimental_ok():
    """Use Optuna features it marks experimental (heartbeats, metric names) without its warning
    on every run: we pin the Optuna version they are tested on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def storage_url(study: optuna.Study) -> str:
    """The URL of a study's RDB storage (Optuna wraps it in a cache)."""
    st = study._storage
    return getattr(st, "_backend", st).url


class HeartbeatStorage(optuna.storages.RDBStorage):
    """RDBStorage with two fixes that several workers on one study need.

    Stale trials include the *silent* ones: RUNNING, no heartbeat ever, started more than
    2 grace periods ago. Optuna skips a trial that never wrote a heartbeat, but a worker
    killed while the sampler picks the parameters (before its first beat) leaves exactly
    that, and a rerun waited for it forever (tests/test_workers.py kills a run that way).
    """

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        cutoff = datetime.now() - timedelta(seconds=2 * self.grace_period)  # datetime_start: local, naive
        T = models.TrialModel
        with _create_scoped_session(self.scoped_session) as session:  # one query, no per-trial loads
            never_beat = session.query(T).filter(T.study_id == study_id, T.state == TrialState.RUNNING,
                                                 ~T.heartbeats.any()).all()
            # datetime_start is a property (local time), not a column: compared here, on the few rows left
            silent = [t.trial_id for t in never_beat if t.datetime_start is not None and t.datetime_start < cutoff]
        return super()._get_stale_trial_ids(study_id) + silent  # disjoint: Optuna's stale ones have a heartbeat

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        """Optuna's, except WAITING -> RUNNING (a worker taking a queued trial) is one
        conditional UPDATE, so that exactly one worker gets each queued trial.

        Optuna reads the state, then writes it; on SQLite the read takes no lock, so two
        workers both saw WAITING and both ran the trial, and the second to finish died with
        "Cannot tell a COMPLETE trial". 4 processes popping 60 queued trials took 99-108 of
        them; tests/test_workers.py checks it.
        """
        if state != TrialState.RUNNING or values is not None:
            return super().set_trial_state_values(trial_id, state, values)
        T = models.TrialModel
        with _create_scoped_session(self.scoped_session) as session:
            taken = session.query(T).filter(T.trial_id == trial_id, T.state == TrialState.WAITING).update(
                {T.state: TrialState.RUNNING}, synchronize_session=False)
            if taken:
                session.get(T, trial_id).datetime_start = datetime.now()  # local, naive: Optuna's convention
        return bool(taken)
