"""The wire format of channels_redis 4.x: keys, sharding and message serialization.

Everything here must match ``channels_redis.core``, ``channels_redis.serializers`` and
``channels_redis.utils`` byte for byte, so that a Django Channels project on channels_redis
and a daemon on ``layer.redis.RedisChannelLayer`` share one Redis:

- A channel's messages are a sorted set at ``prefix + non_local_name(channel)``, members the
  serialized messages, scores the sender's ``time.time()`` (seconds). So every ``!`` channel
  of one process shares one sorted set, and the message names its full channel in
  ``"__asgi_channel__"`` (a str on ``send``, a list of names on ``group_send``).
- A group is a sorted set at ``f"{prefix}:group:{group}"``, members channel names, scores the
  ``time.time()`` of their latest ``group_add``.
- A serialized message is ``random bytes (random_prefix_length, 12) + body``, the body
  ``msgpack.packb(message)`` (or UTF-8 JSON with ``serializer_format="json"``), encrypted
  with Fernet when ``symmetric_encryption_keys`` are given (each key hashed with SHA-256 into
  a Fernet key; the first encrypts, all decrypt). The random bytes make every member unique.
- A key's shard is ``int((crc32(key) & 0xFFF) / (4096 / shards))``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import struct
from collections.abc import Iterable
from typing import Any

import msgpack

from ..base import InvalidMessage, LayerError, LayerMessage

__all__ = ["CHANNEL_KEY", "Codec", "consistent_hash", "group_key"]

CHANNEL_KEY = "__asgi_channel__"
"""The key naming a message's full channel(s), added by the sender, removed on receive."""

_CHANNEL_KEY_PACKED = msgpack.packb(CHANNEL_KEY)


def consistent_hash(value: str | bytes, ring_size: int) -> int:
    """The shard of a key or name, as channels_redis ``_consistent_hash`` computes it.

    Args:
        value: A channel's non-local name, a group name, or a key.
        ring_size: The number of hosts (shards), at least 1.

    Returns:
        An index in ``range(ring_size)``.
    """
    if ring_size == 1:
        return 0
    if isinstance(value, str):
        value = value.encode("utf8")
    return int((binascii.crc32(value) & 0xFFF) / (4096 / float(ring_size)))


def group_key(prefix: str, group: str) -> bytes:
    """The key of a group's sorted set: ``b"asgi:group:chat"`` for prefix ``"asgi"``."""
    return f"{prefix}:group:{group}".encode()


def _map_header_length(first: int) -> tuple[int, int]:
    """(entries, header bytes) of a packed msgpack map starting with byte ``first``."""
    if first & 0xF0 == 0x80:
        return first & 0x0F, 1
    if first == 0xDE:
        return -1, 3
    if first == 0xDF:
        return -1, 5
    raise ValueError(f"not a msgpack map (first byte {first:#x})")


def _map_header(entries: int) -> bytes:
    if entries < 16:
        return bytes((0x80 | entries,))
    if entries < 1 << 16:
        return b"\xde" + struct.pack(">H", entries)
    return b"\xdf" + struct.pack(">I", entries)


