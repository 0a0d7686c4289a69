"""What the docs show is what the tests run: README code blocks are the example files
(which the daemon tests run against Mosquitto), and the README's test runs here."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def chunks(block: str) -> list[str]:
    """A block's runs of lines between blank lines, each without its comments."""
    parts = [p for p in re.split(r"\n\s*\n", block) if p.strip()]
    return [re.sub(r"[ \t]+#.*", "", p).strip() for p in parts]


def test_the_readme_starts_with_the_two_commands() -> None:
    commands = blocks("sh")[:2]
    assert "asgi-gateway run examples/thermostat/gateway.yaml" in commands[0]
    assert "apt-get install -y mosquitto" in commands[1]
    assert "python -m pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest\n" in ci
    # CI installs the same system packages and the same Python packages as the README says.
    packages = re.search(r"apt-get install -y ([\w\- ]+?) &&", commands[1])
    assert packages is not None
    installed = re.search(r"--no-install-recommends \\\n\s+([\w\- ]+?) >", ci)
    assert installed is not None
    assert packages.group(1).split() == installed.group(1).split()
    pip = re.search(r"pip install (.+?) &&", commands[1])
    assert pip is not None
    assert f"pip install -q {pip.group(1)}\n" in ci
    # And Synapse in its own venv, where gateways/testing/synapse.py looks for it.
    assert (
        "python3 -m venv .venv-synapse && .venv-synapse/bin/pip install matrix-synapse"
        in (commands[1])
    )
    assert "python3 -m venv .venv-synapse\n" in ci
    assert ".venv-synapse/bin/python -m pip install -q matrix-synapse\n" in ci


@pytest.mark.parametrize(
    ("index", "example"),
    [(0, "examples/echo.py")],
)
def test_readme_python_is_the_example_file(index: int, example: str) -> None:
    source = (ROOT / example).read_text()
    for chunk in chunks(blocks("python")[index]):
        assert chunk in source, f"README shows code that {example} does not have:\n{chunk}"


@pytest.mark.parametrize(
    ("index", "example"),
    [(0, "examples/echo.yaml"), (1, "examples/thermostat/gateway.yaml")],
)
def test_readme_yaml_is_in_the_example_file(index: int, example: str) -> None:
    source = re.sub(r"[ \t]+#.*", "", (ROOT / example).read_text())
    source = "\n".join(line.rstrip() for line in source.splitlines())
    for chunk in chunks(blocks("yaml")[index]):
        for line in chunk.splitlines():
            assert line.rstrip() in source, f"README shows {line!r}, not in {example}"


async def test_the_readmes_consumer_test_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    namespace: dict[str, Any] = {}
    exec(compile(blocks("python")[1], "README.md", "exec"), namespace)  # noqa: S102
    await namespace["test_echo"]()
    sys.modules.pop("echo", None)


def test_the_thermostat_output_the_readme_shows_is_what_the_consumer_publishes() -> None:
    """The README's mosquitto_sub lines are the JSON the consumer's publish_json writes; the
    daemon test checks the same values against Mosquitto."""
    import json

    shown = re.findall(r"^# (devices/kitchen/\S+) (\{.*\})$", README, re.MULTILINE)
    assert [topic for topic, _ in shown] == [
        "devices/kitchen/state",
        "devices/kitchen/state",
        "devices/kitchen/state/reply",
    ]
    for _, payload in shown:
        assert payload == json.dumps(json.loads(payload), separators=(",", ":"))
    assert json.loads(shown[-1][1]) == {"last": 22.5, "avg": 22.0, "count": 2}
