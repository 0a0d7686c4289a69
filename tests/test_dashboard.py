"""The monitoring server's dashboard (``gateways.daemon.dashboard``): the daemon
(``python -m gateways run FILE``) on a real Mosquitto (and a Slack wire test server), its page,
``/dashboard.json`` and its event stream; and the dashboard in process, on a real MQTT
gateway."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from daemon_helpers import APPS, ROOT, client, until_reply

from config.access import AccessConfig
from config.policy import AccessPolicy, CommandInfo, Sender
from gateways.daemon.dashboard import CONTENT_SECURITY_POLICY, Dashboard, ErrorRing
from gateways.daemon.monitoring import MonitoringServer
from gateways.mqtt import MqttGateway, MqttGatewayOptions
from gateways.testing.slack_payloads import DEFAULT_USER_ID
from gateways.testing.slack_server import SlackTestServer, message

pytestmark = pytest.mark.mosquitto

#: A scope key that is HTML: the crashy application's consumer raises with it in its text.
EVIL = "<img src=x onerror=alert(1)>"
MQTT_PASSWORD = "hunter2-mqtt-dashboard"


async def get(url: str) -> tuple[int, Any, str]:
    """``GET url``: the status, the headers and the body (5 s bound)."""
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        return response.status, response.headers, await response.text()


async def until_json(url: str, predicate: Callable[[Any], bool], timeout: float = 20) -> Any:
    """Poll ``url`` (JSON) until ``predicate`` holds for its body; the body then."""
    last: object = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    status, _, body = await get(url)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = exc
                else:
                    last = (status, body)
                    if status in (200, 503) and predicate(json.loads(body)):
                        return json.loads(body)
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"{url} did not answer as expected within {timeout} s; last: {last!r}")


async def until_ready(base: str) -> None:
    await until_json(f"{base}/readyz", lambda body: body["ready"] is True)


async def until_snapshot(
    url: str, predicate: Callable[[Any], bool], timeout: float = 20, count: int = 1
) -> Any:
    """Read the event stream at ``url`` until ``count`` snapshots (of one connection) satisfy
    ``predicate``; the last of them."""
    seen: list[Any] = []
    matched = 0
    async with (
        asyncio.timeout(timeout),
        aiohttp.ClientSession() as session,
        session.get(url) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        async for line in response.content:
            if line.startswith(b"data: "):
                seen.append(json.loads(line[6:]))
                matched += bool(predicate(seen[-1]))
                if matched >= count:
                    return seen[-1]
    pytest.fail(f"the stream ended; snapshots: {seen[-3:]!r}")


class Page(HTMLParser):
    """What the server-rendered page shows: its gateway rows (``{name: {field: text}}``),
    its recent errors' messages, and the URLs it loads or links to."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.errors: list[str] = []
        self.urls: list[str] = []
        self._cell: tuple[dict[str, str], str] | None = None
        self._row: dict[str, str] | None = None
        self._in_message = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        self.urls += [found[key] for key in ("href", "src") if key in found]
        if tag == "tr" and "data-gateway" in found:
            self._row = self.rows.setdefault(found["data-gateway"], {})
        elif tag == "td" and self._row is not None:
            self._cell = (self._row, found["data-field"])
            self._row[found["data-field"]] = ""
        elif tag == "pre" and found.get("class") == "message":
            self._in_message = True
            self.errors.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "pre":
            self._in_message = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            row, field = self._cell
            row[field] += data
        if self._in_message:
            self.errors[-1] += data


