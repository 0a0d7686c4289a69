"""Fitting text into IRC lines, mentions and CTCP (gateways/irc_text.py)."""

from __future__ import annotations

import pytest

from gateways.irc.text import addresses_nick, parse_ctcp, room_for_text, split_text


def test_room_for_text_counts_the_prefix_the_server_adds_and_the_crlf():
    hostmask = "gwbot!~gwbot@127.0.0.1"
    room = room_for_text(hostmask, "gwbot", "PRIVMSG", "#t")
    line = f":{hostmask} PRIVMSG #t :" + "x" * room + "\r\n"
    assert len(line.encode()) == 512
    unknown = room_for_text(None, "gwbot", "PRIVMSG", "#t")
    assert unknown < room  # the longest user and host are assumed until known


def test_split_text_cuts_at_spaces_within_the_room():
    text = "alpha beta gamma delta"
    assert split_text(text, 11) == ["alpha beta", "gamma delta"]
    assert all(len(p.encode()) <= 11 for p in split_text(text * 20, 11))


def test_split_text_never_cuts_inside_a_utf8_character():
    parts = split_text("é" * 10, 5)  # 2 bytes each: 2 fit in 5 bytes, not 2.5
    assert parts == ["éé"] * 5
    emoji = split_text("😀" * 3, 6)  # 4 bytes each
    assert emoji == ["😀"] * 3


def test_split_text_sends_each_line_and_leaves_out_empty_ones():
    assert split_text("one\r\ntwo\n\nthree\rfour", 100) == ["one", "two", "three", "four"]
    assert split_text("nul\x00byte", 100) == ["nulbyte"]


def test_split_text_refuses_a_room_too_small_for_any_character():
    with pytest.raises(ValueError, match="room 3"):
        split_text("x", 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gwbot: temp", True),
        ("GWBOT, temp", True),
        ("  gwbot:temp", True),
        ("@gwbot temp", True),
        ("@gwbot", True),
        ("gwbotty: temp", False),
        ("@gwbotty temp", False),
        ("temp gwbot", False),
        ("gwbot temp", False),
    ],
)
def test_addresses_nick_knows_the_forms_irc_clients_write(text, expected):
    assert addresses_nick(text, ["gwbot"]) is expected


def test_parse_ctcp():
    assert parse_ctcp("\x01ACTION waves\x01") == ("ACTION", "waves")
    assert parse_ctcp("\x01action waves") == ("ACTION", "waves")
    assert parse_ctcp("\x01VERSION\x01") == ("VERSION", "")
    assert parse_ctcp("plain") is None
    assert parse_ctcp("\x01") is None
