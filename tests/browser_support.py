"""Headless Chromium for the browser tests (test_site_browser.py, test_reader_jupyterlab.py): offline,
every host name unresolvable, and nothing of Chromium's own going online."""

from __future__ import annotations

import shutil
from pathlib import Path


def chromium() -> tuple[str, str] | None:
    """The paths of a Chromium binary and of chromedriver, or None where either is missing."""
    browser = next(
        (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
    )
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def start_chromium(*, reach_local: bool = False, profile: Path | None = None, script_timeout: float = 60):
    """A headless Chromium driven by selenium, with its console and network logs recorded.

    Args:
        reach_local: let 127.0.0.1 resolve (a server started by the test); every other host name
            stays unresolvable, so a page that needs another host shows it.
        profile: the browser's user-data folder (a fresh temporary one by default).
        script_timeout: seconds an asynchronous script may run.
    """
    from selenium import webdriver

    found = chromium()
    if found is None:
        raise RuntimeError("Chromium and chromedriver are needed: apt-get install chromium chromium-driver")
    browser, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    hosts = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" if reach_local else "MAP * ~NOTFOUND"
    args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        f"--host-resolver-rules={hosts}",
    ]
    if profile is not None:
        args.append(f"--user-data-dir={profile}")
    for arg in args:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_script_timeout(script_timeout)
    driver.set_page_load_timeout(60)
    return driver
