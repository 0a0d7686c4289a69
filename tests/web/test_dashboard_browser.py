"""The dashboard in a real browser (Debian's Chromium under Playwright): the daemon
(``python -m gateways run FILE``) with an MQTT gateway on a real Mosquitto; the page follows
the broker going away and coming back without a reload, shows an error's HTML as text, and
does nothing a page must not do (``PageWatch``); with a Redis state store, its card follows
redis-server frozen (SIGSTOP) and started again.

With ``ASGI_GATEWAY_SCREENSHOTS=1`` in the environment the test also writes the page to
``docs/images/dashboard.png`` (the screenshot in docs/deployment.md)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from daemon_helpers import ROOT, client, until_reply
from playwright.async_api import expect

from gateways.testing.browser import PageWatch

pytestmark = pytest.mark.mosquitto

#: A scope key that is HTML: the crashy application's consumer raises with it in its text.
EVIL = "<img src=x onerror=alert(1)>"
SCREENSHOT = ROOT / "docs" / "images" / "dashboard.png"

CONFIG = """\
application: crashy:application
gateways:
  devices:
    type: mqtt
    broker: ${MQTT_URL}
    reconnect: {initial: 0.1, maximum: 0.5}
monitoring:
  port: ${MONITORING_PORT}
"""


async def until_ready(base: str, timeout: float = 20) -> None:
    """Poll ``/readyz`` until it answers 200."""
    async with asyncio.timeout(timeout), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def test_the_dashboard_follows_the_broker_live_in_a_browser(
    mosquitto: Any,
    run_daemon: Any,
    free_port: Callable[[], int],
    browser: Any,
    tmp_path: Path,
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG)
    port = free_port()
    daemon = run_daemon(config, MONITORING_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    await until_ready(base)
    async with client(mosquitto, "work/+/done") as c:
        for device in ("kitchen", "hall", "porch", EVIL):
            await until_reply(c, f"work/{device}", b"x", f"work/{device}/done")
        await c.publish(f"work/{EVIL}", b"boom", qos=1)  # its consumer raises: an ERROR

    # Without JavaScript: the snapshot the server rendered.
    plain = await browser.new_context(java_script_enabled=False)
    try:
        still = await plain.new_page()
        await still.goto(f"{base}/")
        cell = still.locator('tr[data-gateway="devices"] td[data-field="state"]')
        assert await cell.inner_text() == "connected"
        assert await still.locator("#status-text").inner_text() == "Snapshot"
        assert EVIL in await still.locator("#errors pre.message").first.inner_text()
        assert await still.locator("#store-card").is_hidden()  # no state: section
    finally:
        await plain.close()

    context = await browser.new_context(viewport={"width": 1100, "height": 470})
    page = await context.new_page()
    watch = PageWatch(page)
    try:
        await page.goto(f"{base}/")
        state = page.locator('tr[data-gateway="devices"] td[data-field="state"]')
        await expect(state).to_have_text("connected")
        await expect(page.locator('#status[data-state="live"]')).to_have_count(1, timeout=10_000)
        await page.evaluate("() => { window.loadedOnce = true; }")  # gone if the page reloads

        # The error's HTML is text: no element was made of it.
        message = page.locator("#errors pre.message").first
        await expect(message).to_contain_text(f"RuntimeError: worker {EVIL} hit a bad payload")
        assert await page.locator("#errors img, #errors [onerror]").count() == 0
        assert await page.locator("#no-errors").is_hidden()
        assert await page.locator("#store-card").is_hidden()  # live, still no store

        mosquitto.stop()
        await expect(state).to_have_text("disconnected", timeout=20_000)
        await expect(state).to_have_attribute("data-connected", "false")
        await expect(page.locator('[data-total="connected"]')).to_have_text("0")

        mosquitto.start()
        await expect(state).to_have_text("connected", timeout=30_000)
        await expect(state).to_have_attribute("data-connected", "true")
        assert await page.evaluate("() => window.loadedOnce === true"), "the page reloaded"
        scopes = page.locator('tr[data-gateway="devices"] td[data-field="scopes"]')
        assert int(await scopes.inner_text()) >= 3  # the crashed scope ended

        # Events while the page watches: the count goes up live, and so do events per second.
        received = page.locator('tr[data-gateway="devices"] td[data-field="events_received"]')
        before = int(await received.inner_text())
        async with client(mosquitto, "work/+/done") as c:
            await until_reply(c, "work/kitchen", b"y", "work/kitchen/done")
            for n in range(40):
                await c.publish(f"work/{('kitchen', 'hall', 'porch')[n % 3]}", b"z", qos=1)
            await page.wait_for_function(
                "(least) => Number(document.querySelector("
                '\'tr[data-gateway="devices"] td[data-field="events_received"]\''
                ").textContent) >= least",
                arg=before + 41,
                timeout=15_000,
            )
        rate = page.locator('tr[data-gateway="devices"] td[data-field="events_per_second"]')
        assert float(await rate.inner_text()) > 0
        assert float(await page.locator('[data-total="events_per_second"]').inner_text()) > 0
        if os.environ.get("ASGI_GATEWAY_SCREENSHOTS"):
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert watch.clean, watch
    finally:
        await context.close()
    assert daemon.stop() == 0, daemon.output


async def test_the_state_store_card_follows_redis_live_in_a_browser(
    mosquitto: Any,
    redis_server: Any,
    run_daemon: Any,
    free_port: Callable[[], int],
    browser: Any,
    tmp_path: Path,
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG + 'state:\n  backend: redis\n  hosts: ["${REDIS_URL}"]\n')
    port = free_port()
    daemon = run_daemon(config, MONITORING_PORT=str(port), REDIS_URL=redis_server.url)
    base = f"http://127.0.0.1:{port}"
    await until_ready(base)
    context = await browser.new_context()
    page = await context.new_page()
    watch = PageWatch(page)
    try:
        await page.goto(f"{base}/")
        store = page.locator("#state-store")
        await expect(page.locator("#store-card")).to_be_visible()
        await expect(store).to_have_text("redis: up")
        await expect(page.locator('#status[data-state="live"]')).to_have_count(1, timeout=10_000)
        await page.evaluate("() => { window.loadedOnce = true; }")

        redis_server.pause()  # SIGSTOP: no answer
        await expect(store).to_have_text("redis: unavailable: no answer within 1 s", timeout=20_000)
        await expect(store).to_have_attribute("data-up", "false")
        redis_server.kill()
        await asyncio.to_thread(redis_server.start)
        await expect(store).to_have_text("redis: up", timeout=20_000)
        await expect(store).to_have_attribute("data-up", "true")
        assert await page.evaluate("() => window.loadedOnce === true"), "the page reloaded"
        assert watch.clean, watch
    finally:
        await context.close()
    assert daemon.stop() == 0, daemon.output