async def page(base: str) -> tuple[Page, str]:
    status, headers, body = await get(f"{base}/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    return Page(body), body


def row(snapshot: Any, name: str) -> Any:
    (found,) = [g for g in snapshot["gateways"] if g["name"] == name]
    return found


@pytest.fixture
def monitored(run_daemon: Any, free_port: Callable[[], int]) -> Callable[..., tuple[Any, str]]:
    """``monitored(config, **env)``: the daemon on ``config`` with its monitoring server on a
    free port (``MONITORING_PORT``); the daemon and the server's base URL."""

    def start(config: Path, **env: str) -> tuple[Any, str]:
        port = free_port()
        return run_daemon(config, MONITORING_PORT=str(port), **env), f"http://127.0.0.1:{port}"

    return start


def crashy_config(tmp_path: Path, monitoring: bool = True) -> Path:
    """tests/daemon_apps/crashy.py (``work/{name}`` echoes; payload ``boom`` raises) on the
    broker in MQTT_URL, with a ``monitoring:`` section on MONITORING_PORT or without one."""
    config = tmp_path / "gateway.yaml"
    text = "application: crashy:application\ngateways:\n  workers:\n    type: mqtt\n"
    text += "    broker: ${MQTT_URL}\n"
    if monitoring:
        text += "monitoring:\n  port: ${MONITORING_PORT}\n"
    config.write_text(text)
    return config


# -- the daemon -----------------------------------------------------------------------------


async def test_the_page_json_and_stream_show_the_gateways_live(
    mosquitto: Any, monitored: Any
) -> None:
    daemon, base = monitored(ROOT / "examples" / "echo_monitoring.yaml")
    await until_ready(base)
    shown, text = await page(base)
    assert shown.rows["mqtt"]["state"] == "connected"
    assert shown.rows["mqtt"]["protocol"] == "mqtt"
    assert 'data-connected="true"' in text
    # Only its own files: the icon is inline, nothing comes from elsewhere.
    assert sorted(set(shown.urls)) == [
        "dashboard.json",
        "data:,",
        "healthz",
        "metrics",
        "readyz",
        "static/dashboard.css",
        "static/dashboard.js",
    ]
    for name, kind in (("dashboard.css", "text/css"), ("dashboard.js", "text/javascript")):
        status, headers, body = await get(f"{base}/static/{name}")
        assert (status, headers["Content-Type"]) == (200, f"{kind}; charset=utf-8")
        assert body.strip()
    assert "innerHTML" not in (await get(f"{base}/static/dashboard.js"))[2]
    # No state: section, no state store shown.
    assert (await until_json(f"{base}/dashboard.json", lambda s: True))["state_store"] is None
    assert 'id="store-card" hidden' in text

    async with client(mosquitto, "echo/+/reply") as c:
        for n in range(5):
            await until_reply(c, f"echo/d{n}", b"hi", f"echo/d{n}/reply")
        snapshot = await until_json(
            f"{base}/dashboard.json", lambda s: row(s, "mqtt")["scopes"] >= 5
        )
        mqtt = row(snapshot, "mqtt")
        assert mqtt["connected"] is True
        assert mqtt["events_received"] >= 5
        assert mqtt["messages_sent"] >= 5
        assert mqtt["denied_commands"] == 0
        assert snapshot["totals"]["scopes"] >= 5

        # Events keep coming: the stream's events per second go above 0.
        async def publish() -> None:
            while True:
                await c.publish("echo/d0", b"more", qos=1)
                await asyncio.sleep(0.05)

        publisher = asyncio.create_task(publish())
        try:
            live = await until_snapshot(
                f"{base}/dashboard/events",
                lambda s: row(s, "mqtt")["events_per_second"] > 0,
            )
        finally:
            publisher.cancel()
        assert row(live, "mqtt")["events_received"] > mqtt["events_received"]
        assert live["totals"]["events_per_second"] > 0

    shown, _ = await page(base)
    assert int(shown.rows["mqtt"]["scopes"]) >= 5
    assert int(shown.rows["mqtt"]["events_received"]) >= row(live, "mqtt")["events_received"]

    # A stream open while the daemon stops ends, and does not hold the daemon up (a daemon
    # still running after 20 s is killed: its exit code is then not 0).
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/dashboard/events") as response,
    ):
        await response.content.readline()
        code = await asyncio.to_thread(daemon.stop)
        async with asyncio.timeout(10):
            rest = await response.content.read()
    assert code == 0, daemon.output
    assert response.content.at_eof()
    assert rest.endswith(b"\n\n")


