"""Ctrl-C and SIGTERM as exceptions: raised once, and raised again if Python swallowed them.

A signal handler's exception raised while Python runs a weakref callback or a __del__
(an import's module-lock cleanup, say, in a worker still starting up) is not raised:
Python prints "Exception ignored in ..." and goes on. A worker interrupted that way kept
training, and the run ignored its Ctrl-C (CI: two test_workers runs timed out or printed
that traceback). So the signal is also recorded, raise_if_stopped() raises it again at
the next safe point (each epoch's end, the parent's poll), and the swallowed copy is not
printed.

An interrupt that lands inside a database read also makes SQLAlchemy log "Error closing
cursor" with a traceback (it closes the interrupted cursor and swallows the failure): after
a signal those lines are not printed, as the run's own one-line message says what happened
(CI: a SIGTERM test printed that traceback while the machine was loaded).
"""
from __future__ import annotations

import logging
import signal
import sys


class Terminated(KeyboardInterrupt):
    """SIGTERM. A KeyboardInterrupt so that Optuna marks the running trial FAIL, as for Ctrl-C."""


_received: list[int] = []  # signals this process got since stop_on_signals()


def _interrupt(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _unraisable(u) -> None:
    if not isinstance(u.exc_value, KeyboardInterrupt):  # ours: raised again by raise_if_stopped
        sys.__unraisablehook__(u)


class _UntilStopped(logging.Handler):
    """SQLAlchemy's warnings and errors on stderr, as logging's last resort prints them, until a
    signal arrives; after it they are the interrupt's side effects."""
    def emit(self, record: logging.LogRecord) -> None:
        if not _received:
            sys.stderr.write(self.format(record) + "\n")


def stop_on_signals() -> None:
    """SIGINT -> KeyboardInterrupt, SIGTERM -> Terminated, each raised once: a second signal
    (Ctrl-C reaches a worker directly *and* forwarded by the parent) must not interrupt
    the cleanup that marks the running trial FAIL. Installed explicitly because a process
    started by a non-interactive shell inherits SIGINT as ignored."""
    def handler(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _received.append(signum)
        raise _interrupt(signum)
    _received.clear()
    sys.unraisablehook = _unraisable
    sqlalchemy_log = logging.getLogger("sqlalchemy")
    if not any(isinstance(h, _UntilStopped) for h in sqlalchemy_log.handlers):
        sqlalchemy_log.addHandler(_UntilStopped(logging.WARNING))  # last resort's level
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def raise_if_stopped() -> None:
    """Raise the interrupt of a signal already received (a no-op until one arrives)."""
    if _received:
        raise _interrupt(_received[0])
