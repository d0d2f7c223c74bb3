"""The dashboard in a real headless Chromium shows and sends values exactly: numbers a double cannot
hold, invisible characters, a foreign table's createdAt/version columns; "Forget token" leaves
nothing on screen; a `#token=` link is never used silently."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbhandles.client import Client
from tests.servers import ServerProcess, chromium, envelope_of, jtag_env, run_jtag
from tests.test_browser import open_dashboard, page_errors, row_ids, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.needs_server]

BIG = 2**53  # 9007199254740992: the first integer after it a double cannot hold


def cells(driver: Any) -> list[dict[str, str]]:
    """The grid as {column: shown text} rows, read in one script call."""
    rows = driver.execute_script(
        "const heads = [...document.querySelectorAll('#records-table thead th')].map((h) => h.textContent);"
        "return [...document.querySelectorAll('#records-table tbody tr')].map((r) =>"
        " Object.fromEntries([...r.cells].map((c, i) => [heads[i], c.textContent])));"
    )
    return [dict(r) for r in rows]


def open_sqlite(driver: Any, path: Path, alias: str) -> None:
    driver.find_element("id", "open-path").send_keys(str(path))
    driver.find_element("id", "open-alias").send_keys(alias)
    driver.find_element("id", "open-submit").click()
    wait_until(driver, lambda d: d.find_element("id", "handle-title").text == alias,
               "the new handle was not selected")  # fmt: skip


def test_foreign_table_keys_and_numbers_stay_exact(home: Path, tmp_path: Path) -> None:
    """Keys past 2^53 stay apart (shown, edited and deleted by their own digits), numbers show as
    their JSON text, text that looks like a number is quoted, direction characters are escaped,
    and a foreign table's createdAt/version columns are data."""
    db_path = tmp_path / "big.sqlite"
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, n INTEGER, f REAL, s TEXT, "
                 "createdAt TEXT, version INTEGER)")  # fmt: skip
    conn.executemany("INSERT INTO big VALUES (?, ?, ?, ?, ?, ?)", [
        (BIG, 1, 0.1234567, "plain", "made by hand", 41),
        (BIG + 1, 2**62 + 1, 1e-300, "1", "also by hand", 42),
        (5, -7, 1e308, "a\u202eb\u200bc\u2028d", None, None),
    ])  # fmt: skip
    conn.commit()
    conn.close()
    with ServerProcess(home) as server, chromium() as driver:
        open_dashboard(driver, server)
        open_sqlite(driver, db_path, "big")
        wait_until(driver, lambda d: len(row_ids(d)) == 3, "the table's rows are not listed")
        assert sorted(row_ids(driver)) == sorted([str(BIG), str(BIG + 1), "5"])
        shown = {r["id"]: r for r in cells(driver)}
        assert shown[str(BIG)]["f"] == "0.1234567"
        assert shown[str(BIG + 1)]["n"] == str(2**62 + 1)
        assert shown[str(BIG + 1)]["f"] == "1e-300"
        assert shown["5"]["f"] == "1e+308"
        assert shown[str(BIG + 1)]["s"] == '"1"', "text that reads as a number is quoted"
        assert shown["5"]["s"] == "a\\u202eb\\u200bc\\u2028d"
        assert shown[str(BIG)]["createdAt"] == "made by hand" and shown[str(BIG)]["version"] == "41"

        # Edit the ...993 row: its own row changes, with the integer exactly as typed.
        driver.find_element("css selector", f'#records-table tbody tr[data-id="{BIG + 1}"]').click()
        area = driver.find_element("id", "editor-data")
        assert str(2**62 + 1) in (area.get_attribute("value") or "")
        assert driver.find_element("id", "editor-id").get_attribute("value") == str(BIG + 1)
        area.clear()
        area.send_keys(f'{{"n": {BIG + 1}, "f": 1e-300, "s": "1", "version": 42}}')
        driver.find_element("id", "editor-save").click()
        wait_until(driver, lambda d: not d.find_element("id", "editor").is_displayed() or page_errors(d),
                   "the editor did not close")  # fmt: skip
        assert not page_errors(driver)
        conn = sqlite3.connect(db_path)
        try:
            assert conn.execute("SELECT id, n FROM big ORDER BY id").fetchall() == [
                (5, -7),
                (BIG, 1),
                (BIG + 1, BIG + 1),
            ]
        finally:
            conn.close()

        # Delete the ...993 row: the ...992 row stays.
        wait_until(driver, lambda d: str(BIG + 1) in row_ids(d), "the edited row is not listed")
        driver.find_element("css selector", f'#records-table tbody tr[data-id="{BIG + 1}"]').click()
        driver.find_element("id", "editor-delete").click()
        driver.find_element("id", "editor-delete").click()
        wait_until(driver, lambda d: sorted(row_ids(d)) == sorted([str(BIG), "5"]),
                   "the deleted row is still listed")  # fmt: skip
        conn = sqlite3.connect(db_path)
        try:
            assert [r[0] for r in conn.execute("SELECT id FROM big ORDER BY id")] == [5, BIG]
        finally:
            conn.close()


