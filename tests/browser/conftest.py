"""Fixtures of the browser tier: a real interactive session and a headless Chromium to drive it.

The session is the smoke tier's: the chart rendered for the queue GOOGLE_DASK in interactive
mode, its prepare hook, scheduler and JupyterLab run as local processes from `.venv-smoke`, the
password coming from the per-job Secret's file exactly as in a cluster. The browser is Debian's
`chromium` driven through Debian's `chromedriver` (both installed by
`scripts/bootstrap.sh --browser`); Selenium Manager is never asked, so nothing is downloaded.

Like the smoke tier, this tier fails (never skips) when its environment is missing: CI must
prove it ran.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT
from tests.smoke.session import InteractiveSession, interactive_session

if TYPE_CHECKING:  # imported lazily below: a .venv without selenium must still collect other tiers
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path(os.environ.get("DPS_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("DPS_CHROMEDRIVER", "/usr/bin/chromedriver"))
OUTPUT = ROOT / ".test-output" / "browser"
DOC_IMAGES = ROOT / "docs" / "images"
# A small window keeps the committed screenshots small and still shows the whole login form.
WINDOW = (1100, 700)


# The session the tests drive: the smoke tier's interactive release, with one worker.
Session = InteractiveSession


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """The prepare hook, then JupyterLab, the scheduler and a worker of an interactive release, for real."""
    with interactive_session(tmp_path_factory, workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium through Debian's chromedriver, with a fresh profile (no cookies).

    The tests ask for it before the session, so a missing browser fails before JupyterLab starts.
    """
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: run scripts/bootstrap.sh --browser "
            "(apt-get install chromium chromium-driver, as root)"
        )
    try:
        from selenium import webdriver
    except ImportError:
        pytest.fail("selenium is not installed in .venv: run scripts/bootstrap.sh --browser")
    # Selenium logs every WebDriver command body at DEBUG, including the keys typed into the
    # password field: keep those records out of pytest's captured logs whatever --log-level says.
    logging.getLogger("selenium").setLevel(logging.WARNING)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tier runs as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    # An explicit driver path: Selenium Manager (which would download a browser) is not run.
    # chromedriver's own log would hold the typed keys too: it goes nowhere.
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER), log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


def save_screenshot(driver: WebDriver, name: str) -> Path:
    """The page as the user sees it, into .test-output/browser/ (and docs/images/ when asked).

    DPS_UPDATE_SCREENSHOTS=1 refreshes the pictures the documentation shows.
    """
    png = driver.get_screenshot_as_png()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / name
    path.write_bytes(png)
    if os.environ.get("DPS_UPDATE_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        (DOC_IMAGES / name).write_bytes(png)
    return path
