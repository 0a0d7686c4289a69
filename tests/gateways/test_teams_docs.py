"""docs/teams.md: the offline testing example runs as shown, the options table lists every
option of the model, and the YAML shown is in examples/chatbot/teams.yaml."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from gateways.teams import TeamsGatewayOptions

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "teams.md").read_text()


async def test_the_documented_bot_test_passes() -> None:
    [example] = [
        b for b in re.findall(r"```python\n(.*?)```", DOC, re.DOTALL) if "test_echo_bot" in b
    ]
    namespace: dict[str, Any] = {}
    exec(compile(example, "docs/teams.md", "exec"), namespace)  # noqa: S102
    async with asyncio.timeout(20):
        await namespace["test_echo_bot"]()


def test_every_option_is_documented() -> None:
    documented = set(re.findall(r"^\| `(\w+)`", DOC, re.MULTILINE))
    own = set(TeamsGatewayOptions.model_fields) - {
        "idle_timeout",
        "max_scopes",
        "max_queued_events",
        "disconnect_grace",
        "conversation_key",
        "conversations",
    }
    assert own <= documented, f"not in docs/teams.md: {sorted(own - documented)}"


def test_the_yaml_shown_is_the_example_file() -> None:
    [shown] = re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL)
    assert shown in (ROOT / "examples" / "chatbot" / "teams.yaml").read_text()
