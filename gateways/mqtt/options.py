"""Options of the MQTT gateway (its YAML keys).

Topic names and topic filters are checked by ``layer.topics``, the one home of the MQTT
topic rules (MQTT 5.0 sections 4.7 and 4.8.2), which routing and consumers use too.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from gateways.base import GatewayError, GatewayOptions
from gateways.options import Reconnect, TlsFiles
from layer.topics import split_shared, validate_topic_filter, validate_topic_name

__all__ = [
    "DEFAULT_SESSION_EXPIRY",
    "MAX_PAYLOAD",
    "BrokerAddress",
    "MqttFlow",
    "MqttGatewayOptions",
    "MqttScopeRule",
    "MqttSubscription",
    "MqttTls",
    "MqttWill",
    "parse_broker",
]

#: Seconds an MQTT 5 broker keeps a ``clean_start: false`` session that sets no
#: ``session_expiry`` (MQTT 5 ends a session with its connection by default).
DEFAULT_SESSION_EXPIRY = 3600

#: The largest payload MQTT can carry, in bytes (the Remaining Length limit, MQTT 5.0
#: section 1.5.5 and 2.1.4).
MAX_PAYLOAD = 268_435_455
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "embedded": 1883}

QoS = Literal[0, 1, 2]


# -- the broker URL -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A parsed ``broker`` option.

    Attributes:
        scheme: ``"mqtt"``, ``"mqtts"`` (TLS) or ``"embedded"`` (an in-process broker).
        host: Host name or address.
        port: TCP port.
        username: From the URL, percent-decoded; ``None`` when absent.
        password: From the URL, percent-decoded; ``None`` when absent. Never log it.
    """

    scheme: Literal["mqtt", "mqtts", "embedded"]
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def redacted(self) -> str:
        """The URL to log: the password replaced by ``***``."""
        user = ""
        if self.username is not None:
            user = self.username + (":***" if self.password is not None else "") + "@"
        return f"{self.scheme}://{user}{self.host}:{self.port}"