class Codec:
    """Serializes messages exactly as channels_redis does, with our checks on top.

    Args:
        symmetric_encryption_keys: Keys (str or bytes) for Fernet encryption, or None.
        random_prefix_length: Random bytes before each message (channels_redis: 12).
        serializer_format: ``"msgpack"`` (the default, as in channels_redis) or ``"json"``.
        expiry: Seconds a message lives; an encrypted one older than ``expiry + 10`` s does
            not decrypt (channels_redis gives Fernet that ttl).
        max_message_size: Most bytes a message's encoding (before encryption) may have, or
            None for no limit.

    Raises:
        LayerError: A str/bytes given as the list of keys, an unknown serializer format, or
            a negative prefix length.
    """

    def __init__(
        self,
        symmetric_encryption_keys: Iterable[str | bytes] | None,
        random_prefix_length: int,
        serializer_format: str,
        expiry: float,
        max_message_size: int | None,
    ) -> None:
        if serializer_format not in ("msgpack", "json"):
            raise LayerError(
                f"serializer_format must be 'msgpack' or 'json', got {serializer_format!r}"
            )
        if isinstance(random_prefix_length, bool) or not isinstance(random_prefix_length, int):
            raise LayerError(f"random_prefix_length must be an int, got {random_prefix_length!r}")
        if random_prefix_length < 0:
            raise LayerError(f"random_prefix_length must be >= 0, got {random_prefix_length!r}")
        self.msgpack = serializer_format == "msgpack"
        self.prefix_length = random_prefix_length
        self._prefix_bits = 8 * random_prefix_length
        self.max_message_size = max_message_size
        self.ttl = int(expiry + 10)
        self.crypter: Any = None
        if symmetric_encryption_keys:
            if isinstance(symmetric_encryption_keys, str | bytes):
                raise LayerError(
                    "symmetric_encryption_keys must be a list of keys, not one "
                    f"{type(symmetric_encryption_keys).__name__}"
                )
            from cryptography.fernet import Fernet, MultiFernet

            fernets = []
            for key in symmetric_encryption_keys:
                raw = key.encode() if isinstance(key, str) else key
                fernets.append(Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest())))
            self.crypter = MultiFernet(fernets)

    def encode(self, channel: str, message: LayerMessage, local: object = None) -> bytes:
        """Serialize ``message`` for ``channel``; ``local`` becomes its ``__asgi_channel__``.

        Args:
            channel: The channel (or group) the message goes to, for error messages.
            message: A dict with a str ``"type"`` key (checked by the caller).
            local: The full channel name (``send`` to a ``!`` channel), a list of names
                (``group_send``), or None to add nothing.

        Returns:
            The member to store in Redis: random prefix, then the (encrypted) body.

        Raises:
            InvalidMessage: The message holds ``"__asgi_channel__"``, holds a value the
                format cannot encode (a set, an object, a cycle, an int over 64 bits, a
                non-str key in JSON), or encodes to more than ``max_message_size`` bytes.
        """
        body = self.pack(channel, message)
        if local is not None:
            body = self.add_channel(body, message, local)
        return self.seal(channel, body)

    def pack(self, channel: str, message: LayerMessage) -> bytes:
        """The message's body (msgpack or JSON), before encryption, size-checked.

        Raises:
            InvalidMessage: See ``encode``.
        """
        if CHANNEL_KEY in message:
            raise InvalidMessage(
                f"message for {channel!r} has the reserved key {CHANNEL_KEY!r} (channels_redis)"
            )
        try:
            if self.msgpack:
                body: bytes = msgpack.packb(message)
            else:
                body = json.dumps(message).encode("utf-8")
        except (TypeError, ValueError, OverflowError) as exc:
            fmt = "msgpack" if self.msgpack else "JSON"
            raise InvalidMessage(
                f"message for {channel!r} cannot be serialized with {fmt}: {exc} "
                f"(message {message!r:.200})"
            ) from exc
        limit = self.max_message_size
        if limit is not None and len(body) > limit:
            raise InvalidMessage(
                f"message for {channel!r} is {len(body)} bytes serialized, over the "
                f"max_message_size of {limit} bytes (type {message.get('type')!r})"
            )
        return body

    def add_channel(self, body: bytes, message: LayerMessage, local: object) -> bytes:
        """``body`` with ``"__asgi_channel__": local`` added as the map's last entry.

        For msgpack the packed map is extended in place of re-serializing it (the bytes are
        those of ``packb({**message, "__asgi_channel__": local})``); for JSON, re-serialized.
        """
        if not self.msgpack:
            return json.dumps({**message, CHANNEL_KEY: local}).encode("utf-8")
        entries, header = _map_header_length(body[0])
        if entries < 0:
            entries = len(message)
        return b"".join(
            (_map_header(entries + 1), body[header:], _CHANNEL_KEY_PACKED, msgpack.packb(local))
        )

    def seal(self, channel: str, body: bytes) -> bytes:
        """Encrypt (if configured) and put the random prefix in front."""
        if self.crypter is not None:
            body = self.crypter.encrypt(body)
        if self._prefix_bits:
            return random.getrandbits(self._prefix_bits).to_bytes(self.prefix_length) + body
        return body

    def decode(self, data: bytes) -> LayerMessage:
        """Deserialize a member read from Redis (``__asgi_channel__`` left in).

        Raises:
            InvalidMessage: It does not decrypt (another key, or older than the Fernet ttl)
                or does not decode to a dict.
        """
        body = data[self.prefix_length :]
        try:
            if self.crypter is not None:
                body = self.crypter.decrypt(body, self.ttl)
            message = msgpack.unpackb(body) if self.msgpack else json.loads(body)
        except Exception as exc:  # InvalidToken, msgpack and JSON errors alike
            raise InvalidMessage(
                f"a message read from Redis does not decode ({type(exc).__name__}: {exc}); "
                "do all layers share serializer_format and symmetric_encryption_keys?"
            ) from exc
        if not isinstance(message, dict):
            raise InvalidMessage(f"a message read from Redis is not a dict: {message!r:.200}")
        return message
