"""Access control of chat commands (config.access, config.policy, ChatConsumer): rules in
the YAML and in code, first match wins, admins, private-only, help listing only what the
asker may run, and per-user rate limits of commands and answers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from config import load_config_text
from config.access import AccessConfig
from config.policy import AccessPolicy, CommandInfo, Sender
from consumers import ChatCommunicator, ChatConsumer, ConsumerError, command

ALICE = {"id": "U1", "name": "alice", "is_bot": False, "identity": "slack:U1"}
BOB = {"id": "U2", "name": "bob", "is_bot": False, "identity": "slack:U2"}
#: An IRC nick without a services account: no identity.
NICK = {"id": "alice", "name": "alice", "is_bot": False, "identity": None}


class Lab(ChatConsumer):
    @command(help="the temperature")
    async def temp(self, message: Any, args: list[str]) -> str:
        return "21.5"

    @command(help="set the heating", tags=["device"])
    async def heat(self, message: Any, args: list[str]) -> str:
        return "heating on"

    @command(help="restart the bot", allow=["slack:U1"])
    async def restart(self, message: Any, args: list[str]) -> str:
        return "restarting"

    @command(help="show a secret", private_only=True)
    async def secret(self, message: Any, args: list[str]) -> str:
        return "s3cret"


def policy(**section: Any) -> AccessPolicy:
    return AccessPolicy(AccessConfig.model_validate(section))


def chat(access: AccessPolicy | None, *, user: Any = ALICE, **kwargs: Any) -> ChatCommunicator:
    kwargs.setdefault("gateway", "slack")
    kwargs.setdefault("platform", "slack")
    return ChatCommunicator(Lab.as_asgi(), user=user, access=access, **kwargs)


async def answer(communicator: ChatCommunicator, text: str, user: Any = None) -> str:
    await communicator.say(text, user=user)
    return await communicator.receive_text()


OPERATORS = {
    "groups": {"operators": ["slack:U1"]},
    "rules": [
        {"tags": ["device"], "allow": ["group:operators"]},
        {"tags": ["device"], "deny": ["*"], "reply": "Sorry {user}, not {command}."},
    ],
}


def denied(gateway: str, name: str) -> float:
    labels = {"gateway": gateway, "command": name}
    return REGISTRY.get_sample_value("asgi_gateway_commands_denied_total", labels) or 0.0


async def test_a_group_rule_lets_its_members_run_a_tagged_command_and_refuses_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = denied("slack", "heat")
    communicator = chat(policy(**OPERATORS))
    await communicator.connect()
    assert await answer(communicator, "heat") == "heating on"
    with caplog.at_level(logging.WARNING, logger="config.policy"):
        assert await answer(communicator, "heat", user=BOB) == "Sorry bob, not heat."
    # The other commands are untouched by the device rules.
    assert await answer(communicator, "temp", user=BOB) == "21.5"
    await communicator.disconnect()
    assert denied("slack", "heat") == before + 1
    (record,) = [r for r in caplog.records if "denied" in r.getMessage()]
    assert record.getMessage() == (
        "Gateway 'slack': command 'heat' denied to slack:U2 in conversation 'general' (rule 1)"
    )
    assert record.exc_info is None


async def test_a_display_name_does_not_pass_for_an_identity() -> None:
    impostor = {"id": "U9", "name": "alice", "is_bot": False, "identity": "slack:U9"}
    communicator = chat(policy(**OPERATORS), user=impostor)
    await communicator.connect()
    assert await answer(communicator, "heat") == "Sorry alice, not heat."
    await communicator.disconnect()


async def test_an_unauthenticated_sender_matches_only_anyone() -> None:
    section = {
        "rules": [
            {"commands": ["temp"], "allow": ["authenticated"]},
            {"commands": ["temp"], "deny": ["*"]},
        ]
    }
    communicator = chat(policy(**section), user=NICK, platform="irc", gateway="irc")
    await communicator.connect()
    assert await answer(communicator, "temp") == "Sorry, you may not run temp here."
    assert await answer(communicator, "temp", user=ALICE) == "21.5"
    await communicator.disconnect()


async def test_the_first_matching_rule_wins() -> None:
    section = {
        "rules": [
            {"commands": ["temp"], "deny": ["slack:U2"]},
            {"commands": ["temp"], "allow": ["*"]},
            {"commands": ["temp"], "deny": ["*"]},
        ]
    }
    communicator = chat(policy(**section))
    await communicator.connect()
    assert await answer(communicator, "temp") == "21.5"
    assert await answer(communicator, "temp", user=BOB) == "Sorry, you may not run temp here."
    await communicator.disconnect()


async def test_rules_can_be_kept_to_gateways_conversations_and_direct_messages() -> None:
    section = {
        "rules": [
            {"commands": ["temp"], "allow": ["*"], "gateways": ["slack"], "private_only": True},
            {"commands": ["temp"], "allow": ["*"], "conversations": ["C0OPS"]},
            {"commands": ["temp"], "deny": ["*"]},
        ]
    }
    access = policy(**section)
    direct = chat(access, kind="direct")
    ops = chat(access, id="C0OPS", name="ops")
    general = chat(access)
    irc_direct = chat(access, kind="direct", gateway="irc", platform="irc")
    for communicator, expected in [
        (direct, "21.5"),
        (ops, "21.5"),
        (general, "Sorry, you may not run temp here."),
        (irc_direct, "Sorry, you may not run temp here."),
    ]:
        await communicator.connect()
        assert await answer(communicator, "temp") == expected
        await communicator.disconnect()


async def test_a_default_of_deny_refuses_every_command_no_rule_allows() -> None:
    communicator = chat(policy(default="deny", rules=[{"commands": ["help"], "allow": ["*"]}]))
    await communicator.connect()
    assert await answer(communicator, "temp") == "Sorry, you may not run temp here."
    # restart decides for itself (its own allow list names alice); temp has no say.
    assert await answer(communicator, "help") == (
        "Commands:\nhelp [command]: list the commands, or explain one\nrestart: restart the bot"
    )
    await communicator.disconnect()


async def test_the_commands_own_allow_decides_when_no_rule_does() -> None:
    # Without any access section (no scope["access"]) too: the code's allow list holds.
    for access in (None, policy()):
        communicator = chat(access)
        await communicator.connect()
        assert await answer(communicator, "restart") == "restarting"
        refused = await answer(communicator, "restart", user=BOB)
        assert refused == "Sorry, you may not run restart here."
        await communicator.disconnect()
    # A rule of the YAML comes first: operators can open a command up.
    communicator = chat(policy(rules=[{"commands": ["restart"], "allow": ["slack:U2"]}]))
    await communicator.connect()
    assert await answer(communicator, "restart", user=BOB) == "restarting"
    await communicator.disconnect()


async def test_a_private_only_command_runs_in_direct_conversations_only() -> None:
    group, direct = chat(None), chat(None, kind="direct")
    await group.connect()
    await direct.connect()
    assert await answer(group, "secret") == "Sorry, you may not run secret here."
    assert await answer(direct, "secret") == "s3cret"
    await group.disconnect()
    await direct.disconnect()


async def test_admins_of_a_gateway_may_run_everything_there_only() -> None:
    access = policy(admins={"slack": ["slack:U2"]}, rules=[{"tags": ["device"], "deny": ["*"]}])
    here, elsewhere = chat(access, user=BOB), chat(access, user=BOB, gateway="chat")
    await here.connect()
    await elsewhere.connect()
    assert await answer(here, "heat") == "heating on"
    assert await answer(here, "restart") == "restarting"
    assert await answer(elsewhere, "heat") == "Sorry, you may not run heat here."
    await here.disconnect()
    await elsewhere.disconnect()


async def test_help_lists_only_what_the_asker_may_run() -> None:
    communicator = chat(policy(**OPERATORS))
    await communicator.connect()
    mine = await answer(communicator, "help")
    theirs = await answer(communicator, "help", user=BOB)
    assert "heat: set the heating" in mine
    assert "restart: restart the bot" in mine
    assert "heat" not in theirs
    assert "restart" not in theirs
    assert "temp: the temperature" in theirs
    # Nor does help explain a command the asker may not run, or name it among the known.
    assert await answer(communicator, "help heat", user=BOB) == (
        "No command 'heat'. Say help for the list."
    )
    unknown = await answer(communicator, "@bot frobnicate", user=BOB)
    assert unknown.startswith("Sorry, I don't know the command 'frobnicate'.")
    assert "heat" not in unknown
    await communicator.disconnect()


async def test_a_flood_of_commands_from_one_user_is_cut_and_told_once() -> None:
    before = (
        REGISTRY.get_sample_value("asgi_gateway_commands_limited_total", {"gateway": "slack"})
        or 0.0
    )
    access = policy(rate={"commands": "3/60s"})
    flooded, other = chat(access), chat(access, id="C0OTHER", name="other", user=BOB)
    await flooded.connect()
    await other.connect()
    for _ in range(3):
        assert await answer(flooded, "temp") == "21.5"
    assert await answer(flooded, "temp") == (
        "Slow down: at most 3/60s commands. Try again in a moment."
    )
    for _ in range(5):
        await flooded.say("temp")
    assert await flooded.receive_nothing(0.2)
    # The limit is per user and spans conversations: alice is cut in the other one too,
    # bob is not.
    await other.say("temp", user=ALICE)
    assert await other.receive_nothing(0.2)
    assert await answer(other, "temp") == "21.5"
    await flooded.disconnect()
    await other.disconnect()
    after = REGISTRY.get_sample_value("asgi_gateway_commands_limited_total", {"gateway": "slack"})
    assert after == before + 7


async def test_answers_over_the_rate_wait_for_room_and_none_is_lost() -> None:
    # A window long enough that a slow machine cannot let the third answer through early.
    access = policy(rate={"answers": "2/4s"})
    communicator, other = chat(access), chat(access, id="C0OTHER", name="other", user=BOB)
    await communicator.connect()
    await other.connect()
    for _ in range(4):
        await communicator.say("temp")
    first = [await communicator.receive_text() for _ in range(2)]
    # The third waits for the window; another user's answer does not.
    assert await answer(other, "temp") == "21.5"
    assert await communicator.receive_nothing(0.3)
    rest = [await communicator.receive_text(timeout=8) for _ in range(2)]
    assert first + rest == ["21.5"] * 4
    await communicator.disconnect()
    await other.disconnect()


def test_command_declarations_are_checked() -> None:
    with pytest.raises(ConsumerError, match="a subject is an identity"):
        command(allow=["alice"])
    with pytest.raises(ConsumerError, match="a list of str"):
        command(allow="slack:U1")  # type: ignore[arg-type]
    with pytest.raises(ConsumerError, match="a tag is"):
        command(tags=["two words"])


def test_the_policy_decides_without_a_consumer() -> None:
    access = policy(**OPERATORS)
    heat = CommandInfo("heat", tags=("device",))
    here = Sender("slack", "slack:U1", "U1", "alice", "C1", direct=False)
    there = Sender("slack", "slack:U2", "U2", "bob", "C1", direct=False)
    assert access.decide(heat, here).allowed
    decision = access.decide(heat, there)
    assert (decision.allowed, decision.reason, decision.reply) == (
        False,
        "rule 1",
        "Sorry bob, not heat.",
    )


YAML = """\
application: app:application
gateways:
  chat: {type: console}
