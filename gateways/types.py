"""ASGI types and the MQTT protocol's scope and events, as written in ``docs/specs/mqtt.md``.

Loose at the ASGI edge (``Scope``, ``Message`` are plain mappings, as in Starlette's
``types.py``) and precise for the protocol (a ``TypedDict`` with ``Literal`` types for every
scope and event, as in asgiref's ``typing.py``).

The protocol server defines the protocol, so these live with the gateways. Consumers refer
to them for type checking only (``if TYPE_CHECKING:``), which keeps the import direction of
the architecture: ``gateways`` never imports ``consumers``, and ``consumers`` needs nothing
of ``gateways`` at run time.
"""

# No ``from __future__ import annotations`` here: on Python 3.11, TypedDict reads
# ``NotRequired`` only from evaluated annotations (``__optional_keys__`` would be empty).
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal, NotRequired, TypedDict

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ASGIVersions(TypedDict):
    version: Literal["3.0"]
    spec_version: str


class RouteInfo(TypedDict):
    """What ``TopicRouter`` (or ``ConversationRouter``) matched: the full pattern and captures."""

    pattern: str
    kwargs: dict[str, str]


# -- MQTT scope ---------------------------------------------------------------------------


class MqttScope(TypedDict):
    type: Literal["mqtt"]
    asgi: ASGIVersions
    gateway: str
    topic: str
    scope_key: str
    subscription: str
    channel_layer: NotRequired[Any]
    route: NotRequired[RouteInfo]


# -- MQTT events in (gateway -> application) ----------------------------------------------


class MqttProperties(TypedDict, total=False):
    """MQTT 5 PUBLISH properties (MQTT 5.0 section 3.3.2.3); only those present are set."""

    payload_format_indicator: int
    message_expiry_interval: int
    content_type: str
    response_topic: str
    correlation_data: bytes
    user_properties: list[tuple[str, str]]
    subscription_identifiers: list[int]
    topic_alias: int


class MqttConnectEvent(TypedDict):
    type: Literal["mqtt.connect"]


class MqttMessageEvent(TypedDict):
    type: Literal["mqtt.message"]
    topic: str
    payload: bytes
    qos: Literal[0, 1, 2]
    retain: bool
    properties: MqttProperties | None


class MqttDisconnectEvent(TypedDict):
    type: Literal["mqtt.disconnect"]
    reason: Literal["idle", "evicted", "closed", "shutdown"]


# -- MQTT events out (application -> gateway) ---------------------------------------------


class MqttPublishEvent(TypedDict):
    type: Literal["mqtt.publish"]
    topic: str
    payload: bytes
    qos: NotRequired[Literal[0, 1, 2]]
    retain: NotRequired[bool]
    properties: NotRequired[MqttProperties | None]


class MqttSubscribeEvent(TypedDict):
    type: Literal["mqtt.subscribe"]
    topic: str
    qos: NotRequired[Literal[0, 1, 2]]


class MqttUnsubscribeEvent(TypedDict):
    type: Literal["mqtt.unsubscribe"]
    topic: str


class MqttCloseEvent(TypedDict):
    type: Literal["mqtt.close"]


MqttReceiveEvent = MqttConnectEvent | MqttMessageEvent | MqttDisconnectEvent
MqttSendEvent = MqttPublishEvent | MqttSubscribeEvent | MqttUnsubscribeEvent | MqttCloseEvent

DisconnectReason = Literal["idle", "evicted", "closed", "shutdown"]
