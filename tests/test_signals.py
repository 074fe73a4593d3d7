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
