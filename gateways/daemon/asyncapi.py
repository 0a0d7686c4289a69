"""An AsyncAPI 3.0 document of what a configured application serves (``asgi-gateway asyncapi``).

The document (https://www.asyncapi.com/docs/reference/specification/v3.0.0) describes the
application from its own side, as the gateways serve it:

- ``servers``: one per gateway whose ``asyncapi_server()`` gives one (a chat gateway: its
  platform as the protocol; a plug-in adapter: what it says), and one per MQTT gateway (its
  broker: host and port, ``mqtt`` or ``mqtts``, the MQTT protocol version; never a user
  name or password);
- ``channels`` and ``operations``: one channel per MQTT route (address
  ``devices/{device_id}/telemetry``, its captures as parameters) with a ``receive``
  operation, one per topic a consumer declares in ``publishes`` with a ``send`` operation,
  one per ``subscriptions:`` entry no route covers; those each other gateway gives in
  ``asyncapi_channels(routes)``, and for a chat gateway that gives none, the chat channel
  (address ``chat/<gateway>/{conversation}``: ``chat.message`` and ``chat.command``
  received, ``chat.send`` sent; ``docs/specs/chat.md``);
- ``components``: the JSON Schemas of the consumers' pydantic models and the messages.

``Gateway.asyncapi_server()`` and ``Gateway.asyncapi_channels()`` are the hooks by which an
adapter, built-in or plug-in, describes itself as plain data (``docs/adapters.md``).

``gateways`` may not import ``consumers``: the routes come from the application's
``describe()`` (``ProtocolTypeRouter``, ``TopicRouter`` and ``ConversationRouter`` have one),
plain data naming each route's pattern, consumer class, ``model`` and ``publishes``. An
application without ``describe()`` gives servers and chat channels only.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from ruamel.yaml import YAML

from gateways.base import Gateway, GatewayError
from gateways.daemon.asyncapi_components import (
    BYTES_MESSAGE,
    CHAT_MESSAGES,
    CHAT_SCHEMAS,
    JSON_MESSAGE,
)
from layer.topics import InvalidTopic, split_shared, validate_topic_name
from layer.types import ASGIApp

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document", "render_document"]

#: The AsyncAPI specification version of the documents written here.
ASYNCAPI_VERSION = "3.0.0"

_MQTT_BINDING_VERSION = "0.2.0"
_TEMPLATE_LEVEL = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:#)?\}")
_NOT_AN_ID = re.compile(r"[^\w.-]+")

#: The keys of a channel that ``Gateway.asyncapi_channels()`` gives.
_CHANNEL_KEYS = frozenset({"address", "parameters", "title", "description", "receive", "send"})


def asyncapi_document(
    application: ASGIApp,
    gateways: Iterable[Gateway],
    *,
    title: str,
    api_version: str = "0.0.0",
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``application`` as ``gateways`` serve it.

    Args:
        application: The ASGI application; its ``describe()``, if any, gives the routes.
        gateways: The configured gateways (``Daemon.from_config(config).gateways``); each
            other than MQTT's describes itself with ``asyncapi_server()`` and
            ``asyncapi_channels()`` (a gateway that returns neither is left out).
        title: ``info.title``, e.g. the ``application`` import path.
        api_version: ``info.version``, the version of the application's API.

    Returns:
        The document as plain data (dicts, lists, str, numbers, bools), ready for JSON.

    Raises:
        GatewayError: ``describe()`` failed, a ``publishes`` topic is not a topic
            name template (levels literal or ``{name}``), or a gateway's ``asyncapi_server()``
            or ``asyncapi_channels()`` raised or gave data of the wrong shape.
    """
    document = _Builder(list(gateways)).build(application, title, api_version)
    return copy.deepcopy(document)  # shares nothing with this module's constants


def render_document(document: Mapping[str, Any], fmt: Literal["yaml", "json"]) -> str:
    """The document as YAML (ruamel.yaml, block style) or JSON (2-space indent)."""
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096  # one line per description
    out = io.StringIO()
    yaml.dump(json.loads(json.dumps(document)), out)  # plain dicts and lists only
    return out.getvalue()


def _package_version() -> str:
    try:
        return version("asgi-gateway")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def _id(text: str) -> str:
    """A components key (``^[\\w\\d.-]+$``) for an address or a name."""
    return _NOT_AN_ID.sub("_", text.replace("{", "").replace("}", "")).strip("_") or "root"


def _qualname(cls: object) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', repr(cls))}"


