"""Unit tests of the web page's own logic (Prometheus text parsing, counter increases,
histogram quantiles, the scrape window, number formats), run in the real browser on the
modules exactly as the service serves them."""

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from support.browser import chromium
from support.serve_process import start_serve

EXPOSITION = r"""# HELP digits_requests_total Requests handled.
# TYPE digits_requests_total counter
digits_requests_total{code="OK",method="Classify",protocol="digits.v1/grpc"} 12.0
digits_requests_total{code="OK",method="ModelInfer",protocol="oip/http"} 3.0 1700000000000
digits_requests_total{code="NOT_FOUND",method="Classify",protocol="digits.v1/grpc"} 1e1
odd_label{path="a \"quoted\", back\\slash\nnew line",empty=""} -2.5
digits_batch_size_images_bucket{le="1.0",model="mnist"} 4.0
digits_batch_size_images_bucket{le="+Inf",model="mnist"} 9.0
plain_metric 7
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """A browser on the page of a server that has no model (the scripts need none)."""
    root = tmp_path_factory.mktemp("empty-models")
    served = start_serve(root, root.parent / "serve.log")
    try:
        with chromium() as driver:
            driver.get(f"http://127.0.0.1:{served.http_port}/ui/live.html")
            yield driver
    finally:
        served.stop()


def evaluate(browser: WebDriver, module: str, expression: str) -> Any:
    """``expression`` evaluated with ``m`` bound to the page module ``module``."""
    answer = browser.execute_async_script(f"""
        const done = arguments[arguments.length - 1];
        import("/ui/js/{module}").then((m) => done({{value: ({expression})}}))
            .catch((error) => done({{error: String(error)}}));""")
    assert "error" not in answer, answer["error"]
    return answer["value"]


def test_the_exposition_format_is_parsed_like_prometheus(browser: WebDriver) -> None:
    samples = evaluate(browser, "prometheus.js",
                       f"m.parseExposition({EXPOSITION!r}).map(s => [s.name, s.labels, "
                       "String(s.value)])")
    assert samples == [
        ["digits_requests_total", {"code": "OK", "method": "Classify",
                                   "protocol": "digits.v1/grpc"}, "12"],
        ["digits_requests_total", {"code": "OK", "method": "ModelInfer",
                                   "protocol": "oip/http"}, "3"],
        ["digits_requests_total", {"code": "NOT_FOUND", "method": "Classify",
                                   "protocol": "digits.v1/grpc"}, "10"],
        ["odd_label", {"path": 'a "quoted", back\\slash\nnew line', "empty": ""}, "-2.5"],
        ["digits_batch_size_images_bucket", {"le": "1.0", "model": "mnist"}, "4"],
        ["digits_batch_size_images_bucket", {"le": "+Inf", "model": "mnist"}, "9"],
        ["plain_metric", {}, "7"],
    ]
    grouped = evaluate(browser, "prometheus.js",
                       f"[...m.sumBy(m.parseExposition({EXPOSITION!r}), 'digits_requests_total',"
                       " {method: 'Classify'}, 'code').entries()]")
    assert sorted(grouped) == [["NOT_FOUND", 10], ["OK", 12]]


def test_counter_increases_survive_resets_and_new_series(browser: WebDriver) -> None:
    older = "c{k=\"a\"} 10\nc{k=\"b\"} 50\n"
    newer = "c{k=\"a\"} 15\nc{k=\"b\"} 4\nc{k=\"c\"} 7\n"  # b restarted, c is new
    grew = evaluate(browser, "prometheus.js",
                    f"[...m.increaseBy(m.parseExposition({older!r}), "
                    f"m.parseExposition({newer!r}), 'c', {{}}, 'k').entries()]")
    assert sorted(grew) == [["a", 5], ["b", 4], ["c", 7]]
    total = evaluate(browser, "prometheus.js",
                     f"m.increaseBy(m.parseExposition({older!r}), "
                     f"m.parseExposition({newer!r}), 'c').get('')")
    assert total == 16


def test_histogram_buckets_and_quantiles(browser: WebDriver) -> None:
    older = 'h_bucket{le="0.1"} 1\nh_bucket{le="0.5"} 2\nh_bucket{le="+Inf"} 2\n'
    newer = 'h_bucket{le="0.5"} 12\nh_bucket{le="+Inf"} 13\nh_bucket{le="0.1"} 1\n'
    buckets = evaluate(browser, "prometheus.js",
                       f"m.bucketIncreases(m.parseExposition({older!r}), "
                       f"m.parseExposition({newer!r}), 'h').map(([b, c]) => [String(b), c])")
    assert buckets == [["0.1", 0], ["0.5", 10], ["Infinity", 11]]
    per = evaluate(browser, "prometheus.js",
                   "m.perBucket([[0.1, 0], [0.5, 10], [Infinity, 11]]).map(([, c]) => c)")
    assert per == [0, 10, 1]
    # Prometheus's histogram_quantile: linear within the bucket holding the rank, the
    # lower bound 0 for the first bucket, the last finite bound when the rank is in +Inf.
    cases = {
        "m.histogramQuantile(0.5, [[0.1, 10], [Infinity, 10]])": 0.05,
        "m.histogramQuantile(0.5, [[1, 0], [2, 10], [Infinity, 10]])": 1.5,
        "m.histogramQuantile(0.9, [[1, 5], [2, 10], [Infinity, 10]])": 1.8,
        "m.histogramQuantile(0.99, [[0.1, 0], [0.5, 10], [Infinity, 11]])": 0.5,
    }
    for expression, expected in cases.items():
        got = evaluate(browser, "prometheus.js", expression)
        assert math.isclose(got, expected), expression
    for no_observations in ("[[0.1, 0], [Infinity, 0]]", "[]"):
        assert evaluate(browser, "prometheus.js",
                        f"Number.isNaN(m.histogramQuantile(0.5, {no_observations}))")


def test_the_scrape_window_keeps_what_its_span_needs(browser: WebDriver) -> None:
    spans = evaluate(browser, "prometheus.js", """(() => {
        const window_ = new m.ScrapeWindow(10);
        for (let time = 0; time <= 20; time += 2) window_.add(time, []);
        const times = (span) => span.map((scrape) => scrape.time);
        return [window_.scrapes.map((s) => s.time), times(window_.span(5)),
                times(window_.span(100))];
    })()""")
    assert spans == [[10, 12, 14, 16, 18, 20], [16, 20], [10, 20]]


@pytest.mark.parametrize(("value", "shown"), [
    (0, "0"), (7, "7"), (15.4, "15"), (1234, "1.2k"), (2_500_000, "2.5M"), (0.0123, "0.012"),
    (2.5, "2.5")])
def test_tick_numbers_are_short(browser: WebDriver, value: float, shown: str) -> None:
    assert evaluate(browser, "charts.js", f"m.shortNumber({value})") == shown


def test_the_scripts_are_all_there(tmp_path: Path) -> None:
    """Every module a page imports is served (a missing file would only show in a browser)."""
    from digits.service.web.routes import static_files

    files = static_files()
    for name, (data, _) in files.items():
        if not name.endswith(".js"):
            continue
        for imported in _imports(data.decode()):
            assert f"js/{imported}" in files, f"{name} imports {imported}, which is missing"


def _imports(source: str) -> list[str]:
    import re

    return re.findall(r'from "\./([a-z_]+\.js)"', source)


def test_scrapes_of_replicas_are_kept_apart_and_added_up(browser: WebDriver) -> None:
    """Behind a proxy, scrapes alternate between replicas: each replica's counters are
    subtracted only from its own, then the increases are added up."""
    figures = evaluate(browser, "prometheus.js", """(() => {
        const scrape = (host, requests) => m.parseExposition(
            `digits_server_info{host="${host}",pid="1",version="0.1.0"} 1\\n` +
            `digits_requests_total{code="OK"} ${requests}\\n`);
        const windows = new m.ReplicaWindows(60);
        windows.add(0, scrape("a", 100));
        windows.add(2, scrape("b", 5000));
        windows.add(4, scrape("a", 130));
        windows.add(6, scrape("b", 5010));
        const spans = windows.spans(60);
        const grown = m.sumMaps(spans.map(([older, newer]) =>
            m.increaseBy(older.samples, newer.samples, "digits_requests_total")));
        return [spans.length, grown.get(""), m.replicaOf(windows.latest.samples)];
    })()""")
    assert figures == [2, 40, "b/1"]
    summed = evaluate(browser, "prometheus.js",
                      "m.sumBuckets([[[0.1, 1], [Infinity, 3]], [[0.1, 2], [0.5, 2], "
                      "[Infinity, 4]]]).map(([b, c]) => [String(b), c])")
    assert summed == [["0.1", 3], ["0.5", 2], ["Infinity", 7]]