def test_editor_sends_numbers_as_typed_and_activity_escapes(home: Path) -> None:
    """A new record's integers past 2^53 and floats such as 1.0 arrive as typed; another client's
    id with direction characters shows escaped in the grid and the activity list."""
    with ServerProcess(home) as server, chromium() as driver:
        open_dashboard(driver, server)
        wait_until(driver, lambda d: d.find_element("id", "status").text == "live", "not live")
        driver.find_element("id", "new-record").click()
        driver.find_element("id", "editor-collection").send_keys("nums")
        driver.find_element("id", "editor-id").send_keys("n-1")
        area = driver.find_element("id", "editor-data")
        area.clear()
        area.send_keys(f'{{"n": {BIG + 1}, "f": 1.0, "big": -{2**63 - 3}}}')
        driver.find_element("id", "editor-save").click()
        wait_until(
            driver, lambda d: "n-1" in row_ids(d) or page_errors(d), "the record is not listed"
        )
        assert not page_errors(driver)
        assert not page_errors(driver)
        with Client(server.url, server.token) as client:
            data = client.execute("data/read", {"collection": "nums", "id": "n-1"})["data"]
            assert data["n"] == BIG + 1 and data["big"] == -(2**63 - 3)
            assert isinstance(data["f"], float)
            client.execute(
                "data/create", {"collection": "nums", "id": "x\u202ey", "data": {"n": 1}}
            )
        wait_until(
            driver, lambda d: "x\u202ey" in row_ids(d), "the other client's record is not listed"
        )
        assert "x\\u202ey" in driver.find_element("id", "activity").text
        assert "\u202e" not in driver.find_element("tag name", "body").text
        shown = {r["id"]: r for r in cells(driver)}
        assert shown["n-1"]["n"] == str(BIG + 1) and shown["x\\u202ey"]["n"] == "1"

        # An error that quotes the id shows it escaped too.
        driver.find_element("id", "new-record").click()
        driver.find_element("id", "editor-id").send_keys("x\u202ey")
        area = driver.find_element("id", "editor-data")
        area.clear()
        area.send_keys("{}")
        driver.find_element("id", "editor-save").click()
        wait_until(driver, lambda d: page_errors(d), "the error was not shown")
        assert "x\\u202ey" in page_errors(driver)[0] and "\u202e" not in page_errors(driver)[0]


def test_forget_token_clears_the_open_editor(home: Path) -> None:
    with ServerProcess(home) as server, chromium() as driver:
        with Client(server.url, server.token) as client:
            client.execute("data/create", {"collection": "secrets", "id": "s-1",
                                           "data": {"text": "the secret text"}})  # fmt: skip
        open_dashboard(driver, server)
        wait_until(driver, lambda d: row_ids(d) == ["s-1"], "the record is not listed")
        driver.find_element("css selector", '#records-table tbody tr[data-id="s-1"]').click()
        assert "the secret text" in (
            driver.find_element("id", "editor-data").get_attribute("value") or ""
        )
        driver.find_element("id", "forget-token").click()
        wait_until(driver, lambda d: d.find_element("id", "token-prompt").is_displayed(),
                   "forgetting the token did not bring the prompt back")  # fmt: skip
        assert not driver.find_element("id", "editor").is_displayed()
        assert driver.find_element("id", "editor-data").get_attribute("value") == ""
        assert driver.find_element("id", "editor-id").get_attribute("value") == ""
        html = driver.execute_script("return document.body.innerHTML")
        assert "secret" not in html, html[html.find("secret") - 300 :][:400]


def test_a_token_link_is_never_used_silently(home: Path) -> None:
    """A `#token=` link (on load or as a later hash change) shows the token's actor and waits for the
    user; the token leaves the address bar at once; the page is never scriptable by its opener."""
    with ServerProcess(home) as server, chromium() as driver:
        server.banner()
        created = run_jtag("token", "create", "--actor=alice", env=jtag_env(home))
        alice = envelope_of(created)["token"]
        assert httpx.get(server.url + "/").headers["cross-origin-opener-policy"] == "same-origin"

        # A fresh tab opened with alice's token: asked first, nothing runs as alice on its own.
        driver.get(f"{server.url}/#token={alice}")
        wait_until(driver, lambda d: d.find_element("id", "token-offer").is_displayed(), "no offer")
        assert "alice" in driver.find_element("id", "token-offer-text").text
        assert "#token" not in driver.current_url
        assert driver.execute_script("return sessionStorage.getItem('dbhandles.token')") is None
        driver.find_element("id", "token-offer-ignore").click()
        wait_until(driver, lambda d: d.find_element("id", "status").text == "token needed",
                   "ignoring the link's token did not ask for one")  # fmt: skip

        # A refused token is said to be refused, with no way to use it.
        driver.execute_script("location.hash = '#token=dbh_00000000_wrongwrongwrongwrongwrong'")
        wait_until(driver, lambda d: d.find_element("id", "token-offer").is_displayed(), "no offer")
        assert "refuses" in driver.find_element("id", "token-offer-text").text
        assert not driver.find_element("id", "token-offer-accept").is_displayed()
        driver.find_element("id", "token-offer-ignore").click()

        # The admin's tab gets alice's token by a hash change: asked, and accepting switches actor.
        driver.find_element("id", "token-input").send_keys(server.token)
        driver.find_element("id", "token-submit").click()
        wait_until(driver, lambda d: d.find_element("id", "status").text == "live", "not live")
        driver.execute_script(f"location.hash = '#token={alice}'")
        wait_until(driver, lambda d: d.find_element("id", "token-offer").is_displayed(), "no offer")
        assert "#token" not in driver.current_url
        assert "alice" in driver.find_element("id", "token-offer-text").text
        driver.find_element("id", "token-offer-accept").click()
        wait_until(driver, lambda d: "alice" in (d.find_element("id", "status").get_attribute("title") or ""),
                   "the accepted token was not used")  # fmt: skip
        assert driver.execute_script("return sessionStorage.getItem('dbhandles.token')") == alice

        # Opened by a page of another origin (localhost is not 127.0.0.1): no opener.
        other = server.url.replace("127.0.0.1", "localhost")
        driver.get(other + "/health")
        driver.execute_script(f"window.open('{server.url}/', 'dash')")
        wait_until(driver, lambda d: len(d.window_handles) == 2, "the window did not open")
        driver.switch_to.window(driver.window_handles[1])
        assert driver.execute_script("return window.opener") is None
