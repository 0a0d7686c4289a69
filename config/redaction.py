"""Keeping secrets out of reprs, error messages and logs.

How a gateway declares a secret option: type it as pydantic ``SecretStr`` in the gateway's
options model (``password: SecretStr | None = None``) and read it with
``options.password.get_secret_value()`` only where the transport needs it. pydantic then never
shows it in a repr, and :class:`~config.ConfigError` never quotes its value. Options models may
derive from :class:`OptionsModel`, whose repr also masks any field named like a secret and
the password of any URL (``mqtt://user:pass@host`` -> ``mqtt://user:***@host``).

Before an option is typed, the rule is by name: a key whose name contains ``password``,
``passwd``, ``secret``, ``token`` or ``key`` (case-insensitive) is a secret. ``Config``'s repr
masks such keys in gateway and layer options, and errors about them never quote the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Secret, SecretBytes, SecretStr

__all__ = [
    "SECRET_MASK",
    "OptionsModel",
    "RedactedReprMixin",
    "is_secret_name",
    "is_secret_value",
    "redact",
    "redact_url",
]

SECRET_MASK = "**********"  # noqa: S105 (a mask, not a password)
"""What stands in for a secret value (the same mask as pydantic's ``SecretStr``)."""

_SECRET_WORDS = frozenset({"password", "passwd", "secret", "secrets", "token", "tokens"})
#: ``key`` is a secret alone or after one of these words (``api_key``, ``encryption_keys``);
#: after others it is an identifier (``conversation_key``, ``routing_key``).
_KEY_WORDS = frozenset({"key", "keys"})
_SECRET_KEY_QUALIFIERS = frozenset(
    {
        "access",
        "api",
        "app",
        "auth",
        "client",
        "encryption",
        "master",
        "private",
        "secret",
        "session",
        "signing",
    }
)
_NAME_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

# scheme://user:password@ ; the password may hold an unencoded "@" (the last "@" before the
# path ends the user information, as in urllib.parse.urlsplit).
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:@/?#\s]*:)(?P<password>[^/?#\s]+)@"
)


def is_secret_name(name: str) -> bool:
    """Whether an option named ``name`` holds a secret, by the name rule of this module.

    The name is split into words (``bot_token``, ``botToken``, ``MQTT_PASSWORD``). It names a
    secret if a word is password, passwd, secret or token (or a plural), or if a word is
    key (or keys) alone or after access, api, app, auth, client, encryption, master,
    private, secret, session or signing: ``api_key`` and ``symmetric_encryption_keys`` are
    secrets, ``conversation_key`` is not.

    Args:
        name: An option or field name, e.g. ``"password"``, ``"api_key"``, ``"bot_token"``.

    Returns:
        ``True`` if the name is a secret's by that rule.
    """
    words = [word.lower() for word in _NAME_PARTS.findall(name)]
    for index, word in enumerate(words):
        if word in _SECRET_WORDS:
            return True
        if word in _KEY_WORDS and (index == 0 or words[index - 1] in _SECRET_KEY_QUALIFIERS):
            return True
    return False


def is_secret_value(value: object) -> bool:
    """Whether ``value`` is a pydantic secret (``SecretStr``, ``SecretBytes``, ``Secret[T]``)."""
    return isinstance(value, SecretStr | SecretBytes | Secret)


def redact_url(url: str) -> str:
    """Hide the password of every URL in ``url``, for logs and reprs.

    Args:
        url: A URL such as ``"mqtt://user:pass@host:1883"``, or any text that contains URLs.

    Returns:
        The same text with each URL password replaced by ``***``:
        ``"mqtt://user:***@host:1883"``, ``"redis://:***@localhost:6379/0"``. Text without a
        URL password is returned unchanged.
    """
    return _URL_PASSWORD.sub(r"\g<head>***@", url)


def redact(value: Any, key: str | None = None) -> Any:
    """A copy of ``value`` safe to show: secrets masked, URL passwords hidden.

    Args:
        value: A plain value as read from YAML (mappings, lists, scalars), or a model.
        key: The name under which ``value`` is stored; if it names a secret (see
            :func:`is_secret_name`), the whole value is masked unless it is ``None``.

    Returns:
        Mappings and lists are copied with their items redacted, strings pass through
        :func:`redact_url`, pydantic secrets and models (which redact themselves) and other
        values are returned as they are.
    """
    if value is None or is_secret_value(value) or isinstance(value, BaseModel):
        return value
    if key is not None and is_secret_name(key):
        return SECRET_MASK
    if isinstance(value, Mapping):
        return {k: redact(v, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact(item) for item in value)
    if isinstance(value, str):
        return redact_url(value)
    return value


class RedactedReprMixin(BaseModel):
    """A pydantic model whose ``repr()`` and ``str()`` pass every field through :func:`redact`."""

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact(value, name)


class OptionsModel(RedactedReprMixin):
    """A base for gateway options models: unknown keys are errors, values are immutable, and
    the repr never shows secrets.

    Declare secret options as ``SecretStr``::

        class MqttOptions(OptionsModel):
            broker: str = "embedded"
            username: str | None = None
            password: SecretStr | None = None
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