def _address(pattern: str) -> tuple[str, dict[str, Any]]:
    """A topic pattern's channel address and parameters: ``{name:#}`` becomes ``{name}``."""
    parameters: dict[str, Any] = {}
    levels = []
    for level in pattern.split("/"):
        found = _TEMPLATE_LEVEL.fullmatch(level)
        if found is None:
            levels.append(level)
            continue
        name, rest = found.groups()
        levels.append(f"{{{name}}}")
        parameters[name] = {
            "description": (
                f"The rest of the topic (any number of levels, possibly none): "
                f"scope['route']['kwargs'][{name!r}]."
                if rest
                else f"One topic level: scope['route']['kwargs'][{name!r}]."
            )
        }
    return "/".join(levels), parameters


def _check_template(consumer: object, topic: object) -> str:
    if not isinstance(topic, str):
        raise GatewayError(f"{_qualname(consumer)}.publishes: topic {topic!r} is not a str")
    levels = [
        "x" if (m := _TEMPLATE_LEVEL.fullmatch(level)) and not m.group(2) else level
        for level in topic.split("/")
    ]
    try:
        validate_topic_name("/".join(levels))
        if any("{" in level or "}" in level for level in levels):
            raise InvalidTopic("a {name:#} capture or a stray brace")
    except InvalidTopic as exc:
        raise GatewayError(
            f"{_qualname(consumer)}.publishes: topic {topic!r} must be a topic name whose "
            f"levels are literal text or {{name}} captures: {exc}"
        ) from None
    return topic


