"""The pure part of the Discord gateway: which messages are delivered, mentions, users,
markdown escaping, splitting long texts, and emoji names."""

from __future__ import annotations

import pytest

from gateways.discord.events import (
    emoji_for,
    escape_markdown,
    is_delivered,
    mentions_bot,
    reaction_name,
    split_content,
)
from gateways.testing.discord import payloads

BOT = "80351110224678912"
ALICE = payloads.user("81384788765712384", "alice")


def test_only_plain_messages_and_replies_of_others_are_delivered() -> None:
    plain = payloads.message("1", "2", ALICE, "hi")
    assert is_delivered(plain, BOT, bots=False)
    assert is_delivered({**plain, "type": 19}, BOT, bots=False)
    assert not is_delivered({**plain, "type": 7}, BOT, bots=False)  # a member joined
    assert not is_delivered({**plain, "author": payloads.user(BOT, "me", bot=True)}, BOT, bots=True)
    other = {**plain, "author": payloads.user("3", "otherbot", bot=True)}
    assert not is_delivered(other, BOT, bots=False)
    assert is_delivered(other, BOT, bots=True)
    assert not is_delivered({**plain, "webhook_id": "9"}, BOT, bots=False)


@pytest.mark.parametrize(
    ("content", "mentions", "expected"),
    [
        (f"<@{BOT}> hi", [], True),
        (f"hi <@!{BOT}>", [], True),
        ("a reply", [payloads.user(BOT, "me", bot=True)], True),
        ("<@123> hi", [], False),
        ("hi", [], False),
    ],
)
def test_mentions_of_the_bot(content: str, mentions: list[dict[str, str]], expected: bool) -> None:
    message = payloads.message("1", "2", ALICE, content, mentions=mentions)
    assert mentions_bot(message, BOT) is expected


def test_plain_text_escapes_markdown_but_not_mentions_emoji_or_links() -> None:
    text = "*a* _b_ ~c~ `d` |e| <@1> <#2> <:party:3> https://x.org/a_b?q=*"
    assert escape_markdown(text) == (
        r"\*a\* \_b\_ \~c\~ \`d\` \|e\| <@1> <#2> <:party:3> https://x.org/a_b?q=*"
    )
    assert escape_markdown("> quote\n# title\n- item") == "\\> quote\n\\# title\n\\- item"


def test_long_texts_are_cut_at_line_breaks_then_spaces() -> None:
    assert split_content("short") == ["short"]
    lines = "\n".join(["x" * 1500, "y" * 1500])
    assert split_content(lines) == ["x" * 1500, "y" * 1500]
    words = " ".join(["w" * 9] * 300)  # 2999 characters
    pieces = split_content(words)
    assert all(len(p) <= 2000 for p in pieces)
    assert " ".join(pieces) == words
    assert split_content("z" * 4001) == ["z" * 2000, "z" * 2000, "z"]


def test_emoji_names_both_ways() -> None:
    assert emoji_for("thumbsup") == emoji_for(":+1:") == "\N{THUMBS UP SIGN}"
    assert emoji_for("party:123") == "party:123"
    assert emoji_for("\N{PARTY POPPER}") == "\N{PARTY POPPER}"
    assert emoji_for("no_such_name") is None
    assert reaction_name({"id": None, "name": "\N{THUMBS UP SIGN}"}) == "thumbsup"
    assert reaction_name({"id": None, "name": "\N{GRINNING FACE}"}) == "\N{GRINNING FACE}"
    assert reaction_name({"id": "123", "name": "party"}) == "party:123"
