"""``asgi-gateway asyncapi``: the documents validate against the official AsyncAPI 3.0 JSON
Schema (npm package ``@asyncapi/specs``, installed here into pytest's cache with npm), show
the routes, models and brokers, and never a broker's user name or password."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from config import load_config
from gateways.base import Gateway, GatewayError, GatewayOptions, ScopeInstance
from gateways.daemon.asyncapi import asyncapi_document
from gateways.daemon.server import Daemon
from layer.types import Message

pytestmark = pytest.mark.timeout(300)  # the first test may wait for npm

ROOT = Path(__file__).resolve().parent.parent
THERMOSTAT = ROOT / "examples" / "thermostat"

#: The @asyncapi/specs release whose schemas/3.0.0.json the documents must satisfy.
SPECS_VERSION = "6.11.1"
SPECS_PACKAGE = Path("node_modules", "@asyncapi", "specs")


def _installed_version(folder: Path) -> str | None:
    package = folder / SPECS_PACKAGE / "package.json"
    if not package.is_file():
        return None
    return str(json.loads(package.read_text()).get("version"))


@pytest.fixture(scope="session")
def asyncapi_schema(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """The AsyncAPI 3.0.0 JSON Schema (draft-07, one self-contained bundle) of
    ``@asyncapi/specs@SPECS_VERSION``: from ``$ASYNCAPI_SPECS_PREFIX`` when CI installed it
    there (``npm install --prefix DIR``), else installed with npm into pytest's cache. Fails,
    never skips, when it cannot be had."""
    given = os.environ.get("ASYNCAPI_SPECS_PREFIX")
    cache = getattr(request.config, "cache", None)
    if given:
        folder = Path(given)
    elif cache is not None:
        folder = Path(cache.mkdir("asyncapi-specs"))
    else:
        folder = tmp_path_factory.mktemp("asyncapi-specs")
    if _installed_version(folder) != SPECS_VERSION:
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install @asyncapi/specs (the AsyncAPI JSON Schemas)")
        done = subprocess.run(
            [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund",
             f"@asyncapi/specs@{SPECS_VERSION}"],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )  # fmt: skip
        if done.returncode != 0 or _installed_version(folder) != SPECS_VERSION:
            pytest.fail(f"npm install @asyncapi/specs@{SPECS_VERSION} failed:\n{done.stderr}")
    schema = json.loads((folder / SPECS_PACKAGE / "schemas" / "3.0.0.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


def assert_valid(document: dict[str, Any], schema: Any) -> None:
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors)
    # The schema does not follow the document's own $refs: each must point at something.
    for ref in _refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict), ref
            assert part in node, f"$ref {ref!r} points at nothing"
            node = node[part]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def document_of(path: Path) -> dict[str, Any]:
    config = load_config(path)
    daemon = Daemon.from_config(config)
    return asyncapi_document(daemon.application, daemon.gateways, title=config.application)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateways", "asyncapi", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def thermostat_document(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.delenv("MQTT_URL", raising=False)
    monkeypatch.syspath_prepend(str(THERMOSTAT))
    sys.modules.pop("thermostat", None)
    yield document_of(THERMOSTAT / "gateway.yaml")
    sys.modules.pop("thermostat", None)


def channel_at(document: dict[str, Any], address: str) -> tuple[str, dict[str, Any]]:
    found = [(k, v) for k, v in document["channels"].items() if v["address"] == address]
    assert len(found) == 1, (
        f"{address!r} in {[v['address'] for v in document['channels'].values()]}"
    )
    return found[0]


def operations_on(document: dict[str, Any], channel_id: str) -> dict[str, dict[str, Any]]:
    ref = f"#/channels/{channel_id}"
    return {
        op["action"]: op for op in document["operations"].values() if op["channel"]["$ref"] == ref
    }


# -- the thermostat example ------------------------------------------------------------------


def test_the_thermostat_document_validates(
    thermostat_document: dict[str, Any], asyncapi_schema: Any
) -> None:
    assert thermostat_document["asyncapi"] == "3.0.0"
    assert thermostat_document["info"]["title"] == "thermostat:application"
    assert_valid(thermostat_document, asyncapi_schema)


def test_a_route_is_a_channel_with_its_parameters_and_model(
    thermostat_document: dict[str, Any],
) -> None:
    channel_id, channel = channel_at(thermostat_document, "devices/{device_id}/telemetry")
    assert set(channel["parameters"]) == {"device_id"}
    assert channel["servers"] == [{"$ref": "#/servers/devices"}]
    assert channel["messages"] == {"Telemetry": {"$ref": "#/components/messages/Telemetry"}}
    message = thermostat_document["components"]["messages"]["Telemetry"]
    assert message["payload"] == {"$ref": "#/components/schemas/Telemetry"}
    schema = thermostat_document["components"]["schemas"]["Telemetry"]
    assert schema["properties"]["temperature"]["type"] == "number"
    assert schema["required"] == ["temperature"]
    receive = operations_on(thermostat_document, channel_id)["receive"]
    assert receive["messages"] == [{"$ref": f"#/channels/{channel_id}/messages/Telemetry"}]
    assert "DeviceConsumer" in receive["summary"]
    channel_at(thermostat_document, "devices/{device_id}/get")


def test_declared_publishes_are_send_operations(thermostat_document: dict[str, Any]) -> None:
    for address in ("devices/{device_id}/state", "devices/{device_id}/state/reply"):
        channel_id, channel = channel_at(thermostat_document, address)
        assert set(channel["parameters"]) == {"device_id"}
        assert set(operations_on(thermostat_document, channel_id)) == {"send"}
        assert channel["messages"] == {"State": {"$ref": "#/components/messages/State"}}
    state = thermostat_document["components"]["schemas"]["State"]
    assert set(state["properties"]) == {"last", "avg", "count"}


def test_the_broker_and_the_chat_gateway_are_servers(thermostat_document: dict[str, Any]) -> None:
    servers = thermostat_document["servers"]
    assert servers["devices"]["host"] == "127.0.0.1:1883"
    assert servers["devices"]["protocol"] == "mqtt"
    assert servers["devices"]["protocolVersion"] == "3.1.1"
    assert servers["chat"]["protocol"] == "console"
    channel_id, channel = channel_at(thermostat_document, "chat/chat/{conversation}")
    assert channel["servers"] == [{"$ref": "#/servers/chat"}]
    assert set(channel["messages"]) == {"chat.message", "chat.command", "chat.send"}
    assert "name=alerts -> thermostat.AlertChat" in channel["description"]
    operations = operations_on(thermostat_document, channel_id)
    assert {m["$ref"].rsplit("/", 1)[-1] for m in operations["receive"]["messages"]} == {
        "chat.message",
        "chat.command",
    }
    assert operations["send"]["messages"] == [
        {"$ref": f"#/channels/{channel_id}/messages/chat.send"}
    ]


def test_a_broken_document_does_not_validate(
    thermostat_document: dict[str, Any], asyncapi_schema: Any
) -> None:
    """The schema check is not vacuous."""
    next(iter(thermostat_document["operations"].values()))["action"] = "publish"
    errors = list(jsonschema.Draft7Validator(asyncapi_schema).iter_errors(thermostat_document))
    assert errors


# -- the command, and secrets ----------------------------------------------------------------

APP = """
from pydantic import BaseModel

