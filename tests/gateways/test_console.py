"""The console gateway: in process with injected streams, then the real daemon
(``python -m gateways run``) in a pseudo-terminal, behind a pipe and reading a file."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from chat_helpers import sends
from terminal_helpers import Reader

from gateways.console import ConsoleGateway, ConsoleGatewayOptions
from layer.types import Message

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "tests" / "daemon_apps"


# -- in process ----------------------------------------------------------------------------


class Console:
    """A console gateway reading ``stdin`` (fed by the test) and printing to ``stdout``."""

    def __init__(self, app: Any, interactive: bool = False, **options: Any) -> None:
        self.stdin = asyncio.StreamReader()
        self.stdout = io.StringIO()
        self.gateway = ConsoleGateway(
            "console",
            app,
            ConsoleGatewayOptions(**options),
            stdin=self.stdin,
            stdout=self.stdout,
            interactive=interactive,
        )

    def type(self, *lines: str) -> None:
        self.stdin.feed_data("".join(f"{line}\n" for line in lines).encode())

    @property
    def lines(self) -> list[str]:
        return self.stdout.getvalue().splitlines()

    async def expect(self, line: str) -> None:
        """Wait until ``line`` is printed (5 s at most)."""
        try:
            async with asyncio.timeout(5):
                while line not in self.lines:
                    await asyncio.sleep(0.005)
        except TimeoutError:
            pytest.fail(f"{line!r} not printed; the console printed:\n{self.stdout.getvalue()}")


@pytest.fixture
async def console(run_gateway: Any) -> Any:
    async def start(app: Any, **options: Any) -> Console:
        made = Console(app, **options)
        await run_gateway(made.gateway)
        return made

    return start


def messages(app: Any) -> list[tuple[str, Message]]:
    """Every event but connect and disconnect, with its scope key, in arrival order per key."""
    return [
        (log.scope["scope_key"], event)
        for log in app.logs
        for event in log.events
        if event["type"] not in ("chat.connect", "chat.disconnect")
    ]


async def test_control_characters_are_printed_as_escapes(console: Any, recording_app: Any) -> None:
    """A bot relaying what someone typed elsewhere must not drive the terminal: ESC (ANSI
    sequences), CR and bidi overrides are printed as escapes; a newline is a continuation
    line, indented, so it cannot pass for a line of its own."""
    text = "\x1b]0;pwned\x07\x1b[2Jhi\r[#general] alice: \u202eok\nnext"
    app = recording_app(sends({"type": "chat.send", "text": text}))
    chat = await console(app, user="alice", conversation="#general", bot_name="thermo")
    chat.type("hello")
    await chat.expect(r"[#general] thermo: \x1b]0;pwned\x07\x1b[2Jhi\r[#general] alice: \u202eok")
    assert "  next" in chat.lines
    assert "\x1b" not in chat.stdout.getvalue()
    assert "\u202e" not in chat.stdout.getvalue()


async def test_lines_become_messages_commands_and_mentions(
    console: Any, recording_app: Any
) -> None:
    app = recording_app()
    chat = await console(app, user="alice", conversation="#general", bot_name="thermo")
    chat.type(
        "hello",
        "@thermo temp kitchen",
        "Thermo: hi",
        "mail me@thermo.org",
        "/temp kitchen  upstairs",
        "//not a command",
        "::not a control line",
        "   ",
    )
    await app.wait_for(lambda: len(messages(app)) == 7)
    (log,) = app.logs
    assert log.scope["conversation"] == {
        "id": "general",
        "kind": "group",
        "name": "general",
        "thread_id": None,
    }
    assert log.scope["bot"] == {"id": "thermo", "name": "thermo"}
    assert log.scope["platform"] == "console"
    texts = [(e["type"], e.get("text"), e.get("mentions_bot")) for _, e in messages(app)]
    assert texts == [
        ("chat.message", "hello", False),
        ("chat.message", "@thermo temp kitchen", True),
        ("chat.message", "Thermo: hi", True),
        ("chat.message", "mail me@thermo.org", False),
        ("chat.command", "kitchen  upstairs", None),
        ("chat.message", "/not a command", False),
        ("chat.message", ":not a control line", False),
    ]
    first = messages(app)[0][1]
    assert first == {
        "type": "chat.message",
        "id": "1",
        "text": "hello",
        "user": {"id": "alice", "name": "alice", "is_bot": False, "identity": "console:alice"},
        "thread_id": None,
        "mentions_bot": False,
        "attachments": [],
        "raw": {"line": "hello"},
    }
    assert messages(app)[4][1]["command"] == "/temp"


async def test_control_lines_switch_the_user_and_the_conversation(
    console: Any, recording_app: Any
) -> None:
    app = recording_app()
    chat = await console(app, user="alice")
    chat.type("in my dm", ":channel #ops", "in ops", ":user bob", "bob in ops", ":thread 2")
    chat.type("in the thread", ":top", "back on top", ":dm", "bob's dm", ":user carol")
    chat.type("carol's dm", ":thread", "carol in a thread of her dm")
    await chat.expect("* you are carol in @carol thread 7")
    await app.wait_for(lambda: len(messages(app)) == 8)
    said = [(key, e["user"]["name"], e["text"], e["thread_id"]) for key, e in messages(app)]
    assert sorted(said) == sorted(
        [
            ("@alice", "alice", "in my dm", None),
            ("ops", "alice", "in ops", None),
            ("ops", "bob", "bob in ops", None),
            ("ops/2", "bob", "in the thread", "2"),
            ("ops", "bob", "back on top", None),
            ("@bob", "bob", "bob's dm", None),
            ("@carol", "carol", "carol's dm", None),
            ("@carol/7", "carol", "carol in a thread of her dm", "7"),
        ]
    )
    scopes = {log.scope["scope_key"]: log.scope["conversation"] for log in app.logs}
    assert scopes["@alice"] == {"id": "@alice", "kind": "direct", "name": None, "thread_id": None}
    assert scopes["ops/2"] == {"id": "ops", "kind": "thread", "name": "ops", "thread_id": "2"}
    assert chat.lines[1:6] == [
        "* you are alice in #ops",
        "* you are bob in #ops",
        "* you are bob in #ops thread 2",
        "* you are bob in #ops",
        "* you are bob in @bob",
    ]


async def test_reactions_go_to_the_conversation_of_the_message_and_actions_here(
    console: Any, recording_app: Any
) -> None:
    app = recording_app()
    chat = await console(app, user="alice", conversation="#general")
    chat.type("lunch?", ":dm", ":react 1 :tada:", ":unreact 1 tada", ":action approve yes")
    await app.wait_for(lambda: len(messages(app)) == 4)
    by_key = {key: [e for k, e in messages(app) if k == key] for key in ("general", "@alice")}
    assert [e["type"] for e in by_key["general"]] == [
        "chat.message",
        "chat.reaction",
        "chat.reaction",
    ]
    assert by_key["general"][1] == {
        "type": "chat.reaction",
        "message_id": "1",
        "reaction": "tada",
        "added": True,
        "user": {"id": "alice", "name": "alice", "is_bot": False, "identity": "console:alice"},
        "raw": {},
    }
    assert by_key["general"][2]["added"] is False
    assert by_key["@alice"] == [
        {
            "type": "chat.action",
            "action_id": "approve",
            "value": "yes",
            "message_id": None,
            "user": {"id": "alice", "name": "alice", "is_bot": False, "identity": "console:alice"},
            "raw": {},
        }
    ]


async def test_channel_user_mode_gives_each_user_a_conversation(
    console: Any, recording_app: Any
) -> None:
    app = recording_app()
    chat = await console(
        app, user="alice", conversation="#general", conversation_key="channel_user"
    )
    chat.type("hi", ":user bob", "hi", ":user alice", "again")
    await app.wait_for(lambda: len(messages(app)) == 3)
    assert sorted(log.scope["scope_key"] for log in app.logs) == ["general/@alice", "general/@bob"]
    alice = app.by_key("general/@alice")[0]
    assert alice.scope["conversation"]["user_id"] == "alice"
    assert [e["text"] for e in alice.events[1:]] == ["hi", "again"]


async def test_the_bots_messages_reactions_and_typing_are_printed(
    console: Any, recording_app: Any
) -> None:
    app = recording_app(
        sends(
            {"type": "chat.typing"},
            {"type": "chat.send", "text": "plain"},
            {"type": "chat.send", "text": "*bold*", "format": "markdown"},
            {"type": "chat.send", "text": "two\nlines", "reply_to": "2"},
            {"type": "chat.send", "text": "threaded", "thread": "1"},
            {"type": "chat.react", "message_id": "2", "reaction": "eyes"},
            {"type": "chat.react", "message_id": "2", "reaction": "eyes", "remove": True},
        )
    )
    chat = await console(app, conversation="#general", bot_name="thermo")
    chat.type("first", ":thread 1", "in the thread")
    await chat.expect("[#general thread 1] thermo removed :eyes: from 2")
    assert app.logs[0].errors == []
    printed = [line for line in chat.lines if line.startswith(("[", "  "))]
    assert printed[:8] == [
        "[#general] thermo is typing...",
        "[#general] thermo: plain",
        "[#general] thermo: *bold*",
        "[#general] thermo (re 2): two",
        "  lines",
        "[#general thread 1] thermo: threaded",
        "[#general thread 1] thermo reacted :eyes: to 2",
        "[#general thread 1] thermo removed :eyes: from 2",
    ]
    # The thread conversation's answers go to its thread by default.
    assert "[#general thread 1] thermo: plain" in chat.lines


async def test_what_the_console_cannot_do_raises_in_the_apps_send(
    console: Any, recording_app: Any
) -> None:
    app = recording_app(
        sends(
            {"type": "chat.send", "text": "hi", "native": {"blocks": []}},
            {"type": "chat.send", "text": "hi", "reply_to": "99"},
            {"type": "chat.react", "message_id": "99", "reaction": "eyes"},
        )
    )
    chat = await console(app)
    chat.type("hello")
    await app.wait_for(lambda: bool(app.logs) and len(app.logs[0].errors) == 3)
    native, reply, react = map(str, app.logs[0].errors)
    assert "no native content" in native
    assert "reply_to '99' is no message" in reply
    assert "message_id '99' is no message" in react
    assert "scope '@you'" in react


async def test_mistaken_control_lines_are_answered_and_change_nothing(
    console: Any, recording_app: Any
) -> None:
    app = recording_app()
    chat = await console(app, user="alice", conversation="#general")
    chat.type(":thread", ":frobnicate now", ":user two words", ":thread 99", ":react 99 tada")
    chat.type(":channel", ":where")
    await chat.expect("* you are alice in #general")
    assert chat.lines[1:6] == [
        "* no message in #general to start a thread under",
        "* not a control line: ':frobnicate now'; :help lists them",
        "* not a control line: ':user two words'; :help lists them",
        "* no message 99 in #general; :history lists them",
        "* no message 99; :history lists them",
    ]
    assert app.logs == []


async def test_help_where_and_history(console: Any, recording_app: Any) -> None:
    app = recording_app()
    chat = await console(app, user="alice", conversation="#general")
    chat.type("one", "two", ":thread 1", "three", ":history", ":top", ":history", ":help")
    await chat.expect("  :help               this list")
    text = chat.stdout.getvalue()
    assert "* #general thread 1:\n     1 alice: one\n     3 alice: three\n" in text
    assert "* #general:\n     1 alice: one\n     2 alice: two\n* control lines" in text
    assert "  :channel NAME       go to the channel #NAME\n" in text


async def test_the_end_of_input_stops_reading_but_not_the_conversations(
    console: Any, recording_app: Any
) -> None:
    app = recording_app(sends({"type": "chat.send", "text": "still here"}))
    chat = await console(app)
    chat.type("hello")
    chat.stdin.feed_eof()
    await chat.expect("* end of input: no more lines are read (Ctrl-C stops the daemon)")
    await chat.expect("[@you] bot: still here")
    assert list(chat.gateway.instances) == ["@you"]


async def test_an_interactive_console_shows_and_redraws_its_prompt(
    console: Any, recording_app: Any
) -> None:
    app = recording_app(sends({"type": "chat.send", "text": "hi"}))
    chat = await console(app, interactive=True, user="alice", prompt="{user}@{where}$ ")
    chat.type("hello")
    async with asyncio.timeout(5):
        while "bot: hi" not in chat.stdout.getvalue():
            await asyncio.sleep(0.005)
    output = chat.stdout.getvalue()
    assert output.startswith("* console chat: you are alice in @alice")
    assert "lines\nalice@@alice$ " in output
    assert "\r\x1b[K[@alice] bot: hi\nalice@@alice$ " in output


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"bot_name": "two words"}, "bot_name"),
        ({"user": ""}, "user"),
        ({"conversation": "dm alice"}, "'dm alice'"),
        ({"prompt": "{who}> "}, "{where} and {user}"),
        ({"conversation_key": "user"}, "conversation_key"),
    ],
)
def test_options_are_checked(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        ConsoleGatewayOptions(**options)


# -- the daemon, for real --------------------------------------------------------------------


def write_config(tmp_path: Path, application: str, **options: str) -> Path:
    lines = "".join(f"    {key}: {value}\n" for key, value in options.items())
    config = tmp_path / "console.yaml"
    config.write_text(
        f"application: {application}\n"
        "logging: {level: INFO}\n"
        f"gateways:\n  console:\n    type: console\n{lines}"
    )
    return config


def run(
    processes: list[subprocess.Popen[bytes]], config: Path, stdin: Any, stdout: Any, stderr: Path
) -> subprocess.Popen[bytes]:
    with stderr.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateways", "run", str(config)],
            cwd=ROOT,
            # The chatbot's state file (examples/chatbot/*.yaml): its own, beside the log.
            env={
                **os.environ,
                "PYTHONPATH": str(APPS),
                "CHATBOT_STATE": str(stderr.with_suffix(".sqlite3")),
            },
            stdin=stdin,
            stdout=stdout,
            stderr=log,
        )
    processes.append(process)
    return process


def interrupt(process: subprocess.Popen[bytes]) -> int:
    """SIGINT, as Ctrl-C would, and the exit code (20 s at most)."""
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=20)


def test_the_daemon_chats_in_a_pseudo_terminal(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    config = write_config(tmp_path, "console_bot:application", user="alice", conversation="dm")
    master, slave = os.openpty()
    try:
        process = run(processes, config, slave, slave, tmp_path / "stderr.log")
        os.close(slave)
        out = Reader(master, process, tmp_path / "stderr.log")
        out.expect("* console chat: you are alice in @alice, talking to bot")
        out.expect("@alice alice> ")  # the prompt: stdin is a terminal

        def say(line: str, *answers: str) -> None:
            os.write(master, line.encode() + b"\n")
            for answer in answers:
                out.expect(answer)

        say("whoami", "[@alice] bot: alice in direct @alice (key @alice)")
        say("hello", "[@alice] bot (re 3): echo: hello", "[@alice] bot reacted :eyes: to 3")
        say(":channel general", "* you are alice in #general")
        say("just chatting")
        say("count", "[#general] bot: message 2 here")
        say("@bot temp", "[#general] bot (re 8): echo: temp")
        say(":user bob", "* you are bob in #general")
        say("whoami", "[#general] bot: bob in group general (key general)")
        say(":thread 8", "* you are bob in #general thread 8")
        say("whoami", "[#general thread 8] bot: bob in thread general (key general/8)")
        say("/count", "[#general thread 8] bot: message 1 here")  # a conversation of its own
        say(":react 3 tada", "[@alice] bot: bob reacted tada")
        say(":dm", "* you are bob in @bob")
        say("hi there", "[@bob] bot (re 16): echo: hi there")
        assert "echo: just chatting" not in out.text

        os.write(master, b"\x04")  # Ctrl-D: end of input
        out.expect("* end of input: no more lines are read")
        assert process.poll() is None  # the daemon goes on serving
        assert interrupt(process) == 0
    finally:
        os.close(master)
    log = (tmp_path / "stderr.log").read_text()
    assert "end of standard input" in log
    assert "Received SIGINT: stopping gracefully" in log


@pytest.mark.parametrize("source", ["pipe", "file"])
def test_the_daemon_reads_a_pipe_or_a_file_and_serves_on_after_its_end(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]], source: str
) -> None:
    lines = b"whoami\n:channel ops\n@bot hello\n:user bob\n/count\n"
    config = write_config(tmp_path, "console_bot:application", user="alice")
    script = tmp_path / "script.txt"
    script.write_bytes(lines)
    with script.open("rb") as file:
        stdin = subprocess.PIPE if source == "pipe" else file
        process = run(processes, config, stdin, subprocess.PIPE, tmp_path / "stderr.log")
    if process.stdin is not None:
        process.stdin.write(lines)
        process.stdin.close()
    assert process.stdout is not None
    out = Reader(process.stdout.fileno(), process, tmp_path / "stderr.log")
    out.expect("* end of input")
    for answer in (
        "[@alice] bot: alice in direct @alice (key @alice)",
        "[#ops] bot (re 2): echo: hello",
        "[#ops] bot: message 2 here",
    ):
        out.seen = 0
        out.expect(answer)
    assert "alice> " not in out.text  # no prompt: stdin is no terminal
    assert process.poll() is None
    assert interrupt(process) == 0


def test_the_chatbot_example_answers_as_its_docs_show(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """examples/chatbot, as docs/chat.md's session shows it."""
    master, slave = os.openpty()
    try:
        process = run(
            processes,
            ROOT / "examples" / "chatbot" / "gateway.yaml",
            slave,
            slave,
            tmp_path / "e.log",
        )
        os.close(slave)
        out = Reader(master, process, tmp_path / "e.log")
        session = re.findall(r"```console\n(.*?)```", (ROOT / "docs" / "chat.md").read_text(), re.S)
        transcript = session[0].splitlines()
        assert transcript[0].startswith("$ asgi-gateway run examples/chatbot/gateway.yaml")
        for line in transcript[1:]:
            prompt = re.match(r"(@\w+|#\w+) you> (.*)", line)
            if prompt:
                out.expect(f"{prompt[1]} you> ")
                os.write(master, prompt[2].encode() + b"\n")
            else:
                out.expect(line)
        assert interrupt(process) == 0
    finally:
        os.close(master)


