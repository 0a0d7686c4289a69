"""``asgi-gateway run --reload`` end to end: a copy of examples/echo.py and echo.yaml served
against a real Mosquitto, edited while it runs (a new reply, a syntax error, a fix)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import ROOT, client, next_message

from gateways.daemon.reload import watch_paths

REPLY = 'await self.publish(f"echo/{name}/reply", message["payload"], qos=message["qos"])'


class Reloading:
    """``python -m gateways run app/echo.yaml --reload`` in ``directory``, its output (the
    parent's and its children's) in a file."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.log = directory / "output.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateways", "run", "app/echo.yaml", "--reload"],
                cwd=directory,
                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"started the daemon, pid (\d+)", self.output)]

    async def wait_for(self, text: str, count: int = 1, timeout: float = 30) -> None:
        """Until ``text`` appears ``count`` times in the output."""
        try:
            async with asyncio.timeout(timeout):
                while self.output.count(text) < count:
                    assert self.process.poll() is None, f"the parent exited:\n{self.output}"
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"{text!r} x{count} not seen:\n{self.output}") from None

    def kill_all(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        # The parent waited for every child but its last, which a killed parent leaves behind.
        children = self.children()
        if children:
            cmdline = Path(f"/proc/{children[-1]}/cmdline")
            with contextlib.suppress(OSError):
                if b"gateways" in cmdline.read_bytes():
                    os.kill(children[-1], signal.SIGKILL)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of the echo example in ``tmp_path/app``."""
    folder = tmp_path / "app"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "echo.py", folder)
    shutil.copy(ROOT / "examples" / "echo.yaml", folder)
    return folder


@pytest.fixture
def reloading(app: Path, mosquitto: Any) -> Iterator[Reloading]:
    process = Reloading(app.parent, {"MQTT_URL": mosquitto.url})
    yield process
    process.kill_all()


async def reply_becomes(c: Any, payload: bytes, expected: bytes, timeout: float = 30) -> None:
    """Publish to echo/alice until the reply is ``expected`` (the daemon may be restarting)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await c.publish("echo/alice", payload, qos=1)
                try:
                    reply = await next_message(c, "echo/alice/reply", timeout=0.5)
                except TimeoutError:
                    continue
                if reply.payload == expected:
                    return
    except TimeoutError:
        raise AssertionError(f"the reply never became {expected!r}") from None


async def test_reload_restarts_on_edits_and_survives_a_syntax_error(
    app: Path, mosquitto: Any, reloading: Reloading
) -> None:
    echo = app / "echo.py"
    source = echo.read_text()
    assert REPLY in source
    async with client(mosquitto, "echo/+/reply") as c:
        await reply_becomes(c, b"hello", b"hello")

        echo.write_text(source.replace('message["payload"]', 'b"v2:" + message["payload"]'))
        await reply_becomes(c, b"hello", b"v2:hello")
        await reloading.wait_for("Reload: app/echo.py changed; restarting the daemon")

        echo.write_text(source + "\nthis is not python (\n")
        await reloading.wait_for("SyntaxError")
        await reloading.wait_for("Reload: the daemon exited with code")
        assert reloading.process.poll() is None, reloading.output

        echo.write_text(source.replace('message["payload"]', 'b"v3:" + message["payload"]'))
        await reply_becomes(c, b"hello", b"v3:hello")

    assert len(reloading.children()) == 4, reloading.output
    reloading.process.send_signal(signal.SIGTERM)
    assert reloading.process.wait(timeout=30) == 0, reloading.output
    output = reloading.output
    assert "Received SIGTERM: stopping gracefully" in output  # forwarded to the child, once
    assert "again: stopping now" not in output
    for pid in reloading.children():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_reload_restarts_when_the_yaml_file_changes(
    app: Path, mosquitto: Any, reloading: Reloading
) -> None:
    yaml = app / "echo.yaml"
    async with client(mosquitto, "echo/+/reply") as c:
        await reply_becomes(c, b"hello", b"hello")
        await reloading.wait_for("Gateway 'mqtt' (mqtt) started")
        yaml.write_text(yaml.read_text().replace("  mqtt:\n", "  renamed:\n"))
        await reloading.wait_for("Reload: app/echo.yaml changed; restarting the daemon")
        await reloading.wait_for("Gateway 'renamed' (mqtt) started")
        await reply_becomes(c, b"again", b"again")
    reloading.process.send_signal(signal.SIGINT)
    assert reloading.process.wait(timeout=30) == 0, reloading.output
    assert "Received SIGINT: stopping gracefully" in reloading.output


def test_watch_paths_are_the_files_folder_and_the_applications(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "code" / "myapp").mkdir(parents=True)
    (tmp_path / "code" / "myapp" / "__init__.py").write_text("")
    config = tmp_path / "conf" / "gateway.yaml"
    config.write_text("application: myapp.main:application\ngateways: {g: {type: mqtt}}\n")
    sys.path.insert(0, str(tmp_path / "code"))
    try:
        assert watch_paths(config) == [tmp_path / "conf", tmp_path / "code" / "myapp"]
    finally:
        sys.path.remove(str(tmp_path / "code"))
    # An application found nowhere, or a file that does not load: only the file's folder.
    assert watch_paths(config) == [tmp_path / "conf"]
    config.write_text("application: [not a path\n")
    assert watch_paths(config) == [tmp_path / "conf"]
