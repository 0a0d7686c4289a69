"""The ``access:`` section: who may run which chat command, where, and how often.

Rules match a sender's ``identity`` (``docs/specs/chat.md``, User): ``"<platform>:<id>"``,
an id the platform vouches for, never a display name. A rule names the commands it is about
(by name or by tag), whom it allows or denies, and optionally where (gateways,
conversations, direct conversations only). The first rule that matches decides; when none
does, the command's own ``@command(allow=...)`` does, then ``default``. Errbot's command
filters and opsdroid's constraints are the models; ``docs/security.md`` has the whole story.

Example::

    access:
      default: allow
      groups:
        operators: ["console:alice", "slack:U0OPERATOR"]
      admins:
        chat: ["console:root"]
      rules:
        - tags: [device]
          allow: ["group:operators"]
        - tags: [device]
          deny: ["*"]
      rate:
        commands: 5/10s
        answers: 20/60s
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator

from config.errors import ConfigPath
from config.redaction import RedactedReprMixin

__all__ = [
    "ANYONE",
    "AUTHENTICATED",
    "GATEWAY_ADMINS",
    "AccessConfig",
    "AccessRule",
    "Rate",
    "RateConfig",
    "check_subject",
    "parse_rate",
]

#: The subject every sender matches, authenticated or not.
ANYONE = "*"
#: The subject every sender with an identity matches (not an IRC nick without an account).
AUTHENTICATED = "authenticated"
#: The subject the admins of the scope's gateway match (``access.admins``).
GATEWAY_ADMINS = "admins"

_GROUP_PREFIX = "group:"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_IDENTITY = re.compile(r"[a-z][a-z0-9_.+-]*:\S+")
_COMMAND = re.compile(r"[^\s/]\S*")
_RATE = re.compile(
    r"\s*(?P<amount>\d+)\s*(?:/|per)\s*(?P<count>\d+)?\s*"
    r"(?P<unit>s|sec|second|m|min|minute|h|hour|d|day)s?\s*",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def check_subject(value: Any) -> str:
    """``value`` if it is a subject of an ``allow`` or ``deny`` list.

    A subject is an identity (``"slack:U0123"``, ``"irc:alice"``), ``"group:NAME"`` (a group
    of ``access.groups``), ``"admins"`` (the scope's gateway's admins), ``"authenticated"``
    or ``"*"`` (anyone).

    Raises:
        ValueError: ``value`` is none of these.
    """
    text = value if isinstance(value, str) else ""
    group = not text.startswith(_GROUP_PREFIX) or _NAME.fullmatch(text[6:])
    if (text in (ANYONE, AUTHENTICATED, GATEWAY_ADMINS) or _IDENTITY.fullmatch(text)) and group:
        return text
    raise ValueError(
        "a subject is an identity 'platform:id' (slack:U0123), 'group:NAME', 'admins', "
        f"'authenticated' or '*', got {value!r}"
    )


def _identity(value: Any) -> str:
    if isinstance(value, str) and _IDENTITY.fullmatch(value) and not value.startswith("group:"):
        return value
    raise ValueError(f"an identity is 'platform:id' (slack:U0123, console:alice), got {value!r}")


def _command_name(value: Any) -> str:
    if isinstance(value, str) and _COMMAND.fullmatch(value):
        return value.lower()
    raise ValueError(f"a command is one word without '/', got {value!r}")


def _name(value: Any) -> str:
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    raise ValueError(f"a name is 1 to 64 letters, digits, '_', '.' or '-', got {value!r}")


def _template(*fields: str) -> Any:
    def check(value: str) -> str:
        for _, field, _, _ in string.Formatter().parse(value):
            if field is not None and field not in fields:
                allowed = ", ".join("{" + f + "}" for f in fields)
                raise ValueError(f"unknown field {{{field}}}; the text may use {allowed}")
        return value

    return AfterValidator(check)


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``amount`` events per ``seconds`` seconds (a moving window)."""

    amount: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.amount}/{self.seconds}s"


def parse_rate(value: Any) -> Rate:
    """A ``Rate`` from ``"5/10s"``, ``"20/m"``, ``"100 per hour"`` or a ``Rate``.

    Raises:
        ValueError: Not such a text, or an amount or window of zero.
    """
    if isinstance(value, Rate):
        return value
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"a rate is 'N/Ts' (5/10s, 20/1m, 100/h), got {value!r}")
    amount, count = int(match["amount"]), int(match["count"] or 1)
    seconds = count * _UNIT_SECONDS[match["unit"][0].lower()]
    if amount < 1 or seconds < 1:
        raise ValueError(f"a rate needs at least 1 event in at least 1 second, got {value!r}")
    return Rate(amount, seconds)


Subject = Annotated[str, AfterValidator(check_subject)]
Identity = Annotated[str, AfterValidator(_identity)]
CommandName = Annotated[str, AfterValidator(_command_name)]
Name = Annotated[str, AfterValidator(_name)]
RateText = Annotated[Rate, BeforeValidator(parse_rate)]


