"""Screenshots of `archsearch dashboard` in headless Debian Chromium (Selenium).

    python scripts/screenshot.py --study first --out docs/dashboard.png

Starts the dashboard on a free port, opens the study page, waits until
optuna-dashboard's Pareto view and archsearch's three figures have drawn, saves
archsearch's front figure (its accuracy axis zoomed on the complete trials; --page: the
whole page), stops the dashboard. tests/test_dashboard.py uses `chromium()`.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import time

# Root in a container needs --no-sandbox; the rest keeps Chromium off the (closed) network.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic")


def chromium(width: int = 1400, height: int = 1000):
    """A Selenium driver for Debian's chromium; RuntimeError saying what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise RuntimeError("selenium is not installed (pip install -e '.[test]')") from None
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        raise RuntimeError("Debian's chromium and chromium-driver are not installed (apt-get install chromium "
                           "chromium-driver)")
    o = webdriver.ChromeOptions()
    o.binary_location = binary
    for a in (*FLAGS, f"--window-size={width},{height}"):
        o.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=o)


def plot_titles(drv) -> list[str]:
    return drv.execute_script("return Array.from(document.querySelectorAll('.gtitle')).map(e => e.textContent)")


def wait_for_figures(drv, n: int = 3, seconds: float = 60) -> list[str]:
    """The SPA fetches the study, then plotly draws; poll until n titled figures exist."""
    titles, deadline = [], time.time() + seconds
    while time.time() < deadline and len(titles) < n:
        time.sleep(1)
        titles = plot_titles(drv)
    return titles


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", required=True)
    ap.add_argument("--storage")
    ap.add_argument("--out", default="docs/dashboard.png")
    ap.add_argument("--height", type=int, default=2900, help="window height in pixels: the page is long")
    ap.add_argument("--page", action="store_true", help="the whole study page, not only the front figure")
    a = ap.parse_args()
    port = free_port()
    cmd = [sys.executable, "-m", "archsearch", "dashboard", "--study", a.study, "--port", str(port)]
    p = subprocess.Popen(cmd + (["--storage", a.storage] if a.storage else []), stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    try:
        print(p.stdout.readline().strip())
        drv = chromium(1400, a.height)
        drv.get(f"http://127.0.0.1:{port}/dashboard/studies/1")
        print("figures:", wait_for_figures(drv))
        time.sleep(2)
        if a.page:
            drv.save_screenshot(a.out)
        else:  # the plot whose title names the front, as drawn
            el = drv.execute_script("""const t = Array.from(document.querySelectorAll('.gtitle'))
                .find(e => e.textContent.startsWith('Validation accuracy vs parameters'));
                const p = t.closest('.js-plotly-plot'); p.scrollIntoView(); return p;""")
            time.sleep(1)
            el.screenshot(a.out)
        drv.quit()
        print("wrote", a.out)
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(30)


if __name__ == "__main__":
    main()
