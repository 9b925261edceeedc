"""The Prefect UI, in headless Chromium, shows what an export delivered: a completed run's
Artifacts tab and the artifact pages, read from the rendered DOM, against the run's own
result. The UI is served by a Prefect server of this module's own (the tests' shared server
serves no UI); the export runs against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from prefect import tags
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.export import export
from flows.runs.result import ExportResult
from flows.runs.tags import run_now_tags
from tests.conftest import DEMO_DB
from tests.processes import stop_process, wait_for_http
from tests.servers.ports import free_port

CHROMIUM = "/usr/bin/chromium"  # Debian's package, which .ci/run installs
# What the machine's closed network needs (no background calls to Google's hosts).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WIDTH = 1400
USER = "ui-tester"


@dataclass(frozen=True)
class UiRun:
    ui: str  # the UI's base URL
    run_id: str
    result: ExportResult


@pytest.fixture(scope="module")
def ui_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiRun]:
    home = tmp_path_factory.mktemp("ui-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_API_URL=api,  # where the browser's UI calls the API
    )
    log = home / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("prefect")), "server", "start",
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_http(f"{api}/health", 120, every_s=0.5, process=server, log=log)
        out = tmp_path_factory.mktemp("ui-out")
        with temporary_settings({PREFECT_API_URL: api}), tags(*run_now_tags(USER)):
            result = export(
                source={"url": f"sqlite:///{DEMO_DB}", "table": "orders"},
                destination={"url": str(out / "{export}.{ext}")},
            )
        yield UiRun(f"http://127.0.0.1:{port}", result.export_request_id, result)
    finally:
        stop_process(server, grace_s=20, group=True)


@pytest.fixture(scope="module")
def browser(ui_run: UiRun) -> Iterator[Browser]:  # noqa: ARG001
    """After the run: Playwright's sync API keeps an event loop running in this thread, and
    Prefect's calls would turn into coroutines under it."""
    assert Path(CHROMIUM).is_file(), "Chromium is installed by .ci/run (apt-get install chromium)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": WIDTH, "height": 1000})
    opened.set_default_timeout(30_000)
    yield opened
    opened.close()


def open_artifacts_tab(page: Page, run: UiRun) -> None:
    page.goto(f"{run.ui}/runs/flow-run/{run.run_id}")
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text("export-orders-summary", exact=True).first.wait_for()


def overflowing(page: Page) -> list[list[object]]:
    """Elements whose content is wider than they are and that scroll sideways."""
    found: list[list[object]] = page.evaluate(
        """() => [...document.querySelectorAll('*')]
            .filter(e => e.scrollWidth > e.clientWidth + 1
                     && !['visible', 'hidden', 'clip'].includes(getComputedStyle(e).overflowX))
            .map(e => [e.tagName, e.className, e.scrollWidth, e.clientWidth])"""
    )
    return found


def test_the_artifacts_tab_lists_the_summary_and_the_file(page: Page, ui_run: UiRun) -> None:
    open_artifacts_tab(page, ui_run)
    text = page.inner_text("body")
    result = ui_run.result
    assert "export-orders-file-1" in text
    assert "Delivered file 1 of 1." in text
    # the summary's Markdown description, rendered: bold rows, thousands separators
    assert f"{result.rows:,} rows" in text
    assert f"{result.bytes:,} bytes of csv in 1 file(s)" in text
    assert f"Run Now by {USER}" in text


def test_the_summary_page_shows_every_column_at_1400_px(page: Page, ui_run: UiRun) -> None:
    open_artifacts_tab(page, ui_run)
    page.get_by_text("export-orders-summary", exact=True).first.click()
    page.locator("table").first.wait_for()
    headers = [cell.strip() for cell in page.locator("table th").all_inner_texts()]
    cells = [
        cell.strip()
        for cell in page.locator("table tbody tr").first.locator("td").all_inner_texts()
    ]
    row = dict(zip(headers, cells, strict=True))
    result = ui_run.result
    assert row["rows"] == str(result.rows)
    assert row["bytes"] == str(result.bytes)
    assert row["files"] == "1"
    assert (row["trigger"], row["user"]) == ("Run Now", USER)
    assert overflowing(page) == [], "readable without scrolling sideways"
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


def test_the_file_link_points_at_the_delivered_file(page: Page, ui_run: UiRun) -> None:
    open_artifacts_tab(page, ui_run)
    page.get_by_text("export-orders-file-1", exact=True).first.click()
    [path] = ui_run.result.files
    link = page.locator(f'a[href="file://{path}"]')
    link.first.wait_for()
    assert link.first.inner_text().strip() == Path(path).name
    assert Path(path).stat().st_size == ui_run.result.bytes
