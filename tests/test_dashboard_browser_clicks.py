"""Quick clicks in a real browser (issue 16, bug 8): five clicks 80 ms apart on the seed's + ("draw again") each
count, and no picture request fails (st.image's media files used to expire between quick reruns: a 404 in the
console).

Reuses the server fixture and helpers of tests/test_dashboard_browser.py.
"""

import pytest
from test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, WIDTH, dashboard_url, panel, wait_idle  # noqa: F401

pytestmark = pytest.mark.browser


def test_quick_clicks_drawing_again_all_count_and_no_picture_is_missing(dashboard_url):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            failed = []
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.on("console", lambda m: failed.append(m.text) if m.type == "error" and "404" in m.text else None)
            page.goto(dashboard_url + "?model=tiny%2F2&page=Random+samples")
            button = panel(page).locator("[data-testid=stNumberInputStepUp]")
            expect(button).to_be_visible(timeout=90000)
            wait_idle(page)
            for _ in range(5):
                button.click()
                page.wait_for_timeout(80)
            expect(panel(page).get_by_text("seed 5,", exact=False)).to_be_visible(timeout=30000)
            wait_idle(page)
            page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stTabPanel] .vk-grid img')]"
                                   ".every(e => e.complete && e.naturalWidth > 0)", timeout=30000)
            assert panel(page).locator(".vk-grid img").count() == 36
            assert not failed, failed
        finally:
            browser.close()
