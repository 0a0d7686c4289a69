"""ASGI types and the MQTT protocol's scope and events, as written in ``docs/specs/mqtt.md``.

Loose at the ASGI edge (``Scope``, ``Message`` are plain mappings, as in Starlette's
``types.py``) and precise for the protocol (a ``TypedDict`` with ``Literal`` types for every
scope and event, as in asgiref's ``typing.py``).

They live in ``layer``, the lowest package that both sides may import: gateways build these
scopes and events, consumers receive and send them (and the channel layer carries events
between consumers), and ``gateways`` and ``consumers`` never import each other.
The chat and channel scopes and events are in ``docs/specs/chat.md`` and ``docs/specs/channel.md``.
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
    #: ``None`` in a scope opened by key (an addressed event, a timer), with no message.
    topic: str | None
    scope_key: str
    subscription: str | None
    channel_layer: NotRequired[Any]
    state_store: NotRequired[Any]
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
    dup: NotRequired[bool]
    properties: MqttProperties | None
    idempotency_key: NotRequired[str]


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


# -- Chat scope (docs/specs/chat.md) ------------------------------------------------------

ConversationKind = Literal["direct", "group", "thread"]
"""``direct``: a DM (one person and the bot); ``group``: a channel, private channel or group
DM; ``thread``: one thread of replies under a message of a ``direct`` or ``group``."""

ConversationKey = Literal["thread", "channel", "channel_user"]
"""How a chat gateway keys conversations (its ``conversation_key`` option): one scope per
thread (the default: a channel's top-level messages are one conversation, each thread
another), per channel (threads included), or per channel and user."""


class ChatConversation(TypedDict):
    """The conversation a chat scope is: a platform channel, possibly one thread of it."""

    id: str
    kind: ConversationKind
    name: str | None
    thread_id: str | None
    user_id: NotRequired[str]


class ChatBot(TypedDict):
    """The bot's own identity on the platform (Slack: from ``auth.test``)."""

    id: str
    name: str


class ChatScope(TypedDict):
    type: Literal["chat"]
    asgi: ASGIVersions
    gateway: str
    platform: str
    scope_key: str
    conversation: ChatConversation
    bot: ChatBot
    channel_layer: NotRequired[Any]
    state_store: NotRequired[Any]
    access: NotRequired[Any]
    route: NotRequired[RouteInfo]


class ChatUser(TypedDict):
    """Who posted, ran or reacted (docs/specs/chat.md, User).

    ``identity`` is ``"<platform>:<id>"`` for an id the platform vouches for (a display
    name cannot take it): ``"slack:U0123"``, ``"irc:<services account>"``,
    ``"matrix:@alice:example.org"``, ``"xmpp:alice@example.org"``, ``"console:alice"``,
    ``"webchat:<sub>"``.
    ``None`` when the platform does not vouch for the sender (an IRC nick without an
    account). Access rules (docs/security.md) match it, never ``name``.
    """

    id: str
    name: str | None
    is_bot: bool
    identity: NotRequired[str | None]


class ChatAttachment(TypedDict):
    """A file or link attached to a message; keys the platform does not give are ``None``."""

    name: str | None
    url: str | None
    mimetype: str | None
    size: int | None


# -- Chat events in (gateway -> application) ----------------------------------------------


class ChatConnectEvent(TypedDict):
    type: Literal["chat.connect"]


class ChatMessageEvent(TypedDict):
    type: Literal["chat.message"]
    id: str
    text: str
    user: ChatUser
    thread_id: str | None
    mentions_bot: bool
    attachments: list[ChatAttachment]
    raw: dict[str, Any]
    idempotency_key: NotRequired[str]


class ChatCommandEvent(TypedDict):
    """A slash command: ``/temp kitchen`` is ``command`` ``"/temp"``, ``text`` ``"kitchen"``."""

    type: Literal["chat.command"]
    command: str
    text: str
    user: ChatUser
    raw: dict[str, Any]
    idempotency_key: NotRequired[str]


class ChatReactionEvent(TypedDict):
    type: Literal["chat.reaction"]
    message_id: str
    reaction: str
    added: bool
    user: ChatUser
    raw: dict[str, Any]
    idempotency_key: NotRequired[str]


class ChatActionEvent(TypedDict):
    """A button (or other interactive element) pressed on a message the bot sent."""

    type: Literal["chat.action"]
    action_id: str
    value: str | None
    message_id: str | None
    user: ChatUser
    raw: dict[str, Any]
    idempotency_key: NotRequired[str]


class ChatDisconnectEvent(TypedDict):
    type: Literal["chat.disconnect"]
    reason: Literal["idle", "evicted", "closed", "shutdown"]


# -- Chat events out (application -> gateway) ---------------------------------------------


class ChatSendMessageEvent(TypedDict):
    type: Literal["chat.send"]
    text: str
    thread: NotRequired[str | None]
    reply_to: NotRequired[str | None]
    format: NotRequired[Literal["plain", "markdown"]]
    native: NotRequired[dict[str, Any] | None]


class ChatReactEvent(TypedDict):
    type: Literal["chat.react"]
    message_id: str
    reaction: str
    remove: NotRequired[bool]


class ChatTypingEvent(TypedDict):
    type: Literal["chat.typing"]


class ChatCloseEvent(TypedDict):
    type: Literal["chat.close"]


ChatReceiveEvent = (
    ChatConnectEvent
    | ChatMessageEvent
    | ChatCommandEvent
    | ChatReactionEvent
    | ChatActionEvent
    | ChatDisconnectEvent
)
ChatSendEvent = ChatSendMessageEvent | ChatReactEvent | ChatTypingEvent | ChatCloseEvent


# =========================================================================================
# Worker (channel) scope: docs/specs/channel.md
# =========================================================================================


class ChannelScope(TypedDict):
    type: Literal["channel"]
    asgi: ASGIVersions
    gateway: str
    channel: str
    channel_layer: Any


class ChannelMessageEvent(TypedDict):
    """A channel layer message, as sent: its own ``type`` (``"thumbnail.generate"``) and keys."""

    type: str


class ChannelDisconnectEvent(TypedDict):
    type: Literal["channel.disconnect"]
    reason: Literal["closed", "shutdown"]


class ChannelCloseEvent(TypedDict):
    type: Literal["channel.close"]
