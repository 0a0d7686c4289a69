"""The MQTT adapter (``type: mqtt``): MQTT 3.1.1 and 5 topics as long-lived ASGI scopes.

``MqttGateway`` is the protocol server and ``MqttGatewayOptions`` its YAML options
(``docs/mqtt.md``, the scope and events in ``docs/specs/mqtt.md``). Inside: ``gateway``
(the gateway: connection, events sent), ``incoming`` (the consume loop: messages to
scopes), ``flow`` (reading pauses while too many received messages wait), ``acks``
(acknowledging QoS 1 and 2 once handled), ``options`` (the options models),
``subscriptions`` (which filters are subscribed, for whom), ``events`` (checking what the
application sends), ``properties`` (MQTT 5 properties), ``refusals`` (``BrokerRefused``:
what the broker refused, with its reason code; publishing with the PUBACK's code),
``client`` (building the aiomqtt client and its TLS context) and ``embedded`` (the
in-process broker behind ``broker: embedded``). Topic names and filters follow
``layer.topics``, the one home of the MQTT topic rules.
"""

from __future__ import annotations

from gateways.mqtt.embedded import EmbeddedBroker
from gateways.mqtt.gateway import MqttGateway
from gateways.mqtt.options import MqttGatewayOptions
from gateways.mqtt.refusals import BrokerRefused

__all__ = ["BrokerRefused", "EmbeddedBroker", "MqttGateway", "MqttGatewayOptions"]
