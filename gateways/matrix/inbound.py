"""What a ``/sync`` brings, turned into chat events for the Matrix gateway's conversations.

``Inbound.handle(response)`` takes one sync batch (client-server API section 8.3): it
accepts invites (``auto_join``; an invite whose member event has ``is_direct`` makes a
direct room, section 11.23.1), and delivers each joined room's new timeline events in order:

- ``m.room.message`` is a ``chat.message`` (``m.text``, ``m.notice``, ``m.emote``, files);
- ``m.reaction`` (``m.annotation``) is a ``chat.reaction`` with ``added`` true, and the
  redaction of a reaction seen earlier one with ``added`` false;
- the bot's own events are never delivered, nor any event up to the bot's own join in a
  room it has just joined (the backlog a new member may read), nor anything in the first
  sync of a store without a sync token (the whole history), nor an event seen already.

Every event has ``idempotency_key`` ``"matrix:<event id>"`` (``docs/state.md``): the id
(``$...``) of the ``m.room.message``, of the ``m.reaction``, or of the redaction that took
a reaction away. Each event has an id of its own, given once by the homeserver
(https://spec.matrix.org/latest/appendices/#event-ids), and a ``/sync`` that brings an
event again (after a restart whose store's sync token is behind) brings the same id.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, Protocol, cast

from nio import MatrixRoom, SyncResponse  # type: ignore[import-untyped]

from gateways.chat import ConversationHost
from gateways.containers import BoundedMap
from gateways.matrix.events import (
    FILE_MSGTYPES,
    TEXT_MSGTYPES,
    attachments,
    body_text,
    mentions_user,
    relation,
    reply_to_of,
    thread_of,
)
from gateways.matrix.options import MatrixGatewayOptions
from layer.types import ChatBot, ChatMessageEvent, ChatReactionEvent, ChatUser, Message

__all__ = ["Inbound", "MatrixHost"]

logger = logging.getLogger(__name__)

#: How many events are remembered: seen ids (deduplication), authors (for replies), the
#: bot's own messages (a reply to one mentions the bot) and reactions (for their redaction).
REMEMBERED = 4096


class MatrixHost(ConversationHost, Protocol):
    """What ``Inbound`` uses of its gateway, besides ``ConversationHost``'s."""

    name: str
    bot: ChatBot
    options: MatrixGatewayOptions

    def is_direct(self, room_id: str) -> bool:
        """Whether the room is a direct conversation."""
        ...

    async def accept_invite(self, room_id: str, *, direct: bool) -> None:
        """Join a room the bot is invited to."""
        ...


def _user_of(room: MatrixRoom | None, sender: str) -> ChatUser:
    name = room.user_name(sender) if room is not None else None
    user = {"id": sender, "name": name or sender, "is_bot": False, "identity": f"matrix:{sender}"}
    return cast("ChatUser", user)


def _is_own_join(source: dict[str, Any], user_id: str) -> bool:
    """Whether a timeline event is the bot's own join (not a profile change of a member)."""
    if source.get("type") != "m.room.member" or source.get("state_key") != user_id:
        return False
    content = source.get("content")
    if not isinstance(content, dict) or content.get("membership") != "join":
        return False
    unsigned = source.get("unsigned")
    previous = unsigned.get("prev_content") if isinstance(unsigned, dict) else None
    return not (isinstance(previous, dict) and previous.get("membership") == "join")


