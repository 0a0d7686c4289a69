"""Web chat sessions: one per browser session (the id the page keeps in its
``sessionStorage``), with its user, its outbox of answers not yet acknowledged, the ids of
its latest messages and its rate bucket. In memory: a daemon restart forgets them.

An answer (``message``, ``reaction`` frame) gets the session's next ``seq`` (1, 2, ...)
and stays in the outbox until the page acknowledges that ``seq`` (``ack``, cumulative), up
to ``outbox_size`` frames; beyond, the oldest is dropped and counted. A session expires
``session_idle`` seconds after its last frame while no socket is connected.
"""

from __future__ import annotations

import secrets
from collections import deque
from typing import Any, Protocol

from layer.types import ChatUser

__all__ = ["Session", "SessionTable", "Socket"]


class Socket(Protocol):
    """What a session sends its frames through (``connection.Connection``)."""

    async def send(self, frame: dict[str, Any]) -> bool:
        """Send one frame; False when the socket is gone."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with a WebSocket close code (RFC 6455 section 7.4)."""
        ...


class Session:
    """One browser session: the scope key and conversation id of its conversation is ``id``.

    Attributes:
        id: The conversation id, 16 URL-safe characters: the scope key, in logs, events
            and idempotency keys; it does not let anyone resume the session.
        resume: The resume secret the page keeps and sends in ``hello`` (``session``), 32
            URL-safe characters (192 random bits); never logged.
        user: ``user`` of its events (``docs/specs/chat.md``, User).
        subject: The token's ``sub`` it was opened with, ``None`` when anonymous: a hello
            resuming it must name the same one.
        outbox: ``(seq, frame)`` of answers not acknowledged yet, oldest first.
        seq: The last ``seq`` given.
        dropped: Answers dropped from a full outbox since the page last connected.
        socket: The connected socket, or ``None``.
        last_active: ``loop.time()`` of its last frame, in seconds.
    """

    __slots__ = (
        "_seen",
        "_stamp",
        "_tokens",
        "dropped",
        "id",
        "last_active",
        "malformed",
        "outbox",
        "resume",
        "seq",
        "socket",
        "subject",
        "user",
    )

    def __init__(
        self, session_id: str, resume: str, user: ChatUser, subject: str | None, now: float
    ) -> None:
        self.id = session_id
        self.resume = resume
        self.user = user
        self.subject = subject
        self.outbox: deque[tuple[int, dict[str, Any]]] = deque()
        self.seq = 0
        self.dropped = 0
        self.socket: Socket | None = None
        self.last_active = now
        #: Malformed frames it sent (only the first is logged).
        self.malformed = 0
        self._seen: dict[str, None] = {}
        self._tokens = -1.0  # full, set on first use
        self._stamp = now

    def push(self, frame: dict[str, Any], limit: int) -> dict[str, Any]:
        """Give ``frame`` the next ``seq`` and keep it until acknowledged.

        Args:
            frame: A ``message`` or ``reaction`` frame, without ``seq``.
            limit: ``outbox_size``: the oldest frames beyond it are dropped and counted.

        Returns:
            The frame, with ``seq`` set.
        """
        self.seq += 1
        frame["seq"] = self.seq
        self.outbox.append((self.seq, frame))
        while len(self.outbox) > limit:
            self.outbox.popleft()
            self.dropped += 1
        return frame

    def ack(self, seq: int) -> None:
        """Forget the frames up to ``seq``, which the page has shown."""
        while self.outbox and self.outbox[0][0] <= seq:
            self.outbox.popleft()

    def pending(self, after: int) -> list[dict[str, Any]]:
        """The kept frames after ``seq`` ``after``, oldest first."""
        return [frame for seq, frame in self.outbox if seq > after]

    def seen(self, message_id: str) -> bool:
        """Whether ``message_id`` came before (among the latest ``remember``ed)."""
        return message_id in self._seen

    def remember(self, message_id: str, limit: int) -> None:
        """Remember ``message_id`` among the latest ``limit`` ids."""
        self._seen[message_id] = None
        if len(self._seen) > limit:
            del self._seen[next(iter(self._seen))]

    def forget(self, message_id: str) -> None:
        """Forget ``message_id`` (its message was not delivered after all)."""
        self._seen.pop(message_id, None)

    def take(self, now: float, rate: float, burst: int) -> float:
        """Take one message from the session's token bucket (``burst`` tokens, refilled at
        ``rate`` per second).

        Returns:
            0.0 when the message may go; else the seconds until one may.
        """
        tokens = float(burst) if self._tokens < 0 else self._tokens
        tokens = min(float(burst), tokens + (now - self._stamp) * rate)
        self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return 0.0
        self._tokens = tokens
        return (1.0 - tokens) / rate


class SessionTable:
    """The live sessions by resume secret (``by_id``: by conversation id), with their expiry.

    Args:
        idle: ``session_idle``, seconds.
        limit: ``max_sessions``.
    """

    def __init__(self, idle: float, limit: int) -> None:
        self.idle = idle
        self.limit = limit
        self.sessions: dict[str, Session] = {}
        self.by_id: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self.sessions)

    def get(self, resume: object, now: float) -> Session | None:
        """The live session whose resume secret is ``resume``; ``None`` if unknown, not a
        str, or expired."""
        if not isinstance(resume, str):
            return None
        session = self.sessions.get(resume)
        if session is not None and session.socket is None and now - session.last_active > self.idle:
            self._drop(session)
            return None
        return session

    def _drop(self, session: Session) -> None:
        del self.sessions[session.resume]
        del self.by_id[session.id]

    def open(self, user: ChatUser | None, subject: str | None, now: float) -> Session | None:
        """A new session with a fresh id; ``None`` when ``max_sessions`` are live.

        Args:
            user: Its user; ``None``: anonymous, ``user["id"]`` is the session id and
                ``identity`` ``None``.
            subject: The token's ``sub``, ``None`` when anonymous.
            now: ``loop.time()``.
        """
        if len(self.sessions) >= self.limit:
            self.sweep(now)
            if len(self.sessions) >= self.limit:
                return None
        session_id = secrets.token_urlsafe(12)
        if user is None:
            user = {"id": session_id, "name": None, "is_bot": False, "identity": None}
        session = Session(session_id, secrets.token_urlsafe(24), user, subject, now)
        self.sessions[session.resume] = session
        self.by_id[session.id] = session
        return session

    def sweep(self, now: float) -> list[str]:
        """Forget the sessions idle for ``idle`` seconds with no socket.

        Returns:
            Their conversation ids.
        """
        gone = [
            session
            for session in self.sessions.values()
            if session.socket is None and now - session.last_active > self.idle
        ]
        for session in gone:
            self._drop(session)
        return [session.id for session in gone]