def parse_broker(value: str) -> BrokerAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]``, ``mqtts://...``, ``embedded`` or
    ``embedded://host:port``.

    Default ports: 1883 for ``mqtt`` and ``embedded``, 8883 for ``mqtts``. ``embedded``
    alone listens on ``127.0.0.1:1883``.

    Raises:
        ValueError: Not one of those forms; the message quotes the value without its password.
    """
    if value == "embedded":
        return BrokerAddress("embedded", "127.0.0.1", _DEFAULT_PORTS["embedded"])
    forms = "mqtt://[user[:password]@]host[:port], mqtts://..., embedded or embedded://host:port"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"broker {_hide_password(value)!r} is not a valid URL: {exc}") from None
    shown = _hide_password(value)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(f"broker {shown!r}: expected {forms}")
    if not parts.hostname:
        raise ValueError(f"broker {shown!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"broker {shown!r}: no path, query or fragment allowed; expected {forms}")
    if parts.scheme == "embedded" and (parts.username or parts.password):
        raise ValueError(f"broker {shown!r}: the embedded broker takes no user or password")
    return BrokerAddress(
        scheme=parts.scheme,  # type: ignore[arg-type]  # checked against _DEFAULT_PORTS
        host=parts.hostname,
        port=port if port is not None else _DEFAULT_PORTS[parts.scheme],
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def _hide_password(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return value
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


# -- option models --------------------------------------------------------------------------


def _protocol_from_yaml(value: Any) -> Any:
    """YAML reads ``protocol: 5`` as an int; accept it."""
    return "5" if value == 5 else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class MqttTls(TlsFiles):
    """TLS settings (used with an ``mqtts://`` broker): ``ca_file``, ``cert_file`` and
    ``key_file`` as in ``TlsFiles`` (a client certificate for brokers that authenticate
    clients by it, e.g. Mosquitto's ``require_certificate``), and:

    Attributes:
        key_password: Password of an encrypted ``key_file`` (or of the key inside
            ``cert_file``). A secret: never logged.
        insecure: Skip checking the broker's certificate and host name. For tests only.
    """

    key_password: SecretStr | None = None
    insecure: bool = False

    @model_validator(mode="after")
    def _password_needs_cert(self) -> MqttTls:
        if self.key_password is not None and self.cert_file is None:
            raise ValueError("tls.key_password is set but tls.cert_file is not")
        return self

    def context(self, gateway: str, *, verify: bool) -> ssl.SSLContext:
        """As ``TlsFiles.context``, opening the private key with ``key_password``.

        Raises:
            GatewayError: A TLS file can't be read, is not valid PEM, or the key can't be
                opened with ``key_password`` (the message never shows it).
        """
        if self.key_password is None or self.cert_file is None:
            return super().context(gateway, verify=verify)
        context = TlsFiles(ca_file=self.ca_file).context(gateway, verify=verify)
        try:
            context.load_cert_chain(
                self.cert_file, self.key_file, self.key_password.get_secret_value()
            )
        except OSError as exc:  # ssl.SSLError is an OSError
            raise GatewayError(f"gateway {gateway!r}: can't load the TLS files: {exc}") from None
        return context


class MqttWill(_Model):
    """The will message the broker publishes if the gateway's connection ends without a
    clean DISCONNECT (MQTT 5.0 section 3.1.2.5).

    Attributes:
        topic: Topic name (no wildcards).
        payload: Text payload, sent UTF-8 encoded.
        qos: QoS of the will message.
        retain: Whether the broker retains it.
    """

    topic: str
    payload: str = ""
    qos: QoS = 0
    retain: bool = False

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return validate_topic_name(value)


class MqttFlow(_Model):
    """How many received messages may wait in the daemon before the gateway stops reading
    its connection, so that TCP back-pressure reaches the broker (``gateways.mqtt.flow``).

    Attributes:
        high_water: Messages waiting (received, not yet taken for a scope) at which the
            gateway stops reading from the broker.
        low_water: Messages waiting at or below which it reads again.
        limit: Most messages waiting while the gateway must read on, because it awaits the
            broker's answer to its own PUBLISH, SUBSCRIBE or UNSUBSCRIBE; QoS 0 messages
            past it are dropped and counted (QoS 1 and 2 are bounded by ``receive_maximum``).
    """

    high_water: int = Field(default=1000, ge=1)
    low_water: int = Field(default=500, ge=0)
    limit: int = Field(default=10_000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> MqttFlow:
        if not self.low_water < self.high_water <= self.limit:
            raise ValueError(
                f"flow: low_water ({self.low_water}) < high_water ({self.high_water}) <= "
                f"limit ({self.limit}) does not hold"
            )
        return self


class MqttIdempotencyKey(_Model):
    """Where a message's idempotency key is (``docs/state.md``): exactly one of the two.

    A durable consumer applies an event with a key once: a message the broker delivers again
    (a restart with a backlog, a lost PUBACK) is acknowledged and skipped. The key must be
    unique per scope (a device's message sequence number does).

    Attributes:
        user_property: The name of an MQTT 5 user property (MQTT 5.0 section 3.3.2.3.7)
            whose value is the key; MQTT 5 only.
        json_field: A top-level field of a JSON object payload whose value (a str or an
            int) is the key.
    """

    user_property: str | None = Field(default=None, min_length=1)
    json_field: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> MqttIdempotencyKey:
        if (self.user_property is None) == (self.json_field is None):
            raise ValueError("idempotency_key: give exactly one of user_property, json_field")
        return self


class MqttSubscription(_Model):
    """A subscription of the gateway, listed in YAML.

    Attributes:
        topic: Topic filter, with ``+``/``#`` wildcards or as ``$share/<group>/<filter>``.
        qos: Maximum QoS asked of the broker for it.
    """

    topic: str
    qos: QoS = 0

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return validate_topic_filter(value)


class MqttScopeRule(_Model):
    """Group topics into one scope: a topic matching ``filter`` gets as scope key its first
    ``levels`` levels (``{filter: "devices/+/#", levels: 2}``: ``devices/d1/temp`` and
    ``devices/d1/hum`` share scope ``devices/d1``).

    Attributes:
        filter: Topic filter the topic must match (no ``$share/``).
        levels: Number of leading topic levels that make the scope key (at least 1).
    """

    filter: str
    levels: int = Field(ge=1)

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: str) -> str:
        validate_topic_filter(value)
        if split_shared(value).group is not None:
            raise ValueError(f"scope rule filter {value!r}: match topics, not a $share/ filter")
        return value

    @model_validator(mode="after")
    def _levels_fit(self) -> MqttScopeRule:
        count = len(self.filter.split("/"))
        if not self.filter.endswith("#") and self.levels > count:
            raise ValueError(
                f"scope rule {self.filter!r}: levels={self.levels} but the filter matches "
                f"topics of {count} levels"
            )
        return self


class MqttGatewayOptions(GatewayOptions):
    """YAML options of an MQTT gateway (besides those of ``GatewayOptions``).

    Attributes:
        broker: ``mqtt://[user[:password]@]host[:port]`` (port 1883), ``mqtts://...`` (TLS,
            port 8883), ``embedded`` or ``embedded://host:port`` (an in-process amqtt
            broker, MQTT 3.1.1 only, default ``127.0.0.1:1883``).
        client_id: MQTT client identifier; default ``asgi-gateway-<name>-<random>``. Set it
            for a session that outlives a restart (``clean_start: false``).
        username: User name; overrides the URL's.
        password: Password; overrides the URL's. Never logged.
        tls: TLS files and checks; needs an ``mqtts://`` broker.
        keepalive: Seconds between keep-alive PINGREQs (MQTT 5.0 section 3.1.2.10); 0 disables.
        protocol: ``"3.1.1"`` or ``"5"`` (YAML ``5`` accepted).
        clean_start: Start a new session on connect (MQTT 5 Clean Start, MQTT 3.1.1
            Clean Session).
        session_expiry: Seconds the broker keeps the session after a disconnect (MQTT 5.0
            section 3.1.2.11.2, Session Expiry Interval); MQTT 5 only. Unset with
            ``clean_start: false``, it is ``DEFAULT_SESSION_EXPIRY`` (an hour): without it an
            MQTT 5 broker ends the session with the connection, and unacknowledged messages
            with it.
        receive_maximum: Most QoS 1 and 2 messages the broker may have sent that the gateway
            has not acknowledged yet (MQTT 5.0 section 3.1.2.11.3, Receive Maximum); the
            gateway acknowledges a message once the application handled it, so this bounds
            the messages waiting in the daemon. MQTT 5 only; on MQTT 3.1.1 the broker's own
            limit applies (Mosquitto: ``max_inflight_messages``, 20).
        will: Will message published by the broker if the gateway vanishes.
        subscriptions: Topic filters to subscribe to, with their QoS.
        subscribe_routes: Also subscribe to the application's ``topic_filters()``.
        route_qos: QoS of the subscriptions taken from the application.
        scopes: Rules grouping topics into scopes; first match wins; otherwise one scope
            per topic.
        max_payload: Largest payload in bytes; larger incoming messages are dropped (and
            counted), larger outgoing ones refused.
        reconnect: Backoff between connection attempts, in seconds.
        publish_timeout: Seconds a publish waits for the connection (and its acknowledgement)
            before failing.
        flow: When the gateway stops and starts reading from the broker (``MqttFlow``).
        idempotency_key: Where each message's idempotency key is (``MqttIdempotencyKey``),
            set as the ``mqtt.message`` event's ``idempotency_key``; ``None``: none.
    """

    # Our messages quote the offending value; pydantic's own would also show the password.
    model_config = ConfigDict(hide_input_in_errors=True)

    broker: str = "embedded"
    client_id: str | None = Field(default=None, min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    tls: MqttTls | None = None
    keepalive: int = Field(default=60, ge=0, le=65_535)
    protocol: Annotated[Literal["3.1.1", "5"], BeforeValidator(_protocol_from_yaml)] = "3.1.1"
    clean_start: bool = True
    session_expiry: int | None = Field(default=None, ge=0, le=4_294_967_295)
    receive_maximum: int = Field(default=100, ge=1, le=65_535)
    will: MqttWill | None = None
    subscriptions: list[MqttSubscription] = Field(default_factory=list)
    subscribe_routes: bool = True
    route_qos: QoS = 0
    scopes: list[MqttScopeRule] = Field(default_factory=list)
    max_payload: int = Field(default=MAX_PAYLOAD, ge=0, le=MAX_PAYLOAD)
    reconnect: Reconnect = Field(default_factory=lambda: Reconnect(initial=0.5, maximum=30.0))
    publish_timeout: float = Field(default=10.0, gt=0)
    flow: MqttFlow = Field(default_factory=MqttFlow)
    idempotency_key: MqttIdempotencyKey | None = None

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        parse_broker(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MqttGatewayOptions:
        address = self.address
        if address.scheme == "embedded" and self.protocol == "5":
            raise ValueError(
                f"broker {self.broker!r}: the embedded broker (amqtt) speaks MQTT 3.1.1 only; "
                "set protocol: '3.1.1' or use an external broker"
            )
        if self.tls is not None and address.scheme != "mqtts":
            raise ValueError(
                f"tls is set but broker {address.redacted()!r} is not mqtts://; "
                "use mqtts://host[:port] for TLS"
            )
        if not self.clean_start and self.client_id is None:
            raise ValueError(
                "clean_start: false needs a client_id: a session is found again by its client "
                "identifier, and a random one is new at every start (MQTT 5.0 section 3.1.3.1)"
            )
        if self.session_expiry is not None and self.protocol != "5":
            raise ValueError(
                f"session_expiry ({self.session_expiry}) needs protocol '5' "
                "(MQTT 5.0 section 3.1.2.11.2)"
            )
        key = self.idempotency_key
        if key is not None and key.user_property is not None and self.protocol != "5":
            raise ValueError(
                f"idempotency_key.user_property ({key.user_property!r}) needs protocol '5': "
                "MQTT 3.1.1 has no user properties; use json_field"
            )
        seen: set[str] = set()
        for subscription in self.subscriptions:
            if subscription.topic in seen:
                raise ValueError(f"subscription {subscription.topic!r} is listed twice")
            seen.add(subscription.topic)
        return self

    @property
    def effective_session_expiry(self) -> int | None:
        """The Session Expiry Interval sent on MQTT 5: ``session_expiry``, or, when unset
        with ``clean_start: false``, ``DEFAULT_SESSION_EXPIRY``; ``None`` sends none."""
        if self.session_expiry is None and not self.clean_start and self.protocol == "5":
            return DEFAULT_SESSION_EXPIRY
        return self.session_expiry

    @property
    def address(self) -> BrokerAddress:
        """The parsed ``broker`` URL."""
        return parse_broker(self.broker)