class _Builder:
    """One document under construction: the servers, channels, operations and components."""

    def __init__(self, gateways: list[Gateway]) -> None:
        self.gateways = gateways
        self.servers: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}
        self.model_refs: dict[tuple[Any, JsonSchemaMode], str] = {}
        self.by_address: dict[str, str] = {}

    def build(self, application: ASGIApp, title: str, api_version: str) -> dict[str, Any]:
        routes = self.describe(application)
        mqtt = [g for g in self.gateways if g.protocol == "mqtt"]
        for gateway in self.gateways:
            server = _hook(gateway, "asyncapi_server")
            if server is None and gateway.protocol == "mqtt":
                server = _mqtt_server(gateway)
            if server is not None:
                self.servers[_id(gateway.name)] = _checked_server(gateway, server)
        self.add_models(routes.get("mqtt", []))
        self.add_mqtt(routes.get("mqtt", []), mqtt)
        for gateway in self.gateways:
            if gateway.protocol == "mqtt":
                continue
            entries = routes.get(gateway.protocol, [])
            channels = _hook(gateway, "asyncapi_channels", entries)
            if not isinstance(channels, list):
                raise GatewayError(
                    f"gateway {gateway.name!r}: asyncapi_channels() must return a list of "
                    f"dicts, not {type(channels).__name__}"
                )
            if channels:
                for channel in channels:
                    self.add_described(gateway, channel)
            elif gateway.protocol == "chat":
                self.add_chat(gateway, entries)
        components: dict[str, Any] = {}
        if self.schemas:
            components["schemas"] = self.schemas
        if self.messages:
            components["messages"] = self.messages
        document: dict[str, Any] = {
            "asyncapi": ASYNCAPI_VERSION,
            "info": {
                "title": title,
                "version": api_version,
                "description": f"Generated by asgi-gateway {_package_version()}.",
            },
            "defaultContentType": "application/json",
        }
        parts = {
            "servers": self.servers,
            "channels": self.channels,
            "operations": self.operations,
            "components": components,
        }
        document.update({key: value for key, value in parts.items() if value})
        return document

    @staticmethod
    def describe(application: ASGIApp) -> dict[str, list[dict[str, Any]]]:
        method = getattr(application, "describe", None)
        if not callable(method):
            return {}
        try:
            described = method()
        except Exception as exc:
            raise GatewayError(f"cannot describe the application {application!r}: {exc}") from exc
        if isinstance(described, Mapping):
            return {str(k): list(v) for k, v in described.items()}
        entries = list(described)  # a bare TopicRouter or ConversationRouter
        kind = "mqtt" if entries and "topic_filter" in entries[0] else "chat"
        return {kind: entries}

    def add_models(self, entries: list[dict[str, Any]]) -> None:
        """Every model's JSON Schema into ``components.schemas``, ``$ref``s pointing there."""
        wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
        for entry in entries:
            if _is_model(entry.get("model")):
                wanted[(entry["model"], "validation")] = None
            for topic, model in entry.get("publishes", {}).items():
                _check_template(entry.get("consumer"), topic)
                if model is not None and not _is_model(model):
                    raise GatewayError(
                        f"{_qualname(entry.get('consumer'))}.publishes[{topic!r}] is "
                        f"{model!r}, not a pydantic model class or None"
                    )
                if model is not None:
                    wanted[(model, "serialization")] = None
        if not wanted:
            return
        refs, definitions = models_json_schema(
            list(wanted), ref_template="#/components/schemas/{model}"
        )
        self.schemas.update(definitions.get("$defs", {}))
        for key, schema in refs.items():
            self.model_refs[key] = schema["$ref"]

    def model_message(self, model: object, mode: JsonSchemaMode, consumer: object) -> str:
        """The id in ``components.messages`` of a payload: a model's, any JSON, or bytes."""
        if _is_model(model):
            ref = self.model_refs[(model, mode)]
            name = ref.rsplit("/", 1)[-1]
            message: dict[str, Any] = {
                "name": name,
                "title": getattr(model, "__name__", name),
                "contentType": "application/json",
                "payload": {"$ref": ref},
            }
            doc = getattr(model, "__doc__", None)
            if doc and not doc.startswith(f"{getattr(model, '__name__', '')}("):
                message["summary"] = doc.strip().splitlines()[0]
        else:
            json_payload = model is not None or callable(getattr(consumer, "receive_json", None))
            message = JSON_MESSAGE if json_payload else BYTES_MESSAGE
            name = message["name"]
        self.messages.setdefault(name, message)
        return name

    def channel(self, address: str, parameters: dict[str, Any], servers: list[str]) -> str:
        """The id of the channel at ``address``, made on first use."""
        if address in self.by_address:
            return self.by_address[address]
        channel_id = base = _id(address)
        number = 1
        while channel_id in self.channels:
            number += 1
            channel_id = f"{base}_{number}"
        channel: dict[str, Any] = {"address": address, "messages": {}}
        if parameters:
            channel["parameters"] = parameters
        if servers:
            channel["servers"] = [{"$ref": f"#/servers/{s}"} for s in servers]
        self.channels[channel_id] = channel
        self.by_address[address] = channel_id
        return channel_id

    def operation(
        self, action: Literal["send", "receive"], channel_id: str, message: str, summary: str
    ) -> None:
        operation_id = f"{action}.{channel_id}"
        self.channels[channel_id]["messages"][message] = {
            "$ref": f"#/components/messages/{message}"
        }
        ref = {"$ref": f"#/channels/{channel_id}/messages/{message}"}
        operation = self.operations.setdefault(
            operation_id,
            {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": summary,
                "messages": [],
            },
        )
        if ref not in operation["messages"]:
            operation["messages"].append(ref)

    def add_mqtt(self, entries: list[dict[str, Any]], gateways: list[Gateway]) -> None:
        routed = [_id(g.name) for g in gateways if getattr(g.options, "subscribe_routes", True)]
        every = [_id(g.name) for g in gateways]
        covered: set[str] = set()
        fallback: dict[str, Any] = {}
        for entry in entries:
            consumer = entry.get("consumer")
            if entry.get("pattern") is None:
                fallback = entry
            else:
                covered.add(str(entry.get("topic_filter")))
                address, parameters = _address(str(entry["pattern"]))
                channel_id = self.channel(address, parameters, routed)
                message = self.model_message(entry.get("model"), "validation", consumer)
                self.operation("receive", channel_id, message, f"{_qualname(consumer)} receives")
            for topic, model in entry.get("publishes", {}).items():
                address, parameters = _address(topic)
                channel_id = self.channel(address, parameters, every)
                message = self.model_message(model, "serialization", consumer)
                self.operation("send", channel_id, message, f"{_qualname(consumer)} publishes")
        for gateway in gateways:
            for subscription in getattr(gateway.options, "subscriptions", ()):
                topic = split_shared(subscription.topic).topic_filter
                if topic in covered:
                    continue
                channel_id = self.channel(topic, {}, [_id(gateway.name)])
                consumer = fallback.get("consumer")
                message = self.model_message(fallback.get("model"), "validation", consumer)
                summary = f"{_qualname(consumer) if consumer else 'The application'} receives"
                self.operation("receive", channel_id, message, summary)

    def add_described(self, gateway: Gateway, channel: object) -> None:
        """One channel a gateway's ``asyncapi_channels()`` gave: its messages into
        ``components.messages`` by name, a ``receive`` and a ``send`` operation."""
        where = f"gateway {gateway.name!r}: asyncapi_channels()"
        if not isinstance(channel, Mapping) or not isinstance(channel.get("address"), str):
            raise GatewayError(f"{where} gave {channel!r}; each channel needs an 'address' str")
        unknown = set(channel) - _CHANNEL_KEYS
        if unknown:
            raise GatewayError(
                f"{where}: channel {channel['address']!r} has unknown keys {sorted(unknown)}"
            )
        servers = [_id(gateway.name)] if _id(gateway.name) in self.servers else []
        parameters = dict(channel.get("parameters") or {})
        channel_id = self.channel(channel["address"], parameters, servers)
        for key in ("title", "description"):
            if isinstance(channel.get(key), str):
                self.channels[channel_id][key] = channel[key]
        actions: tuple[Literal["receive", "send"], ...] = ("receive", "send")
        for action in actions:
            for message in channel.get(action) or ():
                name = message.get("name") if isinstance(message, Mapping) else None
                if not isinstance(name, str) or not name:
                    raise GatewayError(
                        f"{where}: a {action!r} message of channel "
                        f"{channel['address']!r} has no 'name': {message!r}"
                    )
                known = self.messages.setdefault(_id(name), dict(message))
                if known != dict(message):
                    raise GatewayError(
                        f"{where}: message {name!r} differs from another "
                        "of that name in the document"
                    )
                summary = "The application " + ("receives" if action == "receive" else "sends")
                self.operation(action, channel_id, _id(name), summary)

    def add_chat(self, gateway: Gateway, entries: list[dict[str, Any]]) -> None:
        server = _id(gateway.name)
        channel_id = self.channel(
            f"chat/{gateway.name}/{{conversation}}",
            {
                "conversation": {
                    "description": "The conversation's scope key: a channel or DM id, with "
                    "'/<thread_id>' for a thread (docs/specs/chat.md, Conversations)."
                }
            },
            [server] if server in self.servers else [],
        )
        routes = "; ".join(
            f"{entry.get('pattern') or '*'} -> {_qualname(entry.get('consumer') or entry['app'])}"
            for entry in entries
        )
        channel = self.channels[channel_id]
        channel["title"] = f"Conversations of chat gateway {gateway.name!r}"
        if routes:
            channel["description"] = f"Routes, first match wins: {routes}."
        self.schemas.update(CHAT_SCHEMAS)
        for name in ("chat.message", "chat.command", "chat.send"):
            self.messages[name] = CHAT_MESSAGES[name]
        self.operation("receive", channel_id, "chat.message", "The application receives")
        self.operation("receive", channel_id, "chat.command", "The application receives")
        self.operation("send", channel_id, "chat.send", "The application posts")


