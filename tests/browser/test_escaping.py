"""Hostile texts in a real browser: every admin page that shows them, and the API docs, run no script.

The records come from tests/riskmodels/test_admin_escaping.py's builder (column names, model texts,
finding, reason, override and rationale texts that are XSS payloads); a dialog is what an injected
``alert(1)`` would open, so the pages are loaded with a dialog listener and must show the payloads as text.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import sign_in
from tests.riskmodels.test_admin_escaping import PAYLOADS, build_hostile_world, reader_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_no_admin_page_or_api_docs_page_runs_a_script_typed_into_a_record(  # noqa: ANN001
        browser, live_server, developer, validator, compliance_officer, underwriter, tmp_path):
    world = build_hostile_world(developer=developer, validator=validator, officer=compliance_officer,
                                underwriter=underwriter, folder=tmp_path)
    dialogs: list[str] = []
    pages = {}
    for reader, username in {"officer": compliance_officer.username, "validator": validator.username}.items():
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        sign_in(page, username, f"{username}-pass-123")
        pages[reader] = page

    for where, url in world.admin_pages().items():
        page = pages[reader_of(where)]
        page.goto(url)
        page.wait_for_load_state("load")
        assert dialogs == [], f"the {where} ran a script"
        text = page.locator("body").inner_text()
        for payload in PAYLOADS:
            assert payload in text, f"the {where} does not show {payload!r} as text"
        page.screenshot(path=str(tmp_path / f"{where.replace(' ', '-')}.png"), full_page=True)

    officer = pages["officer"]
    officer.goto("/api/docs/")
    officer.wait_for_selector(".swagger-ui .opblock")  # the schema was fetched and rendered
    officer.goto("/api/redoc/")
    officer.wait_for_selector("redoc [data-section-id]")
    officer.screenshot(path=str(tmp_path / "redoc.png"))
    assert dialogs == []
