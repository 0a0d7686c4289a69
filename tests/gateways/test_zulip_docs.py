"""docs/zulip.md: the offline testing example runs as shown, the options table lists every
option of the model, and the YAML shown is examples/chatbot/zulip.yaml."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from gateways.zulip import ZulipGatewayOptions

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "zulip.md").read_text()


async def test_the_documented_bot_test_passes() -> None:
    [example] = [
        b for b in re.findall(r"```python\n(.*?)```", DOC, re.DOTALL) if "test_echo_bot" in b
    ]
    namespace: dict[str, Any] = {}
    exec(compile(example, "docs/zulip.md", "exec"), namespace)  # noqa: S102
    async with asyncio.timeout(20):
        await namespace["test_echo_bot"]()


def test_every_option_is_documented() -> None:
    documented = set(re.findall(r"^\| `(\w+)`", DOC, re.MULTILINE))
    own = set(ZulipGatewayOptions.model_fields) - {
        "idle_timeout",
        "max_scopes",
        "max_queued_events",
        "disconnect_grace",
    }
    assert own <= documented, f"not in docs/zulip.md: {sorted(own - documented)}"


def test_the_yaml_shown_is_the_example_file() -> None:
    [shown] = re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL)
    assert shown in (ROOT / "examples" / "chatbot" / "zulip.yaml").read_text()
