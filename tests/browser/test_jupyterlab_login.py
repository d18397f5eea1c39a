"""The interactive session as its user meets it: JupyterLab's login page in a real browser.

Why: the smoke tier proves the password over HTTP headers; a user logs in through a form, gets a
cookie and waits for a JavaScript application to load. This drives headless Chromium through that
path against the session's real JupyterLab: a wrong password is refused on the login page, the
password from the per-job Secret opens the lab on the job's directory, and the password appears in
no log, URL, cookie or visible text. The screenshots it saves are the ones the documentation shows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pytest

from tests.browser.conftest import Session, save_screenshot

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.wait import WebDriverWait

pytestmark = pytest.mark.browser

# JupyterLab's application shell and its file browser's entries (JupyterLab 4 DOM).
LAB_SHELL = "#jp-main-dock-panel"
LAUNCHER = ".jp-Launcher"
FILE_ENTRY = ".jp-DirListing-item"


def wait(driver: WebDriver, seconds: float = 30) -> WebDriverWait[WebDriver]:
    from selenium.webdriver.support.wait import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.2)


def path_of(driver: WebDriver) -> str:
    return urlparse(driver.current_url).path


def open_login_page(driver: WebDriver, session: Session) -> None:
    """A fresh visitor (no cookie) asks for the lab and is sent to the login form."""
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(session.url("/lab"))
    wait(driver).until(lambda d: d.find_elements(By.ID, "password_input"))
    assert path_of(driver) == "/login"


def submit(driver: WebDriver, text: str) -> None:
    """Type into the password field and press the form's button, as a user does."""
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "password_input")
    field.clear()
    field.send_keys(text)
    driver.find_element(By.ID, "login_submit").click()


def test_the_lab_asks_for_the_password(browser: WebDriver, session: Session) -> None:
    from selenium.webdriver.common.by import By

    open_login_page(browser, session)
    field = browser.find_element(By.ID, "password_input")
    assert field.get_attribute("type") == "password"  # typed characters are masked
    assert browser.find_element(By.ID, "login_submit").is_displayed()
    assert not browser.find_elements(By.CSS_SELECTOR, LAB_SHELL)
    save_screenshot(browser, "jupyterlab-login.png")


def test_a_wrong_password_is_refused(browser: WebDriver, session: Session) -> None:
    from selenium.webdriver.common.by import By

    open_login_page(browser, session)
    submit(browser, secrets.token_urlsafe(24))
    error = wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".message.error"))
    assert "Invalid credentials" in error[0].text
    assert path_of(browser) == "/login"  # still on the login page
    assert browser.find_elements(By.ID, "password_input")
    assert not browser.find_elements(By.CSS_SELECTOR, LAB_SHELL)
    # and the browser got no session: the lab still sends it back to the login page
    browser.get(session.url("/lab"))
    wait(browser).until(lambda d: d.find_elements(By.ID, "password_input"))
    assert path_of(browser) == "/login"
    # the screenshot shows the refusal itself
    open_login_page(browser, session)
    submit(browser, secrets.token_urlsafe(24))
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".message.error"))
    save_screenshot(browser, "jupyterlab-login-refused.png")


NOTEBOOK = "analysis.ipynb"


def put_notebook(session: Session, name: str) -> None:
    """Create an empty notebook through the contents API, as a user logged in with the password
    (the login cookie and the form's _xsrf value, as the lab's own client sends them)."""
    login = session.login(session.password)
    assert login.accepted, "the login form refused the session's password"
    body = json.dumps({"type": "notebook"}).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback only
        session.url(f"/api/contents/{name}"),
        data=body,
        method="PUT",
        headers={"X-XSRFToken": login.xsrf, "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(login.cookies))
    with opener.open(request, timeout=10) as response:
        ok = response.status in (200, 201)
    assert ok, "the contents API refused the notebook"


def test_the_password_opens_the_lab_on_the_job_directory(browser: WebDriver, session: Session) -> None:
    from selenium.webdriver.common.by import By

    open_login_page(browser, session)
    submit(browser, session.password)
    wait(browser, 60).until(
        lambda d: path_of(d).startswith("/lab") and d.find_elements(By.CSS_SELECTOR, LAB_SHELL)
    )
    # the application really started: its launcher and its file browser are drawn
    wait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, LAUNCHER))
    # a notebook the user makes (through JupyterLab's own API, as the lab would) shows up in the
    # file browser, whose root is the session's data directory; the pilot's definition is not there
    put_notebook(session, NOTEBOOK)
    browser.refresh()
    entries = wait(browser, 60).until(
        lambda d: (
            [e.text for e in d.find_elements(By.CSS_SELECTOR, FILE_ENTRY)]
            if any(NOTEBOOK in e.text for e in d.find_elements(By.CSS_SELECTOR, FILE_ENTRY))
            else []
        )
    )
    assert not any("pandaJobData.out" in text for text in entries), entries
    save_screenshot(browser, "jupyterlab-lab.png")


