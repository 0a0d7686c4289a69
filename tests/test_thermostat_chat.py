"""Devices meet chat, end to end: the thermostat daemon with a real Mosquitto, chatting on
Slack (slack-bolt against SlackTestServer) and on the console (in a pseudo-terminal). The
chat consumer's answer travels over the channel layer from the device's consumer."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from daemon_helpers import ROOT, client, next_message, until_reply
from terminal_helpers import Reader

from gateways.testing.slack_payloads import DEFAULT_USER_ID
from gateways.testing.slack_server import SlackTestServer, message

EXAMPLE = ROOT / "examples" / "thermostat"
ALERTS = "C0ALERTS01"
DM = "D0DIRECT01"
#: The one Slack user in slack.yaml's operators group (SLACK_OPERATORS).
OPERATOR = "U0OPERATR1"

pytestmark = pytest.mark.mosquitto


def publish(mosquitto: Any, topic: str, data: dict[str, float]) -> None:
    """Publish JSON at QoS 1 from an outside client, as a device would (10 s at most)."""

    async def run() -> None:
        async with asyncio.timeout(10), aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
            await c.publish(topic, json.dumps(data), qos=1)

    asyncio.run(run())


def retained(mosquitto: Any, topic: str) -> Any:
    """The JSON retained on ``topic``, as a device subscribing now gets it (10 s at most)."""

    async def run() -> Any:
        async with asyncio.timeout(10), aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
            await c.subscribe(topic, qos=1)
            async for received in c.messages:
                return json.loads(received.payload)  # type: ignore[arg-type]
        return None

    return asyncio.run(run())


def handled_readings(mosquitto: Any, device: str) -> int:
    """The count in the device's retained state, 0 while it has none (1 s at most)."""

    async def run() -> int:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
            await c.subscribe(f"devices/{device}/state", qos=1)
            try:
                async with asyncio.timeout(1):
                    async for received in c.messages:
                        return int(json.loads(received.payload)["count"])  # type: ignore[arg-type]
            except TimeoutError:
                pass
        return 0

    return asyncio.run(run())