access:
  groups:
    operators: ["console:alice"]
  rules:
    - tags: [device]
      allow: ["group:operators"]
"""


@pytest.mark.parametrize(
    ("tail", "line", "message"),
    [
        (
            "    - commands: [set]\n      allow: [alice]\n",
            11,
            "access.rules[1].allow[0]: a subject is an identity 'platform:id' (slack:U0123), "
            "'group:NAME', 'admins', 'authenticated' or '*', got 'alice'",
        ),
        (
            "    - commands: [set]\n",
            10,
            "access.rules[1]: a rule has exactly one of 'allow' and 'deny'",
        ),
        (
            "    - commands: [set]\n      allow: ['group:admin']\n",
            11,
            "access.rules[1].allow[0]: no group 'admin' in access.groups (groups: operators)",
        ),
        (
            "    - commands: [set]\n      deny: ['*']\n      gateways: [slack]\n",
            12,
            "access.rules[1].gateways[0]: no gateway 'slack' (gateways: chat)",
        ),
        (
            "  rate:\n    commands: 5 a minute\n",
            11,
            "access.rate.commands: a rate is 'N/Ts' (5/10s, 20/1m, 100/h), got '5 a minute'",
        ),
        (
            "  deny_reply: 'no {cmd}'\n",
            10,
            "access.deny_reply: unknown field {cmd}; the text may use {command}, {user}",
        ),
        (
            "  admins:\n    chat: [root]\n",
            11,
            "access.admins.chat[0]: a subject is an identity",
        ),
    ],
)
def test_a_bad_access_section_names_its_key_and_line(tail: str, line: int, message: str) -> None:
    from config import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config_text(YAML + tail, filename="gateway.yaml")
    assert info.value.line == line
    assert str(info.value).startswith(f"gateway.yaml:{line}: {message}")


def test_rates_read_as_users_write_them() -> None:
    from config.access import Rate, parse_rate

    assert parse_rate("5/10s") == Rate(5, 10)
    assert parse_rate("20/m") == Rate(20, 60)
    assert parse_rate("100 per hour") == Rate(100, 3600)
    assert parse_rate("1/2d") == Rate(1, 172800)
    assert str(Rate(5, 10)) == "5/10s"
    with pytest.raises(ValueError, match="at least 1"):
        parse_rate("0/10s")


async def test_one_policy_is_shared_so_a_user_is_one_user_everywhere() -> None:
    """The rate window is the policy's, not the consumer's: a fresh instance (a new
    conversation, or one reopened after idling) does not reset it."""
    access = policy(rate={"commands": "1/60s", "limited_reply": ""})
    first = chat(access)
    await first.connect()
    assert await answer(first, "temp") == "21.5"
    await first.disconnect()
    second = chat(access)
    await second.connect()
    await second.say("temp")
    assert await second.receive_nothing(0.2)
    await second.disconnect()
    await asyncio.sleep(0)