class AccessRule(RedactedReprMixin):
    """One rule of ``access.rules``.

    Attributes:
        commands: The commands it is about (names, not aliases); with ``tags`` empty too,
            every command.
        tags: Or the commands with one of these tags (``@command(tags=...)``).
        allow: Who may run them (subjects, see ``check_subject``).
        deny: Or who may not. A rule has exactly one of ``allow`` and ``deny``.
        gateways: Only in these gateways (names of ``gateways:``); empty: in all.
        conversations: Only in these conversations (``conversation.id``, ``C0123`` on Slack,
            ``#ops`` on IRC); empty: in all.
        private_only: Only in direct conversations (DMs).
        reply: The answer when this rule denies; ``None``: ``access.deny_reply``.
    """

    model_config = ConfigDict(extra="forbid")

    commands: list[CommandName] = Field(default_factory=list)
    tags: list[Name] = Field(default_factory=list)
    allow: list[Subject] | None = None
    deny: list[Subject] | None = None
    gateways: list[str] = Field(default_factory=list)
    conversations: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    private_only: bool = False
    reply: Annotated[str, _template("command", "user")] | None = None

    @model_validator(mode="after")
    def _allow_or_deny(self) -> AccessRule:
        if (self.allow is None) == (self.deny is None):
            raise ValueError("a rule has exactly one of 'allow' and 'deny'")
        return self

    @property
    def allows(self) -> bool:
        """Whether the rule allows (``allow``) rather than denies (``deny``)."""
        return self.allow is not None

    @property
    def subjects(self) -> list[str]:
        """Its ``allow`` or ``deny`` list."""
        return self.allow if self.allow is not None else (self.deny or [])


class RateConfig(RedactedReprMixin):
    """``access.rate``: per-user limits, kept in this process (each daemon counts its own).

    Attributes:
        commands: Commands a user may run per window (``"5/10s"``), over all conversations
            of a gateway; more are not run. ``None``: no limit.
        answers: Answers the bot gives one user per window; more wait until the window
            has room, so one user's flood slows only that user's conversations. ``None``:
            no limit.
        limited_reply: Said once per window to a user over the ``commands`` limit;
            ``{rate}`` is the limit. Empty: say nothing.
    """

    model_config = ConfigDict(extra="forbid")

    commands: RateText | None = None
    answers: RateText | None = None
    limited_reply: Annotated[str, _template("rate", "user")] = (
        "Slow down: at most {rate} commands. Try again in a moment."
    )


class AccessConfig(RedactedReprMixin):
    """The ``access:`` section.

    Attributes:
        default: What happens when no rule (and no ``@command(allow=...)``) decides.
        deny_reply: The answer to a denied command; ``{command}`` and ``{user}`` (the
            sender's name) may appear. Empty: say nothing.
        groups: Group name -> identities; ``group:NAME`` in a rule names one.
        admins: Gateway name -> identities (or ``group:NAME``) that may run every command
            in that gateway, whatever the rules say.
        rules: The rules, first match wins.
        rate: Per-user rate limits; ``None``: none.
    """

    model_config = ConfigDict(extra="forbid")

    default: Literal["allow", "deny"] = "allow"
    deny_reply: Annotated[str, _template("command", "user")] = (
        "Sorry, you may not run {command} here."
    )
    groups: dict[Name, list[Identity]] = Field(default_factory=dict)
    admins: dict[str, list[Subject]] = Field(default_factory=dict)
    rules: list[AccessRule] = Field(default_factory=list)
    rate: RateConfig | None = None

    def problems(self, gateways: set[str] | None) -> list[tuple[ConfigPath, str, Any]]:
        """What refers to something that is not there, as ``(path, message, value)``.

        Args:
            gateways: The configuration's gateway names; ``None`` skips checking them.
        """
        found: list[tuple[ConfigPath, str, Any]] = []

        def check_groups(path: ConfigPath, subjects: list[str]) -> None:
            for index, subject in enumerate(subjects):
                if subject.startswith(_GROUP_PREFIX) and subject[6:] not in self.groups:
                    known = ", ".join(sorted(self.groups)) or "none"
                    message = f"no group {subject[6:]!r} in access.groups (groups: {known})"
                    found.append(((*path, index), message, subject))

        def check_gateway(path: ConfigPath, name: str) -> None:
            if gateways is not None and name not in gateways:
                known = ", ".join(sorted(gateways)) or "none"
                found.append((path, f"no gateway {name!r} (gateways: {known})", name))

        for gateway, subjects in self.admins.items():
            check_gateway(("access", "admins", gateway), gateway)
            check_groups(("access", "admins", gateway), subjects)
        for number, rule in enumerate(self.rules):
            where: ConfigPath = ("access", "rules", number)
            check_groups((*where, "allow" if rule.allows else "deny"), rule.subjects)
            for index, gateway in enumerate(rule.gateways):
                check_gateway((*where, "gateways", index), gateway)
        return found