from consumers import JsonMqttConsumer, MqttConsumer, ProtocolTypeRouter, TopicRouter, route


class Reading(BaseModel):
    value: float
    unit: str = "C"


class Sensor(JsonMqttConsumer):
    model = Reading
    publishes = {"sensors/{s}/ack": None}  # noqa: RUF012


class Raw(MqttConsumer):
    publishes = {"raw/{node}/echo": Reading}  # noqa: RUF012


application = ProtocolTypeRouter(
    {
        "mqtt": TopicRouter(
            [
                route("site/{site}/{r:#}", TopicRouter([route("sensors/{s}", Sensor.as_asgi())])),
                route("raw/{node}/{path:#}", Raw.as_asgi()),
            ]
        ),
    }
)
"""


@pytest.fixture
def secret_app(tmp_path: Path) -> Iterator[Path]:
    """A file whose broker URL has a user name and a password, and an application."""
    name = f"asyncapi_app_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(APP)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            application: {name}:application
            gateways:
              plant:
                type: mqtt
                broker: mqtts://deviceuser:s3cr3t-pw@broker.example.com
                protocol: 5
                password: other-s3cr3t
                subscriptions:
                  - {{topic: "$share/workers/alarms/#", qos: 1}}
            """
        )
    )
    yield config
    sys.modules.pop(name, None)


def test_the_command_writes_valid_yaml_without_secrets(
    secret_app: Path, asyncapi_schema: Any
) -> None:
    done = run_cli(str(secret_app), cwd=secret_app.parent)
    assert done.returncode == 0, done.stderr
    for secret in ("s3cr3t-pw", "other-s3cr3t", "deviceuser"):
        assert secret not in done.stdout
        assert secret not in done.stderr
    document = YAML(typ="safe").load(done.stdout)
    assert_valid(document, asyncapi_schema)
    server = document["servers"]["plant"]
    assert server["host"] == "broker.example.com:8883"
    assert server["protocol"] == "mqtts"
    assert server["protocolVersion"] == "5"
    # A nested router's patterns compose; a {name:#} capture is a parameter too.
    _, nested = channel_at(document, "site/{site}/sensors/{s}")
    assert set(nested["parameters"]) == {"site", "s"}
    _, raw = channel_at(document, "raw/{node}/{path}")
    assert set(raw["parameters"]) == {"node", "path"}
    assert raw["messages"] == {"mqtt.bytes": {"$ref": "#/components/messages/mqtt.bytes"}}
    ack_id, ack = channel_at(document, "sensors/{s}/ack")
    assert ack["messages"] == {"mqtt.json": {"$ref": "#/components/messages/mqtt.json"}}
    assert set(operations_on(document, ack_id)) == {"send"}
    # A YAML subscription no route covers is a channel of its own, without $share/.
    alarms_id, _ = channel_at(document, "alarms/#")
    assert set(operations_on(document, alarms_id)) == {"receive"}


