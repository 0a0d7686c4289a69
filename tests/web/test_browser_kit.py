"""The browser test kit (gateways.testing.browser): Debian's Chromium under Playwright loads
a page served on loopback, and PageWatch sees what a page must not do."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateways.listener import bound_url, listen
from gateways.testing.browser import PageWatch

PAGE = """<!doctype html><title>kit</title><link rel=icon href="data:,"><p id=p>ready</p>
<button id=b onclick="alert('boom'); console.error('bad'); throw new Error('oops')">x</button>"""


async def test_chromium_loads_a_loopback_page_and_page_watch_sees_dialogs_and_errors(
    browser: Any,
) -> None:
    async def page_handler(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page_handler)
    runner = await listen(app, "127.0.0.1", 0, "test")
    try:
        context = await browser.new_context()
        page = await context.new_page()
        watch = PageWatch(page)
        await page.goto(bound_url(runner, "/") or "")
        assert await page.inner_text("#p") == "ready"
        assert watch.clean, watch
        await page.click("#b")
        await page.wait_for_timeout(200)
        assert watch.dialogs == ["boom"]
        assert watch.console_errors == ["bad"]
        assert len(watch.page_errors) == 1
        assert "oops" in watch.page_errors[0]
        assert not watch.clean
    finally:
        await runner.cleanup()
