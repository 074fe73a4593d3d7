"""A Ctrl-C that Python swallows (raised inside a __del__ or weakref callback) is raised
again at the next raise_if_stopped(), and its swallowed copy prints nothing."""
import subprocess
import sys

SCRIPT = r"""
import os, signal, time
from archsearch.signals import raise_if_stopped, stop_on_signals
stop_on_signals()

class Dies:
    def __del__(self):  # the interrupt lands here, where Python can only print and ignore it
        os.kill(os.getpid(), signal.SIG)
        time.sleep(0.5)

Dies()
print("went on after the swallowed interrupt", flush=True)
try:
    raise_if_stopped()
except KeyboardInterrupt as e:
    print("raised again:", type(e).__name__, flush=True)
"""


def run(sig: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.replace("signal.SIG)", f"signal.{sig})")],
                          capture_output=True, text=True, timeout=60)


def test_a_swallowed_ctrl_c_is_raised_again_and_not_printed():
    r = run("SIGINT")
    assert r.stdout.splitlines() == ["went on after the swallowed interrupt", "raised again: KeyboardInterrupt"]
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr


def test_a_swallowed_sigterm_comes_back_as_terminated():
    assert run("SIGTERM").stdout.splitlines()[-1] == "raised again: Terminated"


CURSOR = r"""
import os, signal
import sqlalchemy
from archsearch.signals import stop_on_signals
stop_on_signals()
log = sqlalchemy.create_engine("sqlite://").pool.logger  # where SQLAlchemy logs "Error closing cursor"

def cursor_close_fails():
    try:
        raise RuntimeError("cursor interrupted")
    except RuntimeError:
        log.error("Error closing cursor", exc_info=True)

cursor_close_fails()
try:
    os.kill(os.getpid(), signal.SIGTERM)
except KeyboardInterrupt:
    cursor_close_fails()
"""


def test_sqlalchemy_cursor_errors_print_until_a_signal_and_not_after():
    r = subprocess.run([sys.executable, "-c", CURSOR], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("Error closing cursor") == 1 and r.stderr.count("Traceback") == 1, r.stderr