def test_the_password_is_in_no_log_url_cookie_or_visible_text(
    browser: WebDriver, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """After a login through the browser, the password is nowhere the user or an admin looks,
    the lab page's HTML source included (the lab keeps a hash of it, and has no token to embed)."""
    from selenium.webdriver.common.by import By

    # every record at every level, as `pytest --log-level=DEBUG` would keep them
    caplog.set_level(logging.DEBUG)
    open_login_page(browser, session)
    submit(browser, session.password)
    wait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, LAB_SHELL))
    assert path_of(browser).startswith("/lab")
    in_text = session.password in browser.find_element(By.TAG_NAME, "body").text
    in_url = session.password in browser.current_url
    in_cookies = any(session.password in str(cookie.get("value", "")) for cookie in browser.get_cookies())
    in_source = session.password in browser.page_source
    in_logs = session.password in session.kubelet.all_logs()
    in_test_log = session.password in caplog.text  # selenium logs typed keys at DEBUG
    assert caplog.records  # the capture works (urllib3 logs each WebDriver request)
    assert "jupyter-config-data" in browser.page_source  # the page whose config held the token
    # booleans only: a failing assert must not print the password
    found = (in_text, in_url, in_cookies, in_source, in_logs, in_test_log)
    assert found == (False, False, False, False, False, False)


# dask-labextension's side panel (its tab in the left side bar) and what it draws (7.x DOM).
DASK_TAB = '.lm-TabBar-tab[data-id="dask-dashboard-launcher"]'
DASK_PANE_BUTTON = ".dask-DashboardListing-item button"
DASK_PANE = ".dask-DaskDashboard-widget"
# The pane opened for the screenshot: the scheduler and its workers, drawn from live data.
PANE = "Cluster Map"
# True once the page holds a <canvas> (bokeh 3 draws inside shadow roots, out of CSS selectors' reach).
DRAWN_CANVAS = """
const walk = (root) => [...root.querySelectorAll("*")].some(
    (el) => el.tagName === "CANVAS" || (el.shadowRoot !== null && walk(el.shadowRoot)));
return walk(document);
"""


def test_the_proxied_dashboard_asks_for_the_login(browser: WebDriver, session: Session) -> None:
    """The dashboard's address in the lab: the login page first, then the scheduler's page."""
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(session.url(session.dashboard_path()))
    wait(browser).until(lambda d: d.find_elements(By.ID, "password_input"))
    assert path_of(browser) == "/login"
    assert not browser.execute_script(DRAWN_CANVAS)
    submit(browser, session.password)
    wait(browser, 60).until(lambda d: d.find_elements(By.ID, "password_input") == [])
    # logged in, the same address is the scheduler's status page, drawn through the proxy
    browser.get(session.url(session.dashboard_path()))
    wait(browser, 60).until(lambda d: d.execute_script(DRAWN_CANVAS))
    assert path_of(browser) == session.dashboard_path()


def test_the_login_leads_on_to_the_dashboard_it_was_asked_for(browser: WebDriver, session: Session) -> None:
    """Logged out, the dashboard's address leads to the login; the login leads back to it.

    jupyter_server's login turns the first ':' of its `next` address into '://': the chart's
    dashboard address (`/dask/status`, a named proxy entry) holds none, so the user lands on the
    scheduler's page and not on a 404.
    """
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(session.url(session.dashboard_path()))
    wait(browser).until(lambda d: d.find_elements(By.ID, "password_input"))
    submit(browser, session.password)
    wait(browser, 60).until(lambda d: d.find_elements(By.ID, "password_input") == [])
    assert path_of(browser) == session.dashboard_path()
    wait(browser, 60).until(lambda d: d.execute_script(DRAWN_CANVAS))


def dismiss_notifications(driver: WebDriver) -> None:
    """Close JupyterLab's toasts (its news question) so they do not cover the screenshot."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, ".Toastify button"):
        if button.is_displayed() and button.text.strip() == "No":
            button.click()
    # they slide out: wait until they are gone (a toast left on the picture fails nothing)
    with contextlib.suppress(TimeoutException):
        wait(driver, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".Toastify__toast"))


def test_the_dashboard_opens_inside_the_lab(browser: WebDriver, session: Session) -> None:
    """dask-labextension's panel lists the scheduler's panes; one opens as a tab of the lab.

    The panel starts with the proxied dashboard's address (the chart presets it), reads the
    scheduler's panes through JupyterLab's proxy, and the pane is a frame of the proxied
    dashboard, drawn from the scheduler's live data.
    """
    from selenium.webdriver.common.by import By

    open_login_page(browser, session)
    submit(browser, session.password)
    wait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, LAUNCHER))
    wait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, DASK_TAB))[0].click()
    buttons = wait(browser, 60).until(
        lambda d: [b for b in d.find_elements(By.CSS_SELECTOR, DASK_PANE_BUTTON) if b.is_enabled()]
    )
    labels = {b.get_attribute("value") for b in buttons}
    assert {PANE, "Task Stream", "Progress"} <= labels, labels
    next(b for b in buttons if b.get_attribute("value") == PANE).click()
    pane = wait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"{DASK_PANE} iframe"))[0]
    source = pane.get_attribute("src") or ""
    assert urlparse(source).path.startswith(session.dashboard_path("")), source
    # the map itself, fed live by the scheduler (a websocket through the proxy): the scheduler and
    # the session's one worker
    browser.switch_to.frame(pane)
    try:
        wait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg circle.worker"))
        assert len(browser.find_elements(By.CSS_SELECTOR, "svg circle.scheduler")) == 1
        assert len(browser.find_elements(By.CSS_SELECTOR, "svg circle.worker")) == session.workers
    finally:
        browser.switch_to.default_content()
    dismiss_notifications(browser)
    save_screenshot(browser, "jupyterlab-dashboard.png")
