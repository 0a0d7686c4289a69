"""examples/django_thermostat end to end: the Django project under the real daemon (its
``http`` gateway serving Django's views and Channels' WebSocket consumer, its ``mqtt``
gateway the device consumer), a real Mosquitto, the sqlite database in a temp dir. A device's
reading published over MQTT is stored through the ORM and pushed to the page over the
WebSocket; first to a ``websockets`` client, then to the page in a real Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from daemon_helpers import ROOT, Daemon, client, until_reply
from playwright.async_api import expect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from gateways.testing.browser import PageWatch

EXAMPLE = ROOT / "examples" / "django_thermostat"

pytestmark = pytest.mark.mosquitto


@dataclass
class Site:
    """The example's daemon, serving on ``url``, storing in ``database``."""

    url: str
    database: Path
    daemon: Daemon
    mosquitto: Any

    @property
    def websocket_url(self) -> str:
        """The page's WebSocket, served by Channels' consumer."""
        return self.url.replace("http://", "ws://") + "/ws/devices/"

    async def publish(self, device: str, temperature: float) -> None:
        """Publish a reading at QoS 1 from an outside client, as a device would."""
        await self.publish_raw(device, json.dumps({"temperature": temperature}).encode())

    async def publish_raw(self, device: str, payload: bytes) -> None:
        """Publish ``payload`` on the device's telemetry topic at QoS 1."""
        async with asyncio.timeout(10), client(self.mosquitto) as c:
            await c.publish(f"devices/{device}/telemetry", payload, qos=1)

    async def page(self) -> str:
        """GET the page: Django's view, rendered from the database."""
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.url + "/") as response,
        ):
            assert response.status == 200
            assert response.content_type == "text/html"
            return await response.text()

    def readings(self, device: str) -> list[float]:
        """The temperatures of ``device`` in the site's sqlite database, oldest first."""
        with sqlite3.connect(self.database, timeout=10) as db:
            rows = db.execute(
                "SELECT r.temperature FROM devices_reading r JOIN devices_device d"
                " ON r.device_id = d.id WHERE d.name = ? ORDER BY r.id",
                (device,),
            ).fetchall()
        return [row[0] for row in rows]

    def fail(self, why: str) -> None:
        """Stop the daemon and fail the test with its output."""
        self.daemon.stop()
        pytest.fail(f"{why}; the daemon said:\n{self.daemon.output}")


