"""The web page in a real browser (headless Chromium) against a real server and a real
trained model: draw, upload, browse the models, watch the live panel.

Screenshots of every page land in reports/web/ for a person to look at.
"""

import base64
import io
import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from selenium.webdriver.common.actions import interaction
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from digits.cli import main
from digits.modelstore.card import read_card, write_card

from support.browser import (
    chromium,
    draw,
    keyboard_tour,
    line,
    screenshot,
    severe_console_messages,
    wait,
)
from support.serve_process import ServeProcess, serving_process

pytestmark = pytest.mark.e2e

# A card text that would run script if the page ever put it into HTML unescaped.
HOSTILE = '<img src="x" onerror="window.pwned = 1"><script>window.pwned = 2</script>'
SEVEN = [line((0.22, 0.25), (0.78, 0.25)), line((0.78, 0.25), (0.42, 0.85))]


@pytest.fixture(scope="module")
def models_root(mnist_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real multiclass model as version 1, and a copy whose card is hostile as version 2."""
    root = tmp_path_factory.mktemp("models")
    result = CliRunner().invoke(main, [
        "train", "multiclass", "--epochs", "2", "--train-limit", "30000", "--data",
        str(mnist_path), "--models", str(root), "--reports",
        str(tmp_path_factory.mktemp("reports"))])
    assert result.exit_code == 0, result.output + repr(result.exception)
    staging = root / "mnist" / ".staging-test-2"
    shutil.copytree(root / "mnist" / "1", staging)
    card = read_card(staging)
    card.description = HOSTILE
    card.training_config.get_or_create_struct("hyperparameters")["optimizer"] = HOSTILE
    write_card(staging, card)
    staging.rename(root / "mnist" / "2")
    return root


@pytest.fixture(scope="module")
def served(models_root: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ServeProcess]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serving_process(models_root, log) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def page(served: ServeProcess, name: str = "") -> str:
    return f"http://127.0.0.1:{served.http_port}/ui/{name}"


def api_classify(served: ServeProcess, png: bytes) -> dict[str, Any]:
    """The digits.v1 REST answer for one encoded image, pixels included."""
    body = json.dumps({"images": [{"encoded": base64.b64encode(png).decode()}],
                       "return_model_input": True}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.http_port}/digits/v1/models/mnist:classify", body,
        {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.load(response))


def shown_digit(browser: WebDriver, what: str) -> str:
    """The digit on the page once the latest request has its answer."""
    return str(wait(browser, "const t = document.getElementById('digit').textContent;"
                             "const busy = document.getElementById('result')"
                             "    .getAttribute('aria-busy') === 'true';"
                             "return !busy && t !== '\\u2013' && t;", what))


def model_input_pixels(browser: WebDriver) -> np.ndarray:
    """The 28x28 image the page shows as what the model saw."""
    data = browser.execute_script(
        "const c = document.getElementById('model-input').getContext('2d');"
        "return Array.from(c.getImageData(0, 0, 28, 28).data);")
    return np.array(data, dtype=np.uint8).reshape(28, 28, 4)[:, :, 0]


def test_drawing_a_seven_reads_seven(served: ServeProcess, browser: WebDriver) -> None:
    browser.get(page(served))
    wait(browser, "return document.getElementById('version').options.length >= 3",
         "the version list")
    pad = browser.find_element(By.ID, "pad")
    draw(browser, pad, SEVEN[:1])
    draw(browser, pad, SEVEN[1:], pointer=interaction.POINTER_TOUCH)  # a finger, too
    assert shown_digit(browser, "a prediction") == "7"
    confidence = browser.find_element(By.ID, "confidence").text
    assert confidence.endswith("% confident"), confidence
    seven = model_input_pixels(browser)
    assert seven.max() > 200  # the model saw ink
    bars = browser.find_elements(By.CSS_SELECTOR, "#probabilities rect")
    assert len(bars) == 10 and "top" in str(bars[7].get_attribute("class"))
    screenshot(browser, "try-drawn-seven")
    # Every stroke asks again; undo takes the last one away, and the model sees the
    # very seven it saw before.
    draw(browser, pad, [line((0.1, 0.6), (0.9, 0.6))])
    shown_digit(browser, "the answer with a third stroke")
    assert not np.array_equal(model_input_pixels(browser), seven)
    browser.find_element(By.ID, "undo").click()
    assert shown_digit(browser, "the answer after undo") == "7"
    np.testing.assert_array_equal(model_input_pixels(browser), seven)
    # Pinning the older version asks it instead.
    Select(browser.find_element(By.ID, "version")).select_by_value("1")
    wait(browser, "return document.getElementById('answered-by').textContent === 'mnist v1'",
         "version 1's answer")
    assert severe_console_messages(browser) == []


def _photo_of(digit: np.ndarray) -> bytes:
    """A 'photo': dark ink on light paper, a larger canvas, the digit off-centre."""
    paper = Image.new("L", (160, 120), 235)
    paper.paste(Image.fromarray(235 - (digit * 0.9).astype(np.uint8)).resize((70, 70)),
                (70, 30))
    buffer = io.BytesIO()
    paper.save(buffer, "PNG")
    return buffer.getvalue()


def test_an_uploaded_digit_shows_what_the_api_gives(
        served: ServeProcess, browser: WebDriver, mnist_path: Path, tmp_path: Path) -> None:
    mnist = np.load(mnist_path)
    photo = tmp_path / "digit.png"
    photo.write_bytes(_photo_of(mnist["x_test"][3]))  # a zero
    browser.get(page(served))
    wait(browser, "return document.getElementById('model').value", "the model list")
    browser.find_element(By.ID, "photo").send_keys(str(photo))
    api = api_classify(served, photo.read_bytes())["predictions"][0]
    assert shown_digit(browser, "the upload's prediction") == api["label"] == "0"
    expected = np.frombuffer(base64.b64decode(api["model_input"]), np.uint8).reshape(28, 28)
    np.testing.assert_array_equal(model_input_pixels(browser), expected)
    assert browser.find_element(By.ID, "photo-preview").is_displayed()
    screenshot(browser, "try-uploaded-photo")


def test_the_models_page_shows_cards_and_plots(served: ServeProcess, browser: WebDriver,
                                               models_root: Path) -> None:
    card = read_card(models_root / "mnist" / "1")
    browser.get(page(served, "models.html"))
    wait(browser, "return document.querySelectorAll('details.version').length === 2",
         "both versions")
    for section in browser.find_elements(By.CSS_SELECTOR, "details.version"):
        if not section.get_attribute("open"):
            section.find_element(By.TAG_NAME, "summary").click()
    plots = wait(browser, """
        const images = [...document.querySelectorAll('.plots img')];
        return images.length === 6 && images.every(i => i.complete && i.naturalWidth > 0)
            && images.map(i => i.getAttribute('alt'));""", "six plots loaded")
    for version in (1, 2):
        for plot in ("confusion matrix", "learning curves", "misclassified"):
            assert f"{plot} of v{version}" in plots
    text = browser.find_element(By.ID, "models").text
    assert f"{100 * card.test_metrics['accuracy']:.2f}%" in text
    assert "multiclass" in text and "tensorflow" in text and "AVAILABLE" in text
    class_bars = browser.find_elements(By.CSS_SELECTOR, "svg.class-accuracy rect")
    assert len(class_bars) == 20  # ten classes, two versions
    # The hostile card is shown as the text it is; none of it ran or became markup.
    assert HOSTILE in text
    assert browser.execute_script("return window.pwned") is None
    assert browser.find_elements(By.CSS_SELECTOR, "#models script, img[src='x']") == []
    screenshot(browser, "models")
    assert severe_console_messages(browser) == []


def test_the_live_panel_follows_the_traffic(served: ServeProcess, browser: WebDriver,
                                            mnist_path: Path) -> None:
    browser.get(page(served, "live.html"))
    wait(browser, "return document.getElementById('status').textContent.includes('every')",
         "the first scrape")
    ones = np.load(mnist_path)["x_test"][[2, 5, 14, 29, 31]]  # five ones
    for _ in range(6):
        for image in ones:
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, "PNG")
            api_classify(served, buffer.getvalue())
    counts = wait(browser, """
        const titles = [...document.querySelectorAll('#digits rect title')];
        const one = titles.find(t => t.textContent.startsWith('1:'));
        return one && Number(one.textContent.slice(2)) >= 30 && titles.length;""",
                  "thirty ones in the predicted digits chart")
    assert counts == 10  # a bar for every digit
    wait(browser, "return document.querySelectorAll('#rate path.line').length === 1"
                  " && document.querySelectorAll('#latency path.line').length === 3",
         "the rate and latency lines")
    versions = browser.find_element(By.ID, "versions").text
    assert "mnist: 2 loaded, default v2" in versions
    screenshot(browser, "live")
    assert severe_console_messages(browser) == []


def test_phone_width_dark_mode_and_keyboard(served: ServeProcess) -> None:
    with chromium(width=390, height=844) as phone:
        phone.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        for name in ("", "models.html", "live.html"):
            phone.get(page(served, name))
            wait(phone, "return document.readyState === 'complete'", "the page")
            overflow = phone.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name or 'index'} is {overflow} px too wide for a phone"
            background = phone.execute_script(
                "return getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(17, 19, 24)", background  # the dark palette
            screenshot(phone, f"phone-dark-{name.removesuffix('.html') or 'try'}")
        phone.get(page(served))
        wait(phone, "return document.getElementById('model').value", "the model list")
        focused = keyboard_tour(phone, 12)
    order = [id_ for id_ in focused if id_ in {"model", "version", "pad", "undo", "clear",
                                               "photo"}]
    assert order == ["model", "version", "pad", "undo", "clear", "photo"], focused
