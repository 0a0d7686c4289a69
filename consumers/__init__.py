"""Consumers, routers and test communicators: the application side of the gateway.

A consumer is one instance per scope, with methods named after event types, a channel name
on the channel layer and optional groups (the model is Django Channels). Routers pick the
consumer of a scope by scope type, MQTT topic, chat conversation or worker channel name.
"""

from __future__ import annotations

from consumers.base import (
    AsyncConsumer,
    ConsumerApp,
    ConsumerError,
    StopConsumer,
    SyncConsumer,
    get_handler_name,
)
from consumers.chat import ChatConsumer, Command, command
from consumers.conversations import ConversationRoute, ConversationRouter, chat_route
from consumers.mqtt import INVALID_PAYLOADS, JsonMqttConsumer, MqttConsumer
from consumers.routing import ChannelNameRouter, ProtocolTypeRouter, Route, TopicRouter, route
from consumers.testing import ChatCommunicator, MqttCommunicator
from consumers.topics import CompiledTopic, compile_topic

__all__ = [
    "INVALID_PAYLOADS",
    "AsyncConsumer",
    "ChannelNameRouter",
    "ChatCommunicator",
    "ChatConsumer",
    "Command",
    "CompiledTopic",
    "ConsumerApp",
    "ConsumerError",
    "ConversationRoute",
    "ConversationRouter",
    "JsonMqttConsumer",
    "MqttCommunicator",
    "MqttConsumer",
    "ProtocolTypeRouter",
    "Route",
    "StopConsumer",
    "SyncConsumer",
    "TopicRouter",
    "chat_route",
    "command",
    "compile_topic",
    "get_handler_name",
    "route",
]
