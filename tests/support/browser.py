"""Headless Chromium (Debian's, installed by scripts/ensure-browser) driven by Selenium.

Selenium's own browser download is never used: it needs hosts these machines cannot
reach. Screenshots go to ``reports/web/`` (kept out of git) for a person to look at.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions import interaction
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.pointer_input import PointerInput
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOTS = Path(__file__).resolve().parents[2] / "reports" / "web"
WAIT_SECONDS = 30.0
Stroke = Sequence[tuple[float, float]]  # points as fractions of the element's size


def browser_paths() -> tuple[str, str]:
    """Chromium and chromedriver; fails under CI (the tests are required there), else skips."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        reason = "no chromium and chromedriver (scripts/ensure-browser installs them)"
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests are required under CI: {reason}")
        pytest.skip(reason)
    return chromium, driver


@contextlib.contextmanager
def chromium(width: int = 1100, height: int = 900) -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own profile; quit on exit."""
    binary, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                         f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def wait(driver: WebDriver, script: str, what: str, *arguments: Any) -> Any:
    """Poll ``script`` (a JavaScript function body) until it returns something truthy."""
    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(
        lambda _: driver.execute_script(script, *arguments),
        f"timed out after {WAIT_SECONDS:.0f} s waiting for {what}")


def draw(driver: WebDriver, element: WebElement, strokes: Sequence[Stroke],
         pointer: str = interaction.POINTER_MOUSE) -> None:
    """Draw ``strokes`` on ``element`` with real pointer events (mouse, pen or touch)."""
    width, height = element.size["width"], element.size["height"]
    builder = ActionBuilder(driver, mouse=PointerInput(pointer, pointer))
    for stroke in strokes:
        for index, (x, y) in enumerate(stroke):
            # Offsets are from the element's centre.
            builder.pointer_action.move_to(element, int((x - 0.5) * width),
                                           int((y - 0.5) * height))
            if index == 0:
                builder.pointer_action.pointer_down()
        builder.pointer_action.pointer_up()
    builder.perform()


def line(start: tuple[float, float], end: tuple[float, float], steps: int = 12) -> Stroke:
    """A straight stroke from ``start`` to ``end`` in ``steps`` moves."""
    return [(start[0] + (end[0] - start[0]) * t / steps,
             start[1] + (end[1] - start[1]) * t / steps) for t in range(steps + 1)]


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save the whole page (not just the window) as ``reports/web/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = driver.get_window_size()
    width, height = size["width"], size["height"]
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(height, full + 140))
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(width, height)
    return path


def severe_console_messages(driver: WebDriver) -> list[str]:
    """The page's console errors since the last call (script errors, failed loads)."""
    # get_log is Chromium's own command, not on the generic WebDriver type.
    log = driver.get_log("browser")  # type: ignore[attr-defined]
    return [entry["message"] for entry in log if entry["level"] == "SEVERE"]


def keyboard_tour(driver: WebDriver, presses: int) -> list[str]:
    """The ids (or tag names) focused by pressing Tab ``presses`` times from the top."""
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    focused = []
    for _ in range(presses):
        ActionChains(driver).send_keys("\ue004").perform()  # Tab
        focused.append(driver.execute_script(
            "const e = document.activeElement; return e.id || e.tagName.toLowerCase()"))
    return focused
