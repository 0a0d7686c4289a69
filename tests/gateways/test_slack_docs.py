"""docs/slack.md: the offline testing example runs as shown, and the options table lists
every option of the model."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from gateways.slack.options import SlackGatewayOptions

DOC = (Path(__file__).resolve().parents[2] / "docs" / "slack.md").read_text()


async def test_the_documented_bot_test_passes() -> None:
    [example] = [
        b for b in re.findall(r"```python\n(.*?)```", DOC, re.DOTALL) if "test_echo_bot" in b
    ]
    namespace: dict[str, Any] = {}
    exec(compile(example, "docs/slack.md", "exec"), namespace)  # noqa: S102
    async with asyncio.timeout(20):
        await namespace["test_echo_bot"]()


def test_every_option_is_documented() -> None:
    documented = set(re.findall(r"^\| `(\w+)` \|", DOC, re.MULTILINE))
    own = set(SlackGatewayOptions.model_fields) - {
        "idle_timeout",
        "max_scopes",
        "max_queued_events",
        "disconnect_grace",
    }
    assert own <= documented, f"not in docs/slack.md: {sorted(own - documented)}"
