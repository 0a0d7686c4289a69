"""The HTTP gateway in the real daemon (``python -m gateways run FILE``) beside an MQTT
gateway and a web chat, sharing the in-memory channel layer: a Channels-style application
with http, websocket, mqtt and chat parts runs whole. A reading published by an outside MQTT
client reaches a browser's WebSocket and a chat conversation through one group, and SIGTERM
drains every gateway cleanly."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from daemon_helpers import client

from gateways.testing.webchat import WebChatClient

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(90)]

CONFIG = """\
application: http_app:application
layer:
  type: memory
gateways:
  devices:
    type: mqtt
    broker: ${MQTT_URL}
  web:
    type: http
    port: ${HTTP_PORT}
    max_body_size: 1024
  chat:
    type: webchat
    port: ${WEBCHAT_PORT}
"""


async def until_serving(url: str, daemon: Any) -> None:
    """Until ``GET /health`` answers (the daemon is starting), bounded by the test's timeout."""
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            assert daemon.process.poll() is None, daemon.stop(None)
            try:
                if (await http.get(f"{url}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


async def test_an_mqtt_reading_reaches_a_browser_through_a_group(
    mosquitto: Any, run_daemon: Any, tmp_path: Path, free_port: Any
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG)
    port = free_port()
    chat_port = free_port()
    daemon = run_daemon(config, HTTP_PORT=str(port), WEBCHAT_PORT=str(chat_port))
    await until_serving(f"http://127.0.0.1:{port}", daemon)
    # A web chat conversation joins the same group: chat beside http, websocket and mqtt.
    chat = WebChatClient(f"http://127.0.0.1:{chat_port}/")
    await chat.connect()
    await chat.say("last")
    assert (await chat.answer())["text"] == "no reading yet"
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as browser:
        assert json.loads(await asyncio.wait_for(browser.recv(), 10)) == {"joined": "readings"}
        async with client(mosquitto) as device:
            # The MQTT gateway may still be subscribing: publish until a reading arrives.
            async with asyncio.timeout(20):
                while True:
                    await device.publish("sensors/kitchen", b"21.5", qos=1)
                    try:
                        reading = json.loads(await asyncio.wait_for(browser.recv(), 0.5))
                        break
                    except TimeoutError:
                        continue
        assert reading == {"sensor": "kitchen", "value": "21.5"}
        await chat.say("last")
        assert (await chat.answer())["text"] == "kitchen: 21.5"
        await chat.close()
        # The gateway's limits hold in the daemon too.
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.post(f"http://127.0.0.1:{port}/health", content=b"x" * 2000)
            assert answer.status_code == 413
        # SIGTERM: the WebSocket is closed, both gateways drain, the daemon exits 0.
        stopping = asyncio.create_task(asyncio.to_thread(daemon.stop))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(browser.recv(), 20)
        assert await stopping == 0
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012
    assert "Traceback" not in daemon.output, daemon.output
    assert "Gateway 'web' serving http://127.0.0.1:" in daemon.output
    assert "Gateway 'web': Shutting down" in daemon.output