def test_format_json_and_output_file(secret_app: Path, tmp_path: Path) -> None:
    as_yaml = run_cli(str(secret_app), cwd=secret_app.parent)
    as_json = run_cli(str(secret_app), "--format", "json", cwd=secret_app.parent)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == YAML(typ="safe").load(as_yaml.stdout)
    out = tmp_path / "out" / "asyncapi.json"
    out.parent.mkdir()
    written = run_cli(str(secret_app), "--format", "json", "-o", str(out), cwd=secret_app.parent)
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    assert json.loads(out.read_text()) == json.loads(as_json.stdout)
    assert "s3cr3t-pw" not in out.read_text()


@pytest.mark.parametrize("topic", ["a/+/b", "a/#", "a/{rest:#}", "a/x{y}"])
def test_a_bad_publishes_topic_is_refused(tmp_path: Path, topic: str) -> None:
    (tmp_path / "bad_publishes_app.py").write_text(
        "from consumers import MqttConsumer, TopicRouter, route\n"
        "class Bad(MqttConsumer):\n"
        f"    publishes = {{{topic!r}: None}}\n"
        "application = TopicRouter([route('a/{x}', Bad.as_asgi())])\n"
    )
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: bad_publishes_app:application\n"
        "gateways:\n  devices: {type: mqtt, broker: 'mqtt://localhost'}\n"
    )
    done = run_cli(str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert f"Bad.publishes: topic {topic!r}" in done.stderr


# -- a plug-in adapter describes itself ----------------------------------------------------

LINES_DEMO = ROOT / "examples" / "lines_gateway" / "demo"


def test_a_plug_in_adapter_has_its_server_and_channel(
    monkeypatch: pytest.MonkeyPatch, asyncapi_schema: Any
) -> None:
    """The lines example (installed, ``type: lines``) gives its server and its channel
    through ``asyncapi_server()`` and ``asyncapi_channels()`` (docs/adapters.md, step 4)."""
    monkeypatch.setenv("LINES_PORT", "7123")
    monkeypatch.syspath_prepend(str(LINES_DEMO))
    sys.modules.pop("app", None)
    try:
        document = document_of(LINES_DEMO / "gateway.yaml")
    finally:
        sys.modules.pop("app", None)
    assert_valid(document, asyncapi_schema)
    assert document["servers"] == {
        "sensors": {
            "host": "127.0.0.1:7123",
            "protocol": "tcp",
            "title": "sensors",
            "description": "UTF-8 lines '<key> <text>' over TCP.",
        }
    }
    channel_id, channel = channel_at(document, "{scope_key}")
    assert channel["servers"] == [{"$ref": "#/servers/sensors"}]
    assert set(channel["parameters"]) == {"scope_key"}
    operations = operations_on(document, channel_id)
    assert operations["receive"]["messages"] == [
        {"$ref": f"#/channels/{channel_id}/messages/lines.line"}
    ]
    assert operations["send"]["messages"] == [
        {"$ref": f"#/channels/{channel_id}/messages/lines.send"}
    ]
    line = document["components"]["messages"]["lines.line"]
    assert line["payload"]["properties"]["type"] == {"const": "lines.line"}


def test_a_gateway_that_describes_nothing_is_left_out_and_bad_shapes_are_refused() -> None:
    class Quiet(Gateway):
        protocol = "quiet"

        async def start_transport(self) -> None:
            pass

        async def close_transport(self) -> None:
            pass

        async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
            raise GatewayError(f"quiet cannot do {message['type']!r}")

    class Broken(Quiet):
        def asyncapi_channels(self, routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"address": "x", "receive": [{"payload": {}}]}]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    quiet = asyncapi_document(app, [Quiet("q", app, GatewayOptions())], title="t")
    assert "servers" not in quiet
    assert "channels" not in quiet
    with pytest.raises(GatewayError, match=r"gateway 'b': asyncapi_channels\(\): a 'receive'"):
        asyncapi_document(app, [Broken("b", app, GatewayOptions())], title="t")