REDIS_PASSWORD = "s3cret-redis-dashboard"  # of a Redis ACL user: redis://app:...@


async def test_the_state_store_shows_up_then_unavailable_then_up_again(
    mosquitto: Any, make_redis: Callable[..., Any], monitored: Any, tmp_path: Path
) -> None:
    """Redis state (a user with a password): up; frozen (SIGSTOP), then stopped, unavailable
    and why, in the page, JSON and stream (which goes on); restarted, up. No password shown."""
    redis = make_redis(["--user", "app", "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all"])
    config = crashy_config(tmp_path)
    config.write_text(config.read_text() + "state: {backend: redis, hosts: ['${REDIS_URL}']}\n")
    daemon, base = monitored(
        config, REDIS_URL=f"redis://app:{REDIS_PASSWORD}@{redis.host}:{redis.port}"
    )
    outputs: list[str] = []

    async def shown(up: bool, problem: str = "") -> None:
        def is_up(s: Any) -> bool:
            return (s["state_store"] or {}).get("up") is up

        snapshot = await until_json(f"{base}/dashboard.json", is_up)
        streamed = await until_snapshot(f"{base}/dashboard/events", is_up)
        for store in (snapshot["state_store"], streamed["state_store"]):
            assert store["backend"] == "redis"
            assert store["problem"] is None if up else problem in store["problem"]
        _, text = await page(base)
        shows = "redis: up<" if up else "redis: unavailable: "
        assert (
            f'<dt>State store</dt><dd id="state-store" data-up="{str(up).lower()}">{shows}' in text
        )
        assert '<div id="store-card"><dt>State store</dt><dd id="state-store" ' in text
        assert problem in text
        outputs.extend([json.dumps(snapshot), json.dumps(streamed), text])

    await until_ready(base)
    await shown(True)
    try:
        redis.pause()  # SIGSTOP: connected, never answering; each ping ends at store_timeout
        await shown(False, "no answer within 1 s")
        # Snapshots keep coming on one stream: the check never holds it up.
        await until_snapshot(f"{base}/dashboard/events", lambda s: True, count=4)
        redis.kill()
        await asyncio.to_thread(redis.start)
        await shown(True)
        redis.stop()  # refused: the reason names the server, without its password
        await shown(False, f"redis://127.0.0.1:{redis.port}")
    finally:
        await asyncio.to_thread(redis.start)
    await shown(True)
    assert daemon.stop() == 0, daemon.output
    assert "The state store (redis) is unavailable" in daemon.output
    assert not [out for out in [*outputs, daemon.output] if REDIS_PASSWORD in out]


async def test_an_error_log_shows_in_recent_errors_as_text(
    mosquitto: Any, monitored: Any, tmp_path: Path
) -> None:
    daemon, base = monitored(crashy_config(tmp_path))
    await until_ready(base)
    shown, text = await page(base)
    assert shown.errors == []
    assert '<p id="no-errors">' in text
    async with client(mosquitto, "work/+/done") as c:
        await until_reply(c, f"work/{EVIL}", b"x", f"work/{EVIL}/done")
        await c.publish(f"work/{EVIL}", b"boom", qos=1)
        snapshot = await until_json(f"{base}/dashboard.json", lambda s: bool(s["errors"]))
    (error,) = snapshot["errors"]
    assert error["level"] == "ERROR"
    assert error["logger"] == "gateways.base"  # gateways.scopes logs as the base
    assert error["gateway"] == "workers"
    assert f"scope 'work/{EVIL}' raised" in error["message"]
    assert error["message"].endswith(f"RuntimeError: worker {EVIL} hit a bad payload")
    assert snapshot["errors_total"] == 1

    shown, text = await page(base)
    assert shown.errors == [error["message"]]
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<img" not in text
    assert '<span class="gateway">workers</span>' in text
    assert '<p id="no-errors" hidden>' in text
    streamed = await until_snapshot(f"{base}/dashboard/events", lambda s: bool(s["errors"]))
    assert streamed["errors"] == [error]
    assert daemon.stop() == 0


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (its sockets in ``/proc/net/tcp{,6}``)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def test_without_monitoring_the_daemon_listens_nowhere(
    mosquitto: Any, run_daemon: Any, free_port: Callable[[], int], tmp_path: Path
) -> None:
    port = free_port()
    on = run_daemon(crashy_config(tmp_path), MONITORING_PORT=str(port))
    await until_ready(f"http://127.0.0.1:{port}")
    assert listening_ports(on.process.pid) == {port}
    assert on.stop() == 0

    (tmp_path / "off").mkdir()
    off = run_daemon(crashy_config(tmp_path / "off", monitoring=False), MONITORING_PORT=str(port))
    async with client(mosquitto, "work/+/done") as c:
        await until_reply(c, "work/a", b"x", "work/a/done")  # serving: started
    assert listening_ports(off.process.pid) == set()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(f"http://127.0.0.1:{port}/")
    assert off.stop() == 0
    assert "Monitoring at" not in off.output