def _is_model(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _host(host: str, port: object) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port is not None else host


def _mqtt_server(gateway: Gateway) -> dict[str, Any]:
    """The broker of an MQTT gateway: host, port, scheme and protocol; no credentials."""
    options = gateway.options
    address = getattr(options, "address", None)
    scheme = getattr(address, "scheme", "mqtt")
    server: dict[str, Any] = {
        "host": _host(str(getattr(address, "host", "localhost")), getattr(address, "port", None)),
        "protocol": "mqtts" if scheme == "mqtts" else "mqtt",
        "protocolVersion": str(getattr(options, "protocol", "3.1.1")),
        "title": gateway.name,
        "description": f"The broker of MQTT gateway {gateway.name!r}"
        + (" (the in-process broker, broker: embedded)." if scheme == "embedded" else "."),
    }
    binding: dict[str, Any] = {}
    if isinstance(getattr(options, "clean_start", None), bool):
        binding["cleanSession"] = options.clean_start  # type: ignore[attr-defined]
    if isinstance(getattr(options, "keepalive", None), int):
        binding["keepAlive"] = options.keepalive  # type: ignore[attr-defined]
    if binding:
        server["bindings"] = {"mqtt": {**binding, "bindingVersion": _MQTT_BINDING_VERSION}}
    return server


def _hook(gateway: Gateway, method: str, *args: Any) -> Any:
    """Call a gateway's ``asyncapi_*`` hook, its errors as ``GatewayError``."""
    try:
        return getattr(gateway, method)(*args)
    except GatewayError:
        raise
    except Exception as exc:
        raise GatewayError(f"gateway {gateway.name!r}: {method}() raised: {exc!r}") from exc


def _checked_server(gateway: Gateway, server: object) -> dict[str, Any]:
    if not isinstance(server, Mapping) or not all(
        isinstance(server.get(key), str) for key in ("host", "protocol")
    ):
        raise GatewayError(
            f"gateway {gateway.name!r}: asyncapi_server() gave {server!r}; an AsyncAPI Server "
            "Object needs 'host' and 'protocol' strs"
        )
    return dict(server)
