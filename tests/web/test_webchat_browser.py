"""The web chat in a real browser (Debian's Chromium under Playwright): the page answers,
keeps its conversation over a reload, shows hostile text as text, is refused from a foreign
Origin and with an expired token, and the widget opens a chat box on a host site's page.

With ``WEBCHAT_SCREENSHOTS=<folder>`` set, the page and the widget are photographed there
(``webchat.png``, ``webchat-widget.png``; docs/images/ holds the ones the docs show)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import expect

from consumers import ChatConsumer, ProtocolTypeRouter
from gateways.listener import bound_url, listen
from gateways.testing.browser import PageWatch
from gateways.testing.webchat import make_token
from gateways.webchat import WebChatGateway, WebChatGatewayOptions

pytestmark = pytest.mark.timeout(60)

SECRET = "s3cret-of-the-host-site-32-bytes-long!"
HOSTILE = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>"]
SHOTS = os.environ.get("WEBCHAT_SCREENSHOTS")


class Echo(ChatConsumer):
    """Echoes each message; ``md <text>`` comes back as Markdown."""

    async def receive(self, message: Any) -> None:
        text = message["text"]
        if text.startswith("md "):
            await self.say(text[3:], format="markdown")
        else:
            await self.reply(message, text)


@contextlib.asynccontextmanager
async def gateway(**options: Any) -> AsyncIterator[WebChatGateway]:
    app = ProtocolTypeRouter({"chat": Echo.as_asgi()})
    started = WebChatGateway("web", app, WebChatGatewayOptions(port=0, **options))
    await started.start()
    try:
        yield started
    finally:
        await started.stop(drain_timeout=5)


class HostSite:
    """A host site on another loopback port (another origin): one page with the widget of
    the gateway at ``gateway_url``, set once the gateway runs."""

    def __init__(self) -> None:
        self.url = ""
        self.gateway_url = ""

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(
            text='<!doctype html><html><head><title>Shop</title><link rel="icon" href="data:,">'
            "</head><body><h1>The shop</h1><p>Our products, and help in the corner.</p>"
            f'<script src="{self.gateway_url}widget.js" data-title="Help"></script>'
            "</body></html>",
            content_type="text/html",
        )


@contextlib.asynccontextmanager
async def host_site() -> AsyncIterator[HostSite]:
    site = HostSite()
    app = web.Application()
    app.router.add_get("/", site.page)
    runner = await listen(app, "127.0.0.1", 0, "host site")
    site.url = bound_url(runner, "/") or ""
    try:
        yield site
    finally:
        await runner.cleanup()


async def say(page: Any, text: str) -> None:
    await page.locator(".awc-input").fill(text)
    await page.locator(".awc-input").press("Enter")


async def test_the_page_answers_and_keeps_the_conversation_over_a_reload(browser: Any) -> None:
    async with gateway(title="Help desk") as chat:
        context = await browser.new_context()
        page = await context.new_page()
        watch = PageWatch(page)
        await page.goto(chat.http_url or "")
        await expect(page.locator(".awc-status")).to_have_text("connected")
        await say(page, "hello there")
        await expect(page.locator(".awc-bot .awc-text")).to_have_text(["hello there"])
        await expect(page.locator(".awc-me .awc-meta")).to_have_text(["✓"])
        [conversation] = [s.id for s in chat.sessions.sessions.values()]
        await page.reload()
        await expect(page.locator(".awc-status")).to_have_text("connected")
        await expect(page.locator(".awc-text")).to_have_text(["hello there", "hello there"])
        await say(page, "md **still** here")
        await expect(page.locator(".awc-bot .awc-text strong")).to_have_text("still")
        assert [s.id for s in chat.sessions.sessions.values()] == [conversation]
        assert len(chat.instances) == 1  # one conversation, one consumer
        if SHOTS:
            await page.screenshot(path=str(Path(SHOTS) / "webchat.png"))
        assert watch.clean, watch
        await context.close()


async def test_hostile_text_is_shown_as_text_with_no_dialog_and_no_error(browser: Any) -> None:
    async with gateway() as chat:
        context = await browser.new_context()
        page = await context.new_page()
        watch = PageWatch(page)
        await page.goto(chat.http_url or "")
        await expect(page.locator(".awc-status")).to_have_text("connected")
        for text in HOSTILE:
            await say(page, text)
        await say(page, "md [click](javascript:alert(3)) <img src=x onerror=alert(4)> `<b>`")
        bot = page.locator(".awc-bot .awc-text")
        await expect(bot).to_have_count(3)
        await expect(bot.nth(0)).to_have_text(HOSTILE[0])
        await expect(bot.nth(1)).to_have_text(HOSTILE[1])
        await expect(bot.nth(2).locator("code")).to_have_text("<b>")
        await expect(page.locator(".awc-me .awc-text")).to_have_text(
            [*HOSTILE, "md [click](javascript:alert(3)) <img src=x onerror=alert(4)> `<b>`"]
        )
        log = page.locator(".awc-log")
        assert await log.locator("img, script, b, a").count() == 0
        await page.reload()  # the stored transcript is drawn as text too
        await expect(page.locator(".awc-bot .awc-text")).to_have_count(3)
        assert await log.locator("img, script, b, a").count() == 0
        assert watch.clean, watch
        await context.close()


async def test_the_widget_on_a_host_site_chats_from_an_allowed_origin(browser: Any) -> None:
    async with host_site() as shop, gateway(allowed_origins=[shop.origin]) as chat:
        shop.gateway_url = chat.http_url or ""
        context = await browser.new_context(viewport={"width": 900, "height": 640})
        page = await context.new_page()
        watch = PageWatch(page)
        await page.goto(shop.url)
        await page.locator(".awc-launcher").click()
        await expect(page.locator(".awc-status")).to_have_text("connected")
        await say(page, "where is my order?")
        await expect(page.locator(".awc-bot .awc-text")).to_have_text(["where is my order?"])
        await page.reload()  # the box stays open, with its conversation
        await expect(page.locator(".awc-text")).to_have_count(2)
        await expect(page.locator(".awc-status")).to_have_text("connected")
        if SHOTS:
            await page.screenshot(path=str(Path(SHOTS) / "webchat-widget.png"))
        assert len(chat.instances) == 1
        assert watch.clean, watch
        await context.close()


async def test_a_page_of_a_foreign_origin_is_refused(
    browser: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "gateways.webchat")
    async with host_site() as shop, gateway() as chat:  # the shop's origin is not allowed
        shop.gateway_url = chat.http_url or ""
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(shop.url)
        await page.locator(".awc-launcher").click()
        await expect(page.locator(".awc-status")).to_have_text("reconnecting")
        await say(page, "let me in")
        await expect(page.locator(".awc-me .awc-meta")).to_have_text(["sending…"])
        assert chat.instances == {}
        assert chat.sessions.sessions == {}
        refused = [
            r.getMessage() for r in caplog.records if "refused a WebSocket" in r.getMessage()
        ]
        assert refused
        assert shop.origin in refused[0]
        await context.close()


async def test_an_expired_token_is_refused_and_the_page_says_so(browser: Any) -> None:
    async with gateway(token_secret=SECRET) as chat:
        context = await browser.new_context()
        page = await context.new_page()
        expired = make_token(SECRET, "alice", expires_in=-300)
        await page.goto(f"{chat.http_url}#token={expired}")
        await expect(page.locator(".awc-note .awc-text")).to_have_text(
            ["Your sign-in was refused or has expired."]
        )
        await expect(page.locator(".awc-status")).to_have_text("closed")
        assert "token" not in page.url  # taken out of the address bar
        assert chat.sessions.sessions == {}
        valid = make_token(SECRET, "alice", name="Alice")
        fresh = await context.new_page()
        await fresh.goto(f"{chat.http_url}#token={valid}")
        await expect(fresh.locator(".awc-status")).to_have_text("connected")
        [session] = chat.sessions.sessions.values()
        assert session.user["identity"] == "webchat:alice"
        await context.close()
