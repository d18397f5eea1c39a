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
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT
from tests.smoke.conftest import (
    SMOKE_VENV,
    Ports,
    job_release,
    make_kubelet,
    new_panda_id,
    new_ports,
    render,
)
from tests.smoke.kubelet import Kubelet

if TYPE_CHECKING:  # imported lazily below: a .venv without selenium must still collect other tiers
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path(os.environ.get("DPS_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("DPS_CHROMEDRIVER", "/usr/bin/chromedriver"))
SECRET_KEY = "jupyter-password"
OUTPUT = ROOT / ".test-output" / "browser"
DOC_IMAGES = ROOT / "docs" / "images"
# A small window keeps the committed screenshots small and still shows the whole login form.
WINDOW = (1100, 700)


@dataclass
class Session:
    """One interactive session's JupyterLab, reachable on a free local port."""

    kubelet: Kubelet
    release: str
    ports: Ports
    password: str = field(repr=False)  # never printed: not in repr, not in assertion messages

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports.jupyterlab}{path}"


def _answers(url: str) -> bool:
    """JupyterLab's readiness probe: /api answers 200 without a password."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200)
    except (OSError, urllib.error.HTTPError):
        return False


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """The prepare hook, then the scheduler and JupyterLab of an interactive release, for real."""
    if not (SMOKE_VENV / "bin" / "jupyter-lab").exists():
        pytest.fail(f"{SMOKE_VENV} is missing: run scripts/bootstrap.sh --smoke")
    panda_id = new_panda_id()
    release = f"dask-{panda_id}"
    password = secrets.token_urlsafe(24)
    ports = new_ports()
    # the job through the orchestrator's own data path: values for helm, the per-job Secret (the
    # definition, the password, the session's TLS files) for the kubelet
    job = job_release(tmp_path_factory, panda_id, "interactive", ports, password=password)
    documents = render(
        release,
        panda_id,
        ports,
        {"job.mode": "interactive", "workers.replicas": "1"},
        values_files=[job.values_file],
    )
    kubelet = make_kubelet(
        tmp_path_factory,
        SMOKE_VENV,
        documents,
        {job.secret_name: job.secret, "proxy-secret": {"x509up_u25606_prod": "not a real proxy"}},
    )
    try:
        prepare = kubelet.run_to_completion(f"{release}-prepare", timeout=60)
        assert prepare.phase == "Succeeded", prepare.error
        kubelet.start(f"{release}-scheduler")
        jupyter = kubelet.start(f"{release}-jupyterlab")
        kubelet.wait_for(lambda: jupyter.phase == "Running", 60, "JupyterLab's main container")
        api = f"http://127.0.0.1:{ports.jupyterlab}/api"
        kubelet.wait_for(lambda: _answers(api), 90, "JupyterLab to answer /api (its readiness probe)")
        yield Session(kubelet, release, ports, password)
    finally:
        kubelet.shutdown()


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
