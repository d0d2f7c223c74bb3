"""The dashboard in a real headless Chromium: open a database, create a record, see another client's write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles.client import Client
from tests.servers import ServerProcess, chromium

pytestmark = [pytest.mark.browser, pytest.mark.needs_server]

WAIT = 15


def wait_until(driver: Any, condition: Any, message: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition, message)


def page_errors(driver: Any) -> list[str]:
    """Errors the page showed in its banner."""
    banner = driver.find_element("id", "banner")
    if banner.is_displayed() and "info" not in (banner.get_attribute("class") or ""):
        return [banner.text]
    return []


def row_ids(driver: Any) -> list[str]:
    """The ids of the listed records, read in one script call so a re-render cannot go stale."""
    ids = driver.execute_script(
        "return [...document.querySelectorAll('#records-table tbody tr')].map((r) => r.dataset.id)"
    )
    return [str(i) for i in ids]


def open_dashboard(driver: Any, server: ServerProcess) -> None:
    """Open the link the server printed; when it carries a token, accept the page's offer to use it
    (the page asks first, showing the token's actor)."""
    link = server.dashboard()
    driver.get(link)
    if "#token=" in link:
        wait_until(driver, lambda d: d.find_element("id", "token-offer-accept").is_displayed(),
                   "the page did not offer the link's token")  # fmt: skip
        driver.find_element("id", "token-offer-accept").click()


def test_dashboard_open_create_and_live_update(home: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "browser.sqlite"
    with ServerProcess(home) as server, chromium() as driver:
        open_dashboard(driver, server)
        wait_until(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true",
                   "the dashboard did not finish loading")  # fmt: skip
        wait_until(
            driver,
            lambda d: d.find_element("id", "status").text == "live",
            "the WebSocket never opened",
        )

        # Open a database through the page.
        driver.find_element("id", "open-path").send_keys(str(db_path))
        driver.find_element("id", "open-alias").send_keys("browser")
        driver.find_element("id", "open-submit").click()
        wait_until(driver, lambda d: d.find_element("id", "handle-title").text == "browser",
                   "the new handle was not selected")  # fmt: skip
        assert db_path.exists()
        with Client(server.url, server.token) as client:
            handles = client.execute("data/list-handles")["handles"]
        handle = next(h["handle"] for h in handles if h["aliases"] == ["browser"])
        assert len(driver.find_elements("css selector", "#handles .handle")) == 2

        # Create a record with the editor, see it listed.
        driver.find_element("id", "new-record").click()
        driver.find_element("id", "editor-collection").send_keys("training_examples")
        driver.find_element("id", "editor-id").send_keys("test-001")
        area = driver.find_element("id", "editor-data")
        area.clear()
        area.send_keys('{"text": "from the browser", "label": "positive"}')
        driver.find_element("id", "editor-save").click()
        wait_until(driver, lambda d: "test-001" in row_ids(d), "the created record is not listed")
        assert not page_errors(driver)
        wait_until(driver, lambda d: chip_count(d) == "1", "the new collection is not listed")

        # Another client writes; the page shows it without a reload.
        with Client(server.url, server.token) as other:
            stored = other.execute("data/read", {"dbHandle": handle, "collection": "training_examples",
                                                 "id": "test-001"})  # fmt: skip
            assert stored["data"]["text"] == "from the browser"
            other.execute("data/create", {"dbHandle": handle, "collection": "training_examples",
                                          "data": {"text": "written elsewhere"}, "id": "remote-1"})  # fmt: skip
        wait_until(
            driver, lambda d: "remote-1" in row_ids(d), "another client's record did not appear"
        )
        wait_until(driver, lambda d: chip_count(d) == "2", "the collection count did not update")
        activity = driver.find_element("id", "activity").text
        assert "data:training_examples:created" in activity

        # Bad JSON in the editor is refused in the page, not sent.
        driver.find_element("id", "new-record").click()
        area = driver.find_element("id", "editor-data")
        area.clear()
        area.send_keys("{not json")
        assert "Not valid JSON" in driver.find_element("id", "editor-hint").text
        assert not driver.find_element("id", "editor-save").is_enabled()

        # A server-side error is shown in the banner.
        area.clear()
        area.send_keys("{}")
        driver.find_element("id", "editor-id").send_keys("test-001")
        driver.find_element("id", "editor-save").click()
        wait_until(driver, lambda d: page_errors(d), "the error was not shown")
        assert "record_exists" in page_errors(driver)[0]
        driver.find_element("id", "editor-cancel").click()

        # Close the handle through the page (two clicks: the second confirms).
        driver.find_element("id", "close-handle").click()
        driver.find_element("id", "close-handle").click()
        wait_until(driver, lambda d: d.find_element("id", "handle-title").text == "default",
                   "closing did not go back to default")  # fmt: skip
        with Client(server.url, server.token) as client:
            assert [h["handle"] for h in client.execute("data/list-handles")["handles"]] == [
                "default"
            ]


def chip_count(driver: Any) -> str | None:
    """The record count on the training_examples chip (None while the page re-renders it)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        chip = driver.find_element(
            "css selector", '#collections [data-collection="training_examples"]'
        )
        return str(chip.text.split()[-1])
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def test_pager_walks_a_cursor(home: Path, tmp_path: Path) -> None:
    with (
        ServerProcess(home) as server,
        chromium() as driver,
        Client(server.url, server.token) as client,
    ):
        ops = [{"op": "create", "collection": "many", "data": {"n": i}} for i in range(60)]
        client.execute("data/batch", {"operations": ops})
        open_dashboard(driver, server)
        wait_until(driver, lambda d: len(row_ids(d)) == 25, "the first page did not load")
        assert driver.find_element("id", "page-info").text == "Page 1 of 3"
        first = set(row_ids(driver))
        driver.find_element("id", "next-page").click()
        wait_until(
            driver, lambda d: d.find_element("id", "page-info").text == "Page 2 of 3", "no page 2"
        )
        second = set(row_ids(driver))
        driver.find_element("id", "next-page").click()
        wait_until(
            driver, lambda d: d.find_element("id", "page-info").text == "Page 3 of 3", "no page 3"
        )
        third = set(row_ids(driver))
        assert len(third) == 10
        assert not (first & second) and not (second & third)
        assert len(first | second | third) == 60
        driver.find_element("id", "prev-page").click()
        wait_until(driver, lambda d: set(row_ids(d)) == second, "previous page differs")


def test_dashboard_needs_the_token(home: Path) -> None:
    """Without a token the page asks for one; a wrong one is refused; the token is kept for the tab
    (not in the address) until "Forget token"."""
    with ServerProcess(home) as server, chromium() as driver:
        driver.get(server.url + "/")
        wait_until(driver, lambda d: d.find_element("id", "status").text == "token needed",
                   "no token prompt")  # fmt: skip
        assert driver.find_element("id", "token-prompt").is_displayed()
        assert not page_errors(driver), "the prompt says it; no error banner on top"

        prompt = driver.find_element("id", "token-input")
        prompt.send_keys("dbh_00000000_wrongwrongwrongwrongwrong")
        driver.find_element("id", "token-submit").click()
        wait_until(driver, lambda d: d.find_element("id", "token-error").is_displayed(),
                   "a wrong token was not reported")  # fmt: skip
        assert "refused" in driver.find_element("id", "token-error").text

        driver.find_element("id", "token-input").send_keys(server.token)
        driver.find_element("id", "token-submit").click()
        wait_until(driver, lambda d: d.find_element("id", "status").text == "live",
                   "the pasted token was not used")  # fmt: skip
        assert not driver.find_element("id", "token-prompt").is_displayed()
        wait_until(driver, lambda d: "default" in d.find_element("id", "handles").text,
                   "the handles did not load after the token was given")  # fmt: skip
        assert server.token not in driver.current_url
        assert (
            driver.execute_script("return sessionStorage.getItem('dbhandles.token')")
            == server.token
        )
        assert not driver.execute_script("return localStorage.length"), (
            "nothing kept beyond the tab"
        )

        driver.refresh()  # kept for the tab: no prompt after a reload
        wait_until(driver, lambda d: d.find_element("id", "status").text == "live",
                   "the token was not kept for the tab")  # fmt: skip

        driver.find_element("id", "forget-token").click()
        wait_until(driver, lambda d: d.find_element("id", "token-prompt").is_displayed(),
                   "forgetting the token did not bring the prompt back")  # fmt: skip
        assert driver.execute_script("return sessionStorage.getItem('dbhandles.token')") is None
        assert "default" not in driver.find_element("id", "handles").text, "nothing left on screen"


def test_dashboard_link_with_the_token(home: Path) -> None:
    """The link `jtag serve` prints the first time carries the token; the page drops it from the
    address and keeps it for the tab."""
    with ServerProcess(home) as server, chromium() as driver:
        open_dashboard(driver, server)
        wait_until(driver, lambda d: d.find_element("id", "status").text == "live",
                   "the token in the link was not used")  # fmt: skip
        wait_until(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true",
                   "the dashboard did not load with the token")  # fmt: skip
        assert "#token" not in driver.current_url, "the token is removed from the address bar"
        assert not page_errors(driver)
        assert not driver.find_element("id", "token-prompt").is_displayed()


def test_dashboard_imports_a_jsonl_file(home: Path, tmp_path: Path) -> None:
    """The import form starts data/import on the server, shows the result and the new records."""
    from selenium.webdriver.support.ui import Select

    source = tmp_path / "examples.jsonl"
    lines = [orjson.dumps({"messages": [{"role": "user", "content": f"q{i}"}],
                           "metadata": {"qualityScore": i / 2000}}) for i in range(2000)]  # fmt: skip
    source.write_bytes(b"\n".join(lines) + b"\n{broken\n")
    output = tmp_path / "imported.sqlite"
    with ServerProcess(home) as server, chromium() as driver:
        open_dashboard(driver, server)
        wait_until(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true",
                   "the dashboard did not finish loading")  # fmt: skip

        # A missing file is reported in the banner; nothing is opened.
        driver.find_element("id", "import-input").send_keys(str(tmp_path / "missing.jsonl"))
        driver.find_element("id", "import-output").send_keys(str(output))
        driver.find_element("id", "import-submit").click()
        wait_until(driver, lambda d: page_errors(d), "the missing file was not reported")
        assert "not_found" in page_errors(driver)[0]

        field = driver.find_element("id", "import-input")
        field.clear()
        field.send_keys(str(source))
        Select(driver.find_element("id", "import-on-error")).select_by_value("skip")
        driver.find_element("id", "import-submit").click()
        wait_until(driver, lambda d: d.find_element("id", "import-progress").get_attribute("data-done") == "true",
                   "the import did not finish")  # fmt: skip
        status = driver.find_element("id", "import-status").text
        assert status.startswith("2,000 records imported, 0 already present, 1 line set aside")
        assert driver.find_element("id", "import-bar").get_attribute("value") == "1"
        wait_until(driver, lambda d: len(row_ids(d)) == 25, "the imported records are not listed")
        wait_until(driver, lambda d: chip_count(d) == "2,000", "the collection count is wrong")
        assert "import:done" in driver.find_element("id", "activity").text
        assert not page_errors(driver)
        with Client(server.url, server.token) as client:
            handles = client.execute("data/list-handles")["handles"]
        assert [h["config"]["path"] for h in handles if not h["isDefault"]] == [str(output)]


def test_dashboard_edits_a_foreign_table_row(home: Path, tmp_path: Path) -> None:
    """A row of a table dbhandles did not create, with an integer key and a generated column: the
    editor sends the id in a form the API takes and only the fields that changed."""
    import sqlite3

    db_path = tmp_path / "legacy.sqlite"
    conn = sqlite3.connect(db_path)
    conn.executescript(
        "CREATE TABLE books (price REAL, id INTEGER PRIMARY KEY, title TEXT NOT NULL, "
        "title_len INTEGER GENERATED ALWAYS AS (length(title)));"
        "INSERT INTO books (price, id, title) VALUES (9.5, 7, 'Solaris');"
    )
    conn.close()
    with ServerProcess(home) as server, chromium() as driver:
        open_dashboard(driver, server)
        wait_until(driver, lambda d: d.find_element("id", "status").text == "live",
                   "the WebSocket never opened")  # fmt: skip
        driver.find_element("id", "open-path").send_keys(str(db_path))
        driver.find_element("id", "open-alias").send_keys("legacy")
        driver.find_element("id", "open-submit").click()
        wait_until(driver, lambda d: d.find_element("id", "handle-title").text == "legacy",
                   "the new handle was not selected")  # fmt: skip
        wait_until(driver, lambda d: row_ids(d) == ["7"], "the table's row is not listed")
        driver.find_element("css selector", '#records-table tbody tr[data-id="7"]').click()
        area = driver.find_element("id", "editor-data")
        edited = orjson.loads(area.get_attribute("value") or "{}")
        assert edited == {"price": 9.5, "title": "Solaris", "title_len": 7}
        area.clear()
        area.send_keys(orjson.dumps({**edited, "title": "Solaris (2nd ed.)"}).decode())
        driver.find_element("id", "editor-save").click()
        wait_until(driver, lambda d: not d.find_element("id", "editor").is_displayed() or page_errors(d),
                   "the editor did not close")  # fmt: skip
        assert not page_errors(driver)
        conn = sqlite3.connect(db_path)
        try:
            assert conn.execute("SELECT id, title, title_len FROM books").fetchall() == [
                (7, "Solaris (2nd ed.)", 17)
            ]
        finally:
            conn.close()