SECRET_CONFIG = """\
application: thermostat:application
layer:
  type: memory
state:
  backend: sqlite
  path: ${{THERMOSTAT_STATE}}
gateways:
  devices:
    type: mqtt
    broker: mqtt://dashboard:{password}@{host}:{port}
    scopes:
      - {{filter: "devices/+/+", levels: 2}}
  slack:
    type: slack
    mode: socket
    bot_token: {bot_token}
    app_token: {app_token}
    base_url: {api_url}
    conversations:
      - {{id: "C0ALERTS01", name: alerts}}
access:
  groups:
    operators: ["slack:U0OPERATR1"]
  rules:
    - tags: [device]
      allow: ["group:operators"]
    - tags: [device]
      deny: ["*"]
monitoring:
  port: ${{MONITORING_PORT}}
"""


async def test_no_secret_reaches_the_dashboard_and_denied_commands_count(
    mosquitto: Any, monitored: Any, slack_server: SlackTestServer, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        SECRET_CONFIG.format(
            password=MQTT_PASSWORD,
            host=mosquitto.host,
            port=mosquitto.port,
            bot_token=slack_server.bot_token,
            app_token=slack_server.app_token,
            api_url=slack_server.api_url,
        )
    )
    thermostat = ROOT / "examples" / "thermostat"
    daemon, base = monitored(config, PYTHONPATH=f"{APPS}{os.pathsep}{thermostat}")
    await until_ready(base)
    await slack_server.wait_connected()
    slack_server.add_user(DEFAULT_USER_ID, "alice")
    await slack_server.send_event(message("C0GENERAL1", "set kitchen 30"))  # not an operator
    refused = await slack_server.wait_for_call("chat.postMessage", count=1, within=15)
    assert refused.args["text"] == "Sorry, you may not run set here."
    snapshot = await until_json(
        f"{base}/dashboard.json", lambda s: row(s, "slack")["denied_commands"] >= 1
    )
    assert row(snapshot, "slack")["denied_commands"] == 1
    assert row(snapshot, "devices")["denied_commands"] == 0
    assert snapshot["totals"]["denied_commands"] == 1
    assert row(snapshot, "slack")["connected"] is True
    assert row(snapshot, "slack")["protocol"] == "chat"
    shown, _ = await page(base)
    assert shown.rows["slack"]["denied_commands"] == "1"
    assert shown.rows["devices"]["state"] == "connected"

    outputs = [json.dumps(snapshot), (await page(base))[1]]
    outputs += [
        (await get(base + path))[2]
        for path in ("/dashboard.json", "/static/dashboard.js", "/static/dashboard.css")
    ]
    outputs.append(json.dumps(await until_snapshot(f"{base}/dashboard/events", lambda s: True)))
    secrets = [
        MQTT_PASSWORD,
        slack_server.bot_token,
        slack_server.app_token,
        slack_server.signing_secret,
    ]
    for output in outputs:
        for secret in secrets:
            assert secret not in output
    assert daemon.stop() == 0, daemon.output