def test_the_docs_show_the_example_files() -> None:
    docs = (ROOT / "docs" / "chat.md").read_text()
    python = re.findall(r"```python\n(.*?)```", docs, re.S)[0]
    yaml = re.findall(r"```yaml\n(.*?)```", docs, re.S)[0]
    example = ROOT / "examples" / "chatbot"
    assert python.strip() in (example / "chatbot.py").read_text()
    assert yaml.strip() in (example / "gateway.yaml").read_text()


def test_the_daemon_with_stdin_from_dev_null_serves_without_an_error(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """/dev/null (a daemon's usual stdin) is a device epoll refuses: read as a file."""
    config = write_config(tmp_path, "console_bot:application", user="alice")
    process = run(processes, config, subprocess.DEVNULL, subprocess.PIPE, tmp_path / "stderr.log")
    assert process.stdout is not None
    out = Reader(process.stdout.fileno(), process, tmp_path / "stderr.log")
    out.expect("* end of input")
    assert interrupt(process) == 0
    log = (tmp_path / "stderr.log").read_text()
    assert "Traceback" not in log
    assert "Exception in callback" not in log


def test_the_chatbot_example_keeps_its_count_across_a_restart(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """examples/chatbot's count is durable state (state_model, the YAML's state: section)."""
    config = ROOT / "examples" / "chatbot" / "gateway.yaml"
    for said, count in (("hello", "1 so far"), ("again", "2 so far")):
        master, slave = os.openpty()
        try:
            # The same log path, so the same state file (run() puts it beside the log).
            process = run(processes, config, slave, slave, tmp_path / "e.log")
            os.close(slave)
            out = Reader(master, process, tmp_path / "e.log")
            out.expect("@you you> ")
            os.write(master, said.encode() + b"\n")
            out.expect(f"[@you] bot: {said}")
            out.expect("@you you> ")
            os.write(master, b"count\n")
            out.expect(f"[@you] bot: {count}")
            assert interrupt(process) == 0
        finally:
            os.close(master)


def test_a_chatbot_reminder_set_before_a_sigkill_is_posted_after_the_restart(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """examples/chatbot's ``remind``: a timer stored with the conversation's state, fired by
    the next daemon into the conversation's scope, which it opens by key."""
    config = ROOT / "examples" / "chatbot" / "gateway.yaml"
    master, slave = os.openpty()
    try:
        process = run(processes, config, slave, slave, tmp_path / "r.log")
        os.close(slave)
        out = Reader(master, process, tmp_path / "r.log")
        out.expect("@you you> ")
        os.write(master, b"remind 1 s kettle\n")
        out.expect("[@you] bot: OK, in 1 s: kettle")
        out.expect("[@you] bot: Reminder: kettle")  # while the daemon runs
        os.write(master, b"remind 3 s tea\n")
        out.expect("[@you] bot: OK, in 3 s: tea")
        # The next answer comes after the remind command's state (and timer) was saved.
        os.write(master, b"count\n")
        out.expect("[@you] bot: 0 so far")
        process.kill()
        process.wait(timeout=10)
    finally:
        os.close(master)
    assert "Reminder: tea" not in out.text
    master, slave = os.openpty()
    try:
        process = run(processes, config, slave, slave, tmp_path / "r.log")
        os.close(slave)
        out = Reader(master, process, tmp_path / "r.log")
        out.expect("[@you] bot: Reminder: tea")
        out.expect("@you you> ")
        assert interrupt(process) == 0
    finally:
        os.close(master)
    assert out.text.count("Reminder:") == 1  # the kettle's fired in the first run only