def readme_chat_lines() -> list[str]:
    """The bot's lines in the README's "Devices meet chat" console blocks."""
    section = (ROOT / "README.md").read_text().split("### Devices meet chat", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", section, flags=re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith("[")]
    assert len(lines) == 3, lines
    return lines


async def post(slack: SlackTestServer, count: int) -> dict[str, Any]:
    """The arguments of the ``count``-th ``chat.postMessage`` (15 s at most)."""
    call = await slack.wait_for_call("chat.postMessage", count=count, within=15)
    return call.args


async def test_slack_asks_devices_and_gets_alerts(
    mosquitto: Any, run_daemon: Any, slack_server: SlackTestServer
) -> None:
    daemon = run_daemon(
        EXAMPLE / "slack.yaml",
        SLACK_BOT_TOKEN=slack_server.bot_token,
        SLACK_APP_TOKEN=slack_server.app_token,
        SLACK_API_URL=slack_server.api_url,
        SLACK_ALERTS_CHANNEL=ALERTS,
        SLACK_OPERATORS=OPERATOR,
        THERMOSTAT_ALERT_ABOVE="30",
    )
    await slack_server.wait_connected()
    slack_server.add_user(DEFAULT_USER_ID, "alice")
    slack_server.add_user(OPERATOR, "olga")
    async with client(mosquitto, "devices/+/state/reply") as c:
        await until_reply(c, "devices/kitchen/get", b"", "devices/kitchen/state/reply")
        for payload in (b'{"temperature": 21.5}', b'{"temperature": 22.5}'):
            await c.publish("devices/kitchen/telemetry", payload, qos=1)
        await c.publish("devices/hall/telemetry", b'{"temperature": 18}', qos=1)
        await c.publish("devices/hall/get", b"", qos=1)
        await next_message(c, "devices/hall/state/reply")  # every reading is taken

        await slack_server.send_event(message(DM, "temp kitchen", channel_type="im"))
        answer = await post(slack_server, 1)
        assert answer["channel"] == DM
        assert answer["text"] == "kitchen: 22.5 °C, average 22.0 °C over 2 readings"

        await slack_server.send_command(
            "/temp", "hall", channel_id=DM, channel_name="directmessage"
        )
        answer = await post(slack_server, 2)
        assert answer["text"] == "hall: 18.0 °C, average 18.0 °C over 1 reading"

        mention = message("C0GENERAL1", f"<@{slack_server.bot_user_id}> devices")
        await slack_server.send_event(mention)
        answer = await post(slack_server, 3)
        assert answer["channel"] == "C0GENERAL1"
        assert answer["text"] == "Devices: hall, kitchen"

        # The alerts channel's conversation was opened at start: a hot reading lands there
        # although nobody has written in it.
        await c.publish("devices/kitchen/telemetry", b'{"temperature": 35}', qos=1)
        alert = await post(slack_server, 4)
        assert alert["channel"] == ALERTS
        assert alert["text"] == "Alert: kitchen at 35.0 °C, above 30.0 °C"

        # The device command is the operators' only (slack.yaml's access section), whatever
        # a user calls themselves: the rule matches the Slack user id.
        async with client(mosquitto, "devices/+/setpoint") as commands:
            await slack_server.send_event(message("C0GENERAL1", "set kitchen 30"))
            refused = await post(slack_server, 5)
            assert refused["text"] == "Sorry alice, only operators may run set."
            await slack_server.send_event(message("C0GENERAL1", "help"))
            assert "set <device>" not in (await post(slack_server, 6))["text"]

            await slack_server.send_event(message("C0GENERAL1", "set kitchen 19", user=OPERATOR))
            assert (await post(slack_server, 7))["text"] == "kitchen: setpoint 19.0 °C sent."
            sent = await next_message(commands, "devices/kitchen/setpoint")
            assert json.loads(sent.payload) == {"setpoint": 19.0}
    assert daemon.stop() == 0, daemon.output
    assert "command 'set' denied to slack:U0USER0001" in daemon.output
    assert slack_server.bot_token not in daemon.output
    assert slack_server.app_token not in daemon.output


def test_the_console_asks_devices_and_shows_alerts(tmp_path: Path, mosquitto: Any) -> None:
    """The README's first command, chatting in a pseudo-terminal (on a real Mosquitto here)."""
    master, slave = os.openpty()
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateways", "run", str(EXAMPLE / "gateway.yaml")],
            cwd=ROOT,
            env={
                **os.environ,
                "MQTT_URL": mosquitto.url,
                "THERMOSTAT_ALERT_ABOVE": "30",
                "THERMOSTAT_STATE": str(tmp_path / "thermostat.sqlite3"),
            },
            stdin=slave,
            stdout=slave,
            stderr=log,
        )
    os.close(slave)
    try:
        out = Reader(master, process, stderr)
        out.expect("talking to thermostat")

        def say(line: str, *answers: str) -> None:
            os.write(master, line.encode() + b"\n")
            for answer in answers:
                out.expect(answer)

        say("temp kitchen", "thermostat: No reading from kitchen yet.")
        for value in (21.5, 22.5):
            publish(mosquitto, "devices/kitchen/telemetry", {"temperature": value})
        # The broker's PUBACK is not the daemon's handling: wait for the state it retains.
        deadline = time.monotonic() + 20
        while handled_readings(mosquitto, "kitchen") != 2:
            assert time.monotonic() < deadline, "the two readings were not handled in 20 s"
        out.seen = 0
        say("temp kitchen", "thermostat: kitchen: 22.5 °C, average 22.0 °C over 2 readings")
        say("devices", "thermostat: Devices: kitchen")
        say("help", "temp <device>: a device's latest reading and its average")
        # Device commands are the operators' (gateway.yaml's access: console:you); anyone
        # else at the console is refused, and nothing reaches the device.
        say("set kitchen 19", "thermostat: kitchen: setpoint 19.0 °C sent.")
        say(":user mallory", "you are mallory")
        say("set kitchen 40", "thermostat: Sorry mallory, only operators may run set.")
        asked = len(out.text)
        say("help", "devices: the devices that have reported")
        assert "set <device>" not in out.text[asked:]
        assert retained(mosquitto, "devices/kitchen/setpoint") == {"setpoint": 19.0}
        say(":user you", "you are you")
        publish(mosquitto, "devices/kitchen/telemetry", {"temperature": 33})
        out.expect("[#alerts] thermostat: Alert: kitchen at 33.0 °C, above 30.0 °C")
        for line in readme_chat_lines():
            assert line in out.text, f"the README shows {line!r}; the console printed otherwise"
        process.send_signal(signal.SIGINT)  # as Ctrl-C
        assert process.wait(timeout=20) == 0, stderr.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(master)