class Inbound:
    """The inbound half of the Matrix gateway.

    Args:
        host: The gateway (a ``MatrixHost``).
        rooms: matrix-nio's rooms by id (``AsyncClient.rooms``), for names and members.
    """

    def __init__(self, host: MatrixHost, rooms: dict[str, MatrixRoom]) -> None:
        self.host = host
        self.rooms = rooms
        self.user_id = host.options.user_id
        self._seen: BoundedMap[str, bool] = BoundedMap(REMEMBERED)
        #: The sender of recent messages by event id, for ``reply_to``'s mention.
        self.authors: BoundedMap[str, str] = BoundedMap(REMEMBERED)
        #: Event ids of the bot's own recent messages: a reply to one mentions the bot.
        self.own: BoundedMap[str, bool] = BoundedMap(REMEMBERED)
        #: Recent reactions by their event id: (room, message, key, sender).
        self._reactions: BoundedMap[str, tuple[str, str, str, str]] = BoundedMap(REMEMBERED)
        self._encrypted_warned: set[str] = set()

    async def handle(self, response: SyncResponse, *, backlog: bool) -> None:
        """Accept invites and deliver a sync batch's new events.

        Args:
            response: The batch (matrix-nio has already updated ``rooms`` from it).
            backlog: The batch is an initial sync: its timelines are history, not delivered.
        """
        for room_id, invite in response.rooms.invite.items():
            await self._invited(room_id, invite.invite_state)
        if backlog:
            return
        for room_id, info in response.rooms.join.items():
            sources = [getattr(event, "source", None) for event in info.timeline.events]
            events = [s for s in sources if isinstance(s, dict)]
            start = 0
            for index, source in enumerate(events):
                if _is_own_join(source, self.user_id):
                    start = index + 1  # what came before the bot joined is backlog
            for source in events[start:]:
                await self._event(room_id, source)

    async def _invited(self, room_id: str, invite_state: list[Any]) -> None:
        if not self.host.options.auto_join:
            return
        direct = False
        for event in invite_state:  # matrix-nio's InviteMemberEvent and others (stripped)
            content = getattr(event, "content", None)
            if getattr(event, "state_key", None) == self.user_id and isinstance(content, dict):
                direct = direct or content.get("is_direct") is True
        await self.host.accept_invite(room_id, direct=direct)

    async def _event(self, room_id: str, source: dict[str, Any]) -> None:
        event_id, sender = source.get("event_id"), source.get("sender")
        if not isinstance(event_id, str) or not isinstance(sender, str):
            return
        if self._seen.get(event_id) or sender == self.user_id:
            return
        self._seen.put(event_id, True)
        kind = source.get("type")
        content = source.get("content")
        if not isinstance(content, dict):
            return
        if kind == "m.room.message":
            await self._message(room_id, event_id, sender, content, source)
        elif kind == "m.reaction":
            await self._reaction(room_id, event_id, sender, content, source)
        elif kind == "m.room.redaction":
            redacts = source.get("redacts") or content.get("redacts")
            if isinstance(redacts, str):
                await self._unreaction(redacts, source)
        elif kind == "m.room.encrypted" and room_id not in self._encrypted_warned:
            self._encrypted_warned.add(room_id)
            logger.warning(
                "Gateway %r: room %s has encrypted messages this gateway can't read%s",
                self.host.name,
                room_id,
                "" if self.host.options.e2e else " (e2e is off)",
            )

    def _conversation(self, room_id: str, thread: str | None, sender: str) -> tuple[str, Any]:
        room = self.rooms.get(room_id)
        direct = self.host.is_direct(room_id)
        kind: Literal["direct", "group"] = "direct" if direct else "group"
        name: str | None = None
        if room is not None and not direct:
            alias = room.canonical_alias
            name = room.name or (alias[1:].split(":", 1)[0] if alias else None)
        return self.host.conversation_for(
            channel_id=room_id, kind=kind, name=name, thread_id=thread, user_id=sender
        )

    async def _message(
        self,
        room_id: str,
        event_id: str,
        sender: str,
        content: dict[str, Any],
        source: dict[str, Any],
    ) -> None:
        msgtype = content.get("msgtype")
        if relation(content).get("rel_type") == "m.replace":
            return  # an edit (section 11.37): the message was delivered when first sent
        if msgtype not in TEXT_MSGTYPES and msgtype not in FILE_MSGTYPES and "body" not in content:
            return
        thread = thread_of(content)
        reply_to = reply_to_of(content)
        self.authors.put(event_id, sender)
        names = [n for n in (self.host.bot["name"], self.user_id[1:].split(":", 1)[0]) if n]
        mentions = (
            self.host.is_direct(room_id)
            or mentions_user(content, self.user_id, names)
            or (reply_to is not None and bool(self.own.get(reply_to)))
        )
        key, conversation = self._conversation(room_id, thread, sender)
        user = _user_of(self.rooms.get(room_id), sender)
        user["is_bot"] = msgtype == "m.notice"  # what bots send (section 11.2.1.1)
        event: ChatMessageEvent = {
            "type": "chat.message",
            "id": event_id,
            "text": body_text(content),
            "user": user,
            "thread_id": thread,
            "mentions_bot": mentions,
            "attachments": attachments(content, self.host.options.homeserver),
            "raw": {
                "room_id": room_id,
                "event": source,
                "msgtype": msgtype,
                "reply_to": reply_to,
            },
            "idempotency_key": f"matrix:{event_id}",
        }
        await self.host.dispatch_chat(key, conversation, cast("Message", event))

    async def _reaction(
        self,
        room_id: str,
        event_id: str,
        sender: str,
        content: dict[str, Any],
        source: dict[str, Any],
    ) -> None:
        relates = relation(content)
        target, reaction = relates.get("event_id"), relates.get("key")
        if relates.get("rel_type") != "m.annotation" or not isinstance(target, str):
            return
        if not isinstance(reaction, str) or not reaction:
            return
        self._reactions.put(event_id, (room_id, target, reaction, sender))
        await self._deliver_reaction(room_id, target, reaction, sender, True, source)

    async def _unreaction(self, redacted: str, source: dict[str, Any]) -> None:
        known = self._reactions.peek(redacted)
        if known is not None:
            room_id, target, reaction, sender = known
            await self._deliver_reaction(room_id, target, reaction, sender, False, source)

    async def _deliver_reaction(
        self,
        room_id: str,
        target: str,
        reaction: str,
        sender: str,
        added: bool,
        source: dict[str, Any],
    ) -> None:
        key, conversation = self._conversation(room_id, None, sender)
        event: ChatReactionEvent = {
            "type": "chat.reaction",
            "message_id": target,
            "reaction": reaction,
            "added": added,
            "user": _user_of(self.rooms.get(room_id), sender),
            "raw": {"room_id": room_id, "event": source},
        }
        event_id = source.get("event_id")  # the reaction's, or its redaction's
        if isinstance(event_id, str):
            event["idempotency_key"] = f"matrix:{event_id}"
        await self.host.dispatch_chat(key, conversation, cast("Message", event))