# -- in process -----------------------------------------------------------------------------


async def test_in_process_the_dashboard_counts_a_real_gateway_and_stops_its_streams(
    mosquitto: Any, mqtt_client: Any, recording_app: Any, run_gateway: Any
) -> None:
    name = "dashboard-in-process"
    app = recording_app()
    options = MqttGatewayOptions.model_validate(
        {"broker": mosquitto.url, "subscriptions": [{"topic": "dash/#", "qos": 1}]}
    )
    gateway = await run_gateway(MqttGateway(name, app, options))
    server = MonitoringServer("127.0.0.1", 0, lambda: [gateway])
    await server.start()
    try:
        assert server.dashboard.errors in logging.getLogger().handlers
        async with mqtt_client(mosquitto.url) as probe:
            for n in range(3):
                await probe.publish(f"dash/{n}", b"x", qos=1)
        snapshot = await until_json(
            f"{server.url}/dashboard.json", lambda s: row(s, name)["scopes"] == 3
        )
        assert row(snapshot, name)["events_received"] == len(gateway.instances) == 3

        # A command the access rules deny counts for its gateway (the policy's counter).
        policy = AccessPolicy(AccessConfig(default="deny"))
        sender = Sender(name, "slack:U0MALLORY", "U0MALLORY", "mallory", "C0GENERAL1", False)
        assert not policy.check(CommandInfo("reboot"), sender).allowed
        snapshot = await until_json(
            f"{server.url}/dashboard.json", lambda s: row(s, name)["denied_commands"] >= 1
        )
        assert row(snapshot, name)["denied_commands"] == 1

        # Errors of any logger, with their gateway if the record names it; not warnings.
        logging.getLogger("tests.dashboard").warning("only a warning")
        logging.getLogger("tests.dashboard").error(
            "lost <b>%s</b>", "mqtt://user:pw-in-url@broker:1883", extra={"gateway": name}
        )
        (entry,) = (await until_json(f"{server.url}/dashboard.json", lambda s: bool(s["errors"])))[
            "errors"
        ]
        assert entry["message"] == "lost <b>mqtt://user:***@broker:1883</b>"
        assert (entry["logger"], entry["gateway"]) == ("tests.dashboard", name)

        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.url}/dashboard/events") as response,
        ):
            first = await response.content.readline()
            assert first == b"retry: 2000\n"
            async with asyncio.timeout(10):  # aiohttp alone would wait 60 s for the handler
                await server.stop()
                rest = await response.content.read()
            assert response.content.at_eof()
            assert b"data: " in rest
    finally:
        await server.stop()
    assert server.dashboard.errors not in logging.getLogger().handlers


def test_the_ring_keeps_the_newest_errors_and_counts_them_all() -> None:
    ring = ErrorRing(capacity=3)
    log = logging.getLogger("tests.dashboard.ring")
    log.addHandler(ring)
    try:
        for n in range(5):
            log.error("error %d", n)
        log.warning("a warning")
        try:
            raise ValueError("the cause")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(ring)
    messages = [entry["message"] for entry in ring.entries()]
    assert messages == ["failed\nValueError: the cause", "error 4", "error 3"]
    assert ring.total == 6
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        ErrorRing(capacity=0)
    for every in (0, -1, float("inf"), float("nan")):  # and the store is checked every...
        with pytest.raises(ValueError, match="store_every must be a positive number"):
            Dashboard(list, store_every=every)


def test_no_dashboard_text_is_written_as_html() -> None:
    """The script writes text only; the page has no inline script or style (the policy would
    refuse them)."""
    static = ROOT / "gateways" / "daemon" / "static"
    script = (static / "dashboard.js").read_text()
    assert "textContent" in script
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)
    page_text = (static / "dashboard.html").read_text()
    assert "<style" not in page_text
    assert re.findall(r"<script[^>]*>", page_text) == ['<script src="static/dashboard.js" defer>']
