"""Text rules of the IRC gateway: fitting text into IRC lines, mentions, CTCP, flood control.

An IRC line is at most 512 bytes including the prefix the server adds when it relays the
line (``:nick!user@host``), the command, its parameters and the final CRLF (RFC 2812
section 2.3). CTCP is described in the CTCP draft (``\\x01ACTION text\\x01`` for ``/me``).
"""

from __future__ import annotations

import asyncio
import re

__all__ = [
    "MAX_HOST_BYTES",
    "TokenBucket",
    "addresses_nick",
    "parse_ctcp",
    "room_for_text",
    "split_text",
]

#: The longest host name the server may show in our prefix (RFC 1035: 63 for a label,
#: and servers cap hosts at 63 bytes), used while our real hostmask is not known yet.
MAX_HOST_BYTES = 63
#: The longest user name a server shows (USERLEN is 10 on most servers, plus a "~" when
#: ident did not answer).
_MAX_USER_BYTES = 11

_CTCP = "\x01"


def room_for_text(
    hostmask: str | None, nick: str, command: str, target: str, max_line_bytes: int = 512
) -> int:
    """Bytes left for the text of ``<command> <target> :<text>`` as the server relays it.

    Args:
        hostmask: The bot's ``nick!user@host`` as the server sees it, or ``None`` when not
            known yet (then the longest user and host a server shows are assumed).
        nick: The bot's nickname now (used when ``hostmask`` is ``None``).
        command: ``"PRIVMSG"`` or ``"NOTICE"``.
        target: A channel or a nickname.
        max_line_bytes: The line limit, CRLF included (512, RFC 2812 section 2.3).

    Returns:
        The number of bytes the text may take (at least 1).
    """
    if hostmask is None:
        prefix_bytes = len(nick.encode()) + 1 + _MAX_USER_BYTES + 1 + MAX_HOST_BYTES
    else:
        prefix_bytes = len(hostmask.encode())
    # ":" prefix " " command " " target " :" text "\r\n"
    used = 1 + prefix_bytes + 1 + len(command) + 1 + len(target.encode()) + 2 + 2
    return max(max_line_bytes - used, 1)


def _cut(data: bytes, room: int) -> int:
    """Where to cut ``data`` (longer than ``room``): after the last space that fits, else
    at the last UTF-8 character boundary that fits."""
    space = data.rfind(b" ", 0, room + 1)
    if space > 0:
        return space
    cut = room
    # A UTF-8 continuation byte is 0b10xxxxxx: back up to the start of the character.
    while cut > 0 and data[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut if cut > 0 else room


def split_text(text: str, room: int) -> list[str]:
    """Split ``text`` into IRC message texts of at most ``room`` bytes each (UTF-8).

    Each line of ``text`` (split on CR, LF or CRLF) becomes one message or more; empty
    lines are left out (IRC has no empty messages: ERR_NOTEXTTOSEND, 412). A line longer
    than ``room`` is cut at the last space that fits (the space is dropped), or, in a word
    longer than ``room``, at a character boundary, never inside a UTF-8 sequence. NUL, which
    no IRC line may hold, is dropped.

    Args:
        text: The text, any length.
        room: Bytes per message text, from ``room_for_text``.

    Returns:
        The texts, in order; ``"".join`` of them with the dropped spaces and line breaks
        gives ``text`` back.

    Raises:
        ValueError: ``room`` is below 4 (no UTF-8 character would fit).
    """
    if room < 4:
        raise ValueError(f"room {room} is too small for a UTF-8 character (at least 4 bytes)")
    parts: list[str] = []
    for line in re.split(r"\r\n|\r|\n", text.replace("\x00", "")):
        data = line.encode()
        while len(data) > room:
            cut = _cut(data, room)
            chunk, data = data[:cut], data[cut:]
            if data.startswith(b" "):
                data = data[1:]  # the space cut at (a character cut never lands on one)
            parts.append(chunk.decode())
        if data:
            parts.append(data.decode())
    return parts


def addresses_nick(text: str, nicks: list[str]) -> bool:
    """Whether ``text`` is addressed to one of ``nicks``: it starts with ``nick:``,
    ``nick,`` or ``@nick`` (the forms IRC clients write when one completes a nickname),
    compared without regard to ASCII case (RFC 2812 section 2.2).

    Args:
        text: A message's text.
        nicks: The bot's nicknames (its current one and its configured one).
    """
    lowered = text.lstrip().lower()
    for nick in nicks:
        folded = nick.lower()
        if lowered.startswith(folded) and lowered[len(folded) : len(folded) + 1] in (":", ","):
            return True
        if lowered.startswith("@" + folded):
            rest = lowered[len(folded) + 1 : len(folded) + 2]
            if rest in ("", " ", ":", ","):
                return True
    return False


def parse_ctcp(text: str) -> tuple[str, str] | None:
    """The CTCP request in a PRIVMSG text, as ``(command, argument)``, or ``None``.

    ``"\\x01ACTION waves\\x01"`` gives ``("ACTION", "waves")``; the closing ``\\x01`` may be
    missing (some clients leave it out).
    """
    if not text.startswith(_CTCP) or len(text) < 2:
        return None
    body = text[1:].removesuffix(_CTCP)
    command, _, argument = body.partition(" ")
    if not command:
        return None
    return command.upper(), argument


class TokenBucket:
    """Flood control: ``burst`` tokens, refilled at ``rate`` tokens per second; each line
    takes one and waits while none is left.

    Args:
        burst: Most tokens (lines sent back to back after a quiet spell), at least 1.
        rate: Tokens per second; ``None`` never waits.
    """

    def __init__(self, burst: int, rate: float | None) -> None:
        self.burst = burst
        self.rate = rate
        self._tokens = float(burst)
        self._updated: float | None = None

    async def take(self) -> None:
        """Take a token, sleeping until one is available."""
        rate = self.rate
        if rate is None:
            return
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self._updated is not None:
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / rate)
