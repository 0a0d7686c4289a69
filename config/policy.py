"""The access policy of a daemon: ``access:`` (``config.access``) applied to one command.

The daemon makes one ``AccessPolicy`` and puts it in every chat scope as
``scope["access"]``; ``consumers.ChatConsumer`` asks it before running a command, for
``help``, and before each answer. It also keeps the per-user rate windows, so they span
every conversation of the process. Counters (Prometheus, default registry):
``asgi_gateway_commands_denied_total{gateway,command}``,
``asgi_gateway_commands_limited_total{gateway}``,
``asgi_gateway_answers_delayed_total{gateway}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from config.access import (
    ANYONE,
    AUTHENTICATED,
    GATEWAY_ADMINS,
    AccessConfig,
    AccessRule,
    Rate,
)

__all__ = ["AccessPolicy", "CommandInfo", "Decision", "Sender"]

logger = logging.getLogger(__name__)

_DENIED = Counter(
    "asgi_gateway_commands_denied",
    "Chat commands refused by the access rules.",
    ["gateway", "command"],
)
_LIMITED = Counter(
    "asgi_gateway_commands_limited",
    "Chat commands not run because their sender was over access.rate.commands.",
    ["gateway"],
)
_DELAYED = Counter(
    "asgi_gateway_answers_delayed",
    "Answers held back because their user was over access.rate.answers.",
    ["gateway"],
)


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """What the policy needs of a command (``consumers.chat.Command`` has it all).

    Attributes:
        name: The command word.
        tags: Its tags.
        allow: Its own ``@command(allow=...)`` subjects; empty: none declared.
        private_only: Its own ``@command(private_only=True)``.
    """

    name: str
    tags: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    private_only: bool = False


@dataclass(frozen=True, slots=True)
class Sender:
    """Who asks, and where.

    Attributes:
        gateway: ``scope["gateway"]``.
        identity: ``user["identity"]``; ``None`` when the platform does not vouch.
        user_id: ``user["id"]``, the rate window's key when there is no identity.
        name: ``user["name"]``, for the answer's ``{user}`` (else ``user_id``).
        conversation: ``conversation["id"]``.
        direct: Whether the conversation is a direct one.
    """

    gateway: str
    identity: str | None
    user_id: str
    name: str | None
    conversation: str
    direct: bool

    @classmethod
    def of(cls, scope: Mapping[str, Any], user: Mapping[str, Any]) -> Sender:
        """The sender of an event with ``user``, in a chat ``scope``."""
        conversation: Mapping[str, Any] = scope.get("conversation") or {}
        identity = user.get("identity")
        return cls(
            gateway=str(scope.get("gateway", "")),
            identity=identity if isinstance(identity, str) and identity else None,
            user_id=str(user.get("id", "")),
            name=user.get("name") if isinstance(user.get("name"), str) else None,
            conversation=str(conversation.get("id", "")),
            direct=conversation.get("kind") == "direct",
        )

    @property
    def key(self) -> str:
        """The rate windows' key: the identity, else the gateway and the user id."""
        return self.identity or f"{self.gateway}~{self.user_id}"


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a command may run, and why.

    Attributes:
        allowed: The verdict.
        reason: ``"admin"``, ``"rule N"`` (0-based, of ``access.rules``), ``"command"``
            (its own ``allow``/``private_only``) or ``"default"``.
        reply: The answer for a denial (may be empty: say nothing); ``""`` when allowed.
    """

    allowed: bool
    reason: str
    reply: str = ""


class AccessPolicy:
    """``access:`` applied: command decisions and per-user rate windows.

    Args:
        config: The section; ``None`` (no section) allows every command that does not
            restrict itself with ``@command(allow=...)``, and limits no rate.
    """

    def __init__(self, config: AccessConfig | None = None) -> None:
        self.config = config if config is not None else AccessConfig()
        self._windows = MovingWindowRateLimiter(MemoryStorage())
        rate = self.config.rate
        self._commands = _item(rate.commands if rate else None)
        self._answers = _item(rate.answers if rate else None)
        #: One ``limited_reply`` per user per window of ``rate.commands``.
        self._told = (
            None if rate is None or rate.commands is None else _item(Rate(1, rate.commands.seconds))
        )

    # -- decisions -----------------------------------------------------------------------

    def decide(self, command: CommandInfo, sender: Sender) -> Decision:
        """Whether ``sender`` may run ``command``: admins, then the rules in order (first
        match wins), then the command's own ``allow`` and ``private_only``, then
        ``default``."""
        config = self.config
        if self._is_admin(sender):
            return Decision(True, "admin")
        for number, rule in enumerate(config.rules):
            if self._applies(rule, command, sender):
                if rule.allows:
                    return Decision(True, f"rule {number}")
                template = rule.reply if rule.reply is not None else config.deny_reply
                return Decision(False, f"rule {number}", _fill(template, command, sender))
        if command.private_only and not sender.direct:
            return Decision(False, "command", _fill(config.deny_reply, command, sender))
        if command.allow:
            if self._matches(command.allow, sender):
                return Decision(True, "command")
            return Decision(False, "command", _fill(config.deny_reply, command, sender))
        if config.default == "allow":
            return Decision(True, "default")
        return Decision(False, "default", _fill(config.deny_reply, command, sender))

    def check(self, command: CommandInfo, sender: Sender) -> Decision:
        """``decide``, with a log line and a count for a denial."""
        decision = self.decide(command, sender)
        if not decision.allowed:
            _DENIED.labels(sender.gateway, command.name).inc()
            logger.warning(
                "Gateway %r: command %r denied to %s in conversation %r (%s)",
                sender.gateway,
                command.name,
                sender.identity or f"unauthenticated user {sender.user_id!r}",
                sender.conversation,
                decision.reason,
            )
        return decision

    def _is_admin(self, sender: Sender) -> bool:
        admins = self.config.admins.get(sender.gateway)
        return bool(admins) and self._matches(admins or [], sender, admins_too=False)

    def _matches(self, subjects: Iterable[str], sender: Sender, *, admins_too: bool = True) -> bool:
        identity = sender.identity
        for subject in subjects:
            if subject == ANYONE:
                return True
            if identity is None:
                continue
            if subject in (AUTHENTICATED, identity):
                return True
            if subject == GATEWAY_ADMINS and admins_too and self._is_admin(sender):
                return True
            if subject.startswith("group:") and identity in self.config.groups.get(subject[6:], ()):
                return True
        return False

    def _applies(self, rule: AccessRule, command: CommandInfo, sender: Sender) -> bool:
        if rule.commands or rule.tags:
            named = command.name in rule.commands
            if not named and not set(rule.tags).intersection(command.tags):
                return False
        if rule.gateways and sender.gateway not in rule.gateways:
            return False
        if rule.conversations and sender.conversation not in rule.conversations:
            return False
        if rule.private_only and not sender.direct:
            return False
        return self._matches(rule.subjects, sender)

    # -- rates ---------------------------------------------------------------------------

    def take_command(self, sender: Sender) -> tuple[bool, str]:
        """Count one command of ``sender`` against ``access.rate.commands``.

        Returns:
            ``(True, "")`` when it may run; ``(False, reply)`` when not, ``reply`` being
            ``limited_reply`` the first time in a window and ``""`` after (say nothing).
        """
        item = self._commands
        if item is None or self._windows.hit(item, sender.gateway, sender.key):
            return True, ""
        _LIMITED.labels(sender.gateway).inc()
        rate = self.config.rate
        first = self._told is not None and self._windows.hit(
            self._told, sender.gateway, sender.key, "told"
        )
        if first:
            logger.warning(
                "Gateway %r: %s is over %s commands; more are not run in this window",
                sender.gateway,
                sender.identity or f"unauthenticated user {sender.user_id!r}",
                rate.commands if rate else "",
            )
        else:
            logger.debug("Gateway %r: command of %s not run (rate)", sender.gateway, sender.key)
        if not first or rate is None or not rate.limited_reply:
            return False, ""
        return False, rate.limited_reply.format(
            rate=rate.commands, user=sender.name or sender.user_id
        )

    async def pace_answer(self, sender: Sender) -> None:
        """Wait until ``sender`` may get one more answer (``access.rate.answers``); returns
        at once when there is room or no limit."""
        item = self._answers
        if item is None:
            return
        delayed = False
        while not self._windows.hit(item, sender.gateway, sender.key, "answers"):
            if not delayed:
                delayed = True
                _DELAYED.labels(sender.gateway).inc()
            stats = self._windows.get_window_stats(item, sender.gateway, sender.key, "answers")
            await asyncio.sleep(min(max(stats.reset_time - time.time(), 0.05), item.get_expiry()))


def _item(rate: Rate | None) -> RateLimitItem | None:
    return None if rate is None else RateLimitItemPerSecond(rate.amount, rate.seconds)


def _fill(template: str, command: CommandInfo, sender: Sender) -> str:
    return template.format(command=command.name, user=sender.name or sender.user_id)
