"""docs/webchat.md: the bot test and the host site's token function run as shown, every option
is in the table, the YAML shown is examples/chatbot/webchat.yaml, and that example runs in the
daemon and answers a visitor."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from daemon_helpers import Daemon

from gateways.testing import free_port
from gateways.testing.webchat import WebChatClient, WebChatRefused
from gateways.webchat import WebChatGateway, WebChatGatewayOptions

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "webchat.md").read_text()
EXAMPLE = ROOT / "examples" / "chatbot" / "webchat.yaml"

pytestmark = pytest.mark.timeout(60)


def python_block(marker: str) -> dict[str, Any]:
    [block] = [b for b in re.findall(r"```python\n(.*?)```", DOC, re.DOTALL) if marker in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/webchat.md", "exec"), namespace)  # noqa: S102
    return namespace


async def test_the_documented_bot_test_passes() -> None:
    async with asyncio.timeout(20):
        await python_block("def test_echo_bot")["test_echo_bot"]()


async def test_the_documented_token_names_the_visitor() -> None:
    webchat_token = python_block("def webchat_token")["webchat_token"]
    secret = "the-host-site-and-the-gateway-share-this"
    gateway = WebChatGateway(
        "web",
        lambda *_: asyncio.sleep(0),
        WebChatGatewayOptions.model_validate({"port": 0, "token_secret": secret}),
    )
    await gateway.start()
    try:
        token = webchat_token(secret, "alice@example.com", "Alice")
        async with WebChatClient.connected(gateway.http_url or "", token=token) as chat:
            assert chat.welcome["user"]["identity"] == "webchat:alice@example.com"
            assert chat.welcome["user"]["name"] == "Alice"
        with pytest.raises(WebChatRefused):
            await WebChatClient(
                gateway.http_url or "", token=webchat_token(secret, "alice", minutes=-5)
            ).connect()
    finally:
        await gateway.stop()


def test_every_option_is_documented() -> None:
    documented = set(re.findall(r"^\| `(\w+)`", DOC, re.MULTILINE))
    own = set(WebChatGatewayOptions.model_fields) - {
        "idle_timeout",
        "max_scopes",
        "max_queued_events",
        "disconnect_grace",
        "conversation_key",
        "conversations",
    }
    assert own <= documented, f"not in docs/webchat.md: {sorted(own - documented)}"


def test_the_yaml_shown_is_the_example_file() -> None:
    [shown] = re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL)
    assert shown in EXAMPLE.read_text()


async def test_the_example_chatbot_answers_a_visitor_in_the_daemon() -> None:
    port = free_port()
    daemon = Daemon(EXAMPLE, {"WEBCHAT_PORT": str(port), "LOG_LEVEL": "INFO"})
    url = f"http://127.0.0.1:{port}/"
    chat = WebChatClient(url)
    try:
        async with asyncio.timeout(30):
            while True:
                try:
                    await chat.connect()
                    break
                except (
                    OSError,
                    aiohttp.ClientError,
                    WebChatRefused,
                ):  # the daemon is still starting
                    chat = WebChatClient(url)
                    await asyncio.sleep(0.2)
        await chat.say("hello")
        assert (await chat.answer())["text"] == "hello"
        await chat.reconnect()
        await chat.say("count")
        assert (await chat.answer())["text"] == "1 so far"
    finally:
        await chat.close()
        code = await asyncio.to_thread(daemon.stop, signal.SIGTERM)
    assert code == 0, daemon.output
    assert "Traceback" not in daemon.output
    assert "serving the web chat at" in daemon.output
