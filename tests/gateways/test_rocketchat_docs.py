"""docs/rocketchat.md: the offline testing example runs as shown, the options table lists
every option of the model, and the YAML it shows is the shipped example's."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from gateways.rocketchat import RocketChatGatewayOptions

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "rocketchat.md").read_text()


async def test_the_documented_bot_test_passes() -> None:
    [example] = [
        b for b in re.findall(r"```python\n(.*?)```", DOC, re.DOTALL) if "test_echo_bot" in b
    ]
    namespace: dict[str, Any] = {}
    exec(compile(example, "docs/rocketchat.md", "exec"), namespace)  # noqa: S102
    async with asyncio.timeout(20):
        await namespace["test_echo_bot"]()


def test_every_option_is_documented() -> None:
    documented = set(re.findall(r"^\| `(\w+)` \|", DOC, re.MULTILINE))
    own = set(RocketChatGatewayOptions.model_fields) - {
        "idle_timeout",
        "max_scopes",
        "max_queued_events",
        "disconnect_grace",
        "conversation_key",
        "conversations",
    }
    assert own <= documented, f"not in docs/rocketchat.md: {sorted(own - documented)}"
    assert documented - own == set(), f"documented, not options: {sorted(documented - own)}"


def test_the_yaml_shown_is_the_example_file() -> None:
    shown = re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL)[0]
    example = (ROOT / "examples" / "chatbot" / "rocketchat.yaml").read_text()
    for line in shown.strip().splitlines():
        assert line in example, line
