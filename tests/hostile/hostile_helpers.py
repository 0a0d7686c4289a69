"""What every hostile-input test checks: the log, and a well-behaved application."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[2]
#: The hypothesis profile (registered in this directory's conftest.py).
PROFILE = os.environ.get("HOSTILE_PROFILE", "hostile")
#: Multiplies each test's ``max_examples`` (5 when exploring).
SCALE = 5 if PROFILE == "hostile-explore" else 1


def hostile_settings(max_examples: int) -> settings:
    """The profile's settings with ``max_examples`` (times ``SCALE``)."""
    return settings(settings.get_profile(PROFILE), max_examples=max_examples * SCALE)


def chatbot_application() -> Any:
    """The shipped example's EchoBot (``examples/chatbot/chatbot.py``), answering only
    messages with visible text: the well-behaved application that must keep answering.

    The example as shipped echoes an empty or blank message too, and ``chat.send`` with no
    text raises ``GatewayError``, which ends its conversation's consumer with a traceback
    (reported in /work/handoff/hostile.md; ``PRIVMSG gwbot :`` shows it).
    """
    path = ROOT / "examples" / "chatbot" / "chatbot.py"
    spec = importlib.util.spec_from_file_location("hostile_chatbot", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from consumers import ProtocolTypeRouter
    from layer.state import MemoryStateStore

    class VisibleEchoBot(module.EchoBot):  # type: ignore[misc, name-defined]
        async def receive(self, message: Any) -> None:
            _, text = self.address(message)
            if text.strip():
                await super().receive(message)

    # Its count is durable state: a store of its own, as the YAML's state: section gives.
    return ProtocolTypeRouter({"chat": VisibleEchoBot.as_asgi(state_store=MemoryStateStore())})


class LogCheck:
    """Checks the records ``caplog`` took since ``mark()``.

    A hostile input may cost at most one WARNING line, never an ERROR, never a record with a
    traceback (``exc_info``), and no line may quote a secret.
    """

    def __init__(self, caplog: pytest.LogCaptureFixture, secrets: tuple[str, ...] = ()) -> None:
        self.caplog = caplog
        self.secrets = secrets
        self.start = 0
        caplog.set_level(logging.INFO)

    def mark(self) -> None:
        self.start = len(self.caplog.records)

    def records(self) -> list[logging.LogRecord]:
        return self.caplog.records[self.start :]

    def check(self, what: Any, *, warnings: int = 1) -> None:
        records = self.records()
        shown = [f"{r.levelname} {r.name}: {r.getMessage()[:300]}" for r in records]
        with_traceback = [r for r in records if r.exc_info or r.exc_text]
        assert not with_traceback, f"traceback logged for {what!r}: {shown}"
        errors = [r for r in records if r.levelno >= logging.ERROR]
        assert not errors, f"ERROR logged for {what!r}: {shown}"
        loud = [r for r in records if r.levelno >= logging.WARNING]
        assert len(loud) <= warnings, f"{len(loud)} WARNING lines for {what!r}: {shown}"
        for record in records:
            text = record.getMessage()
            for secret in self.secrets:
                assert secret not in text, f"a secret is logged for {what!r}: {shown}"


async def answered(server: Any, before: int, text: str, within: float = 10.0) -> None:
    """Wait until the Slack test server got a ``chat.postMessage`` of ``text`` after its
    first ``before`` ones."""
    async with asyncio.timeout(within):
        while True:
            calls = server.calls_to("chat.postMessage")[before:]
            if any(call.args.get("text") == text for call in calls):
                return
            await asyncio.sleep(0.05)