def migrate(database: Path) -> None:
    """``manage.py migrate`` with the example's settings, on ``database``."""
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=EXAMPLE,
        env={**os.environ, "PYTHONPATH": str(ROOT), "THERMOSTAT_DB": str(database)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def page_served(site: Site, within: float = 30) -> None:
    """Wait until the http gateway serves the page (the daemon is starting)."""
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while asyncio.get_running_loop().time() < deadline:
            if site.daemon.process.poll() is not None:
                site.fail("the daemon exited")
            try:
                async with session.get(site.url + "/") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
    site.fail(f"no page at {site.url}/ within {within} s")


@pytest.fixture
async def site(tmp_path: Path, mosquitto: Any, free_port: Callable[[], int]) -> AsyncIterator[Site]:
    """The example's gateway.yaml on ``mosquitto`` and a free HTTP port, its database
    migrated in ``tmp_path``; its MQTT side is proved up by the device ``warmup``, whose
    state comes back once its reading was handled."""
    database = tmp_path / "thermostat.sqlite3"
    await asyncio.to_thread(migrate, database)
    port = free_port()
    env = {
        "MQTT_URL": mosquitto.url,
        "HTTP_PORT": str(port),
        "THERMOSTAT_DB": str(database),
        "THERMOSTAT_ALERT_ABOVE": "30",
        "LOG_LEVEL": "INFO",
    }
    daemon = Daemon(EXAMPLE / "gateway.yaml", env)
    started = Site(f"http://127.0.0.1:{port}", database, daemon, mosquitto)
    try:
        await page_served(started)
        async with client(mosquitto, "devices/warmup/state") as c:
            await until_reply(
                c, "devices/warmup/telemetry", b'{"temperature": 20}', "devices/warmup/state"
            )
        yield started
    finally:
        if daemon.process.returncode is None:
            daemon.stop()


async def next_about(ws: ClientConnection, device: str, within: float = 10) -> dict[str, Any]:
    """The next message on the WebSocket about ``device`` (a late warm-up reading may come
    first)."""
    async with asyncio.timeout(within):
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message.get("device_id") == device:
                return message


async def test_a_reading_is_stored_and_pushed_to_the_websocket(site: Site) -> None:
    page = await site.page()
    assert "<h1>Thermostats</h1>" in page
    assert 'data-device="warmup"' in page  # the view read the device from the database
    assert 'data-device="kitchen"' not in page

    # Channels' AllowedHostsOriginValidator: another site's page may not connect.
    with pytest.raises(InvalidStatus) as refused_origin:
        async with connect(site.websocket_url, origin=Origin("http://elsewhere.example")):
            pass
    assert refused_origin.value.response.status_code == 403
    async with connect(site.websocket_url, origin=Origin(site.url), open_timeout=10) as ws:
        # Not JSON: logged and skipped; the device's consumer goes on (its next reading is
        # its first).
        await site.publish_raw("kitchen", b"not json")
        await site.publish("kitchen", 21.5)
        reading = await next_about(ws, "kitchen")
        assert reading.pop("updated")
        assert reading == {
            "type": "reading",
            "device_id": "kitchen",
            "last": 21.5,
            "avg": 21.5,
            "count": 1,
        }
        await site.publish("kitchen", 31.0)
        reading = await next_about(ws, "kitchen")
        assert (reading["type"], reading["last"], reading["avg"], reading["count"]) == (
            "reading",
            31.0,
            26.25,
            2,
        )
        alert = await next_about(ws, "kitchen")
        assert alert == {
            "type": "alert",
            "device_id": "kitchen",
            "temperature": 31.0,
            "threshold": 30.0,
        }
    assert site.readings("kitchen") == [21.5, 31.0]

    page = await site.page()
    assert 'data-device="kitchen"' in page

    assert site.daemon.stop() == 0, site.daemon.output
    assert "Traceback" not in site.daemon.output, site.daemon.output
    refused = [line for line in site.daemon.output.splitlines() if "b'not json'" in line]
    assert len(refused) == 1, site.daemon.output  # the payload that is not JSON, logged
    assert "WARNING" in refused[0]
    assert "devices/kitchen/telemetry" in refused[0]


async def test_the_page_shows_a_reading_live_in_a_real_browser(site: Site, browser: Any) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        watch = PageWatch(page)
        await page.goto(site.url + "/", timeout=15_000)
        await expect(page.locator("#status")).to_have_attribute(
            "data-state", "open", timeout=10_000
        )
        assert await page.locator('tr[data-device="hall"]').count() == 0
        # Set on this document: still there afterwards, so the page was not reloaded.
        await page.evaluate("window.notReloaded = true")

        await site.publish("hall", 18.5)
        row = page.locator('tr[data-device="hall"]')
        await expect(row.locator('[data-field="last"]')).to_have_text("18.5", timeout=10_000)
        await expect(row.locator('[data-field="count"]')).to_have_text("1", timeout=10_000)
        await site.publish("hall", 35)
        await expect(row.locator('[data-field="avg"]')).to_have_text("26.8", timeout=10_000)
        await expect(page.locator("#alerts li")).to_have_text(
            "Alert: hall at 35.0 °C, above 30.0 °C", timeout=10_000
        )
        await expect(row).to_have_class(re.compile(r"\balert\b"), timeout=10_000)
        assert await page.evaluate("window.notReloaded") is True
        assert watch.clean, watch
    finally:
        await context.close()
    assert site.readings("hall") == [18.5, 35.0]
