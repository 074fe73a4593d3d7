"""Where studies live: storage URLs, opening a storage (heartbeats, WAL), listing and
loading studies, reading a study's front. No torch here: `pareto`, `export` and
`dashboard` start in well under a second where importing torch alone takes seconds.
"""
from __future__ import annotations

import atexit
import os
from pathlib import Path

import optuna
from .errors import ArchsearchError

# A trial silent for GRACE_S seconds belongs to a dead worker: it is failed and queued again.
# Tens of seconds, so that a user who restarts after a crash sees it happen; its heartbeat
# is written every GRACE_S / 3. ARCHSEARCH_GRACE_S changes it (tests use a few seconds).
GRACE_S = int(os.environ.get("ARCHSEARCH_GRACE_S", "30"))
HEARTBEAT_S = max(1, GRACE_S // 3)


class SearchError(ArchsearchError):
    """A run that cannot start as asked (bad storage, mismatched settings, ...)."""


# What a study's stored settings and trial attrs mean. A study made under another schema is
# refused (start a new one): this version cannot say what its trials trained.
SCHEMA = 2


def check_schema(study: optuna.Study) -> None:
    made = study.user_attrs.get("schema")
    if made != SCHEMA:
        by = study.user_attrs.get("archsearch_version", "an older version")
        raise SearchError(f"study {study.study_name!r} was made by archsearch {by} (schema {made}, this is "
                          f"{SCHEMA}); start a new study with --study NEW_NAME")


def default_storage(study: str) -> str:
    return f"sqlite:///studies/{study}.db"


def mask_url(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db"""
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def redact(text: str, url: str) -> str:
    """`text` (say, a driver's error message) with the URL's password replaced by ***."""
    from sqlalchemy.engine import make_url
    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite:/// URL, else None."""
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def open_storage(url: str, writer: bool = False):
    """An RDBStorage with heartbeats (dead workers' trials are failed and retried).

    writer=True (a search) switches SQLite to WAL, so that several workers and
    readers (dashboard, pareto, export) do not block each other; readers leave the
    file as it is."""
    path = sqlite_path(url)
    if path is not None:
        folder = path.parent if str(path.parent) else Path(".")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SearchError(f"cannot create {folder} for the study database ({e.strerror}); use --storage") from None
        if not os.access(folder, os.W_OK):
            raise SearchError(f"{folder} is not writable; choose another place with --storage sqlite:///PATH.db")
    try:
        # A busy timeout (seconds) lets concurrent readers/writers wait instead of failing.
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        from .optuna_internals import HeartbeatStorage, experimental_ok
        with experimental_ok():
            storage = HeartbeatStorage(
                url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
        if writer and path is not None:
            with storage.engine.connect() as c:
                c.exec_driver_sql("PRAGMA journal_mode=WAL")
        # Close the pooled connections before the interpreter goes: SQLite then folds its -wal file
        # back into the database, and a finished run leaves only the .db behind.
        atexit.register(storage.engine.dispose)
        return storage
    except ImportError as e:  # Optuna wraps the driver's ModuleNotFoundError
        missing = getattr(e.__cause__, "name", None) or "its driver"
        extra = "pip install 'archsearch[postgres]'" if url.startswith("postgres") else f"install {missing}"
        raise SearchError(f"the database driver for {mask_url(url).split(':')[0]} storage is not installed "
                          f"(no module {missing!r}); {extra}") from None
    except Exception as e:
        reason = redact(str(e).splitlines()[0][:160] if str(e) else type(e).__name__, url)
        raise SearchError(f"cannot open storage {mask_url(url)}: {reason}") from None


def study_names(storage) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))


def load_study(storage, name: str, sampler=None) -> optuna.Study:
    names = study_names(storage)
    if name not in names:
        raise SearchError(f"no study {name!r} in this storage; studies present: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


def front(study: optuna.Study) -> list[dict]:
    """The Pareto front of COMPLETE trials, smallest first."""
    rows = []
    for t in study.best_trials:
        a = t.user_attrs
        rows.append({"trial": t.number, "params": int(t.values[1]), "flops": a.get("flops"),
                     "int8_bytes": a.get("int8_bytes"), "peak_ram": a.get("peak_ram"),
                     "val_acc": t.values[0], "test_acc": a.get("test_acc"), "epochs": a.get("epochs_run"),
                     "preset": a.get("preset"), "arch": a.get("arch")})
    return sorted(rows, key=lambda r: r["params"])
