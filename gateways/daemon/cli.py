"""The ``asgi-gateway`` command: a thin click layer over ``config`` and ``Daemon``.

``run FILE`` serves the file's gateways (and its ``workers:``, if any); ``worker FILE
CHANNEL...`` serves only a worker for those channels, with the file's application and layer;
``check FILE`` validates and starts nothing. ``run --reload`` restarts the daemon on every
edit (``gateways.daemon.reload``); ``--log-format json`` writes JSON lines (``config.logjson``).

Exit codes: 0 after a graceful stop (SIGINT/SIGTERM) or a passing ``check``; 1 when a
gateway fails while serving; 2 when the file or the command line is invalid (click's own
usage errors are 2 as well).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import click

from config import Config, ConfigError, LoggingConfig, load_config
from gateways.base import GatewayError
from gateways.daemon.listing import describe_adapters
from gateways.daemon.reload import Reloader
from gateways.daemon.server import Daemon
from gateways.daemon.worker import check_channel_names

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_INVALID = 2

logger = logging.getLogger("gateways.daemon.cli")

#: Libraries that log every state change at INFO; quiet unless the file says otherwise.
QUIET_LOGGERS = {"amqtt": "WARNING", "transitions": "WARNING", "watchfiles": "WARNING"}

LogFormat = Literal["text", "json"]

CONFIG_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _prepare_import_path(config_file: Path) -> None:
    """Put the current directory and the YAML file's directory on ``sys.path``, so
    ``application: app:application`` finds ``app.py`` beside the file (uvicorn adds the
    current directory likewise)."""
    for folder in (Path.cwd(), config_file.resolve().parent):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def _apply_logging(
    section: LoggingConfig, log_level: str | None, log_format: LogFormat | None
) -> None:
    """Apply the file's logging section, with the command line's overrides."""
    if log_level is not None:
        section.level = log_level.upper()
    if log_format is not None:
        section.choose_format(log_format)
    for name, level in QUIET_LOGGERS.items():
        section.loggers.setdefault(name, level)
    section.apply()


def _build(
    config_file: Path,
    log_level: str | None,
    make: Callable[[Config], Daemon] = Daemon.from_config,
    log_format: LogFormat | None = None,
) -> Daemon:
    try:
        config = load_config(config_file)
        _apply_logging(config.logging, log_level, log_format)
        _prepare_import_path(config_file)
        daemon = make(config)
        if not config.logging.is_json:  # where to reach it, for the person who started it
            daemon.announce = functools.partial(click.echo, err=True)
        return daemon
    except ConfigError as exc:
        click.echo(f"asgi-gateway: invalid configuration\n{exc}", err=True)
        sys.exit(EXIT_INVALID)


def _serve(daemon: Daemon) -> None:
    try:
        asyncio.run(daemon.serve(handle_signals=True))
    except GatewayError as exc:
        logger.error("asgi-gateway stopped on a failure: %s", exc)
        sys.exit(EXIT_FAILED)
    except asyncio.CancelledError:
        logger.warning("asgi-gateway stopped without draining (second signal)")
        sys.exit(EXIT_FAILED)


LOG_LEVEL = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Overrides logging.level of the file.",
)

LOG_FORMAT = click.option(
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    help="Overrides logging.format of the file: json writes one JSON object per line; "
    "text the file's %-style format (or the default one).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="asgi-gateway")
def main() -> None:
    """A gateway daemon for MQTT devices and chat platforms, serving ASGI applications."""


@main.command()
@click.argument("config_file", type=CONFIG_FILE)
@LOG_LEVEL
@LOG_FORMAT
@click.option(
    "--reload",
    is_flag=True,
    help="Restart the daemon (in a child process) when CONFIG_FILE or a Python file in its "
    "folder or the application's folder changes. For development.",
)
def run(
    config_file: Path, log_level: str | None, log_format: LogFormat | None, reload: bool
) -> None:
    """Run the gateways (and workers) that CONFIG_FILE describes until SIGINT or SIGTERM."""
    if reload:
        _reload(config_file, log_level, log_format)
    # A SIGTERM while the application is imported and the layer built (before serve()
    # installs its handlers) is a stop before anything started: exit 0, as after a drain.
    signal.signal(signal.SIGTERM, _stopped_before_serving)
    _serve(_build(config_file, log_level, log_format=log_format))


def _stopped_before_serving(signum: int, frame: object) -> None:
    sys.exit(0)


def _reload(config_file: Path, log_level: str | None, log_format: LogFormat | None) -> None:
    """``run --reload``: supervise ``run`` without ``--reload`` in a child; never returns."""
    try:
        section = load_config(config_file).logging
    except ConfigError:  # the child reports it and exits; the file is watched until fixed
        section = LoggingConfig()
    _apply_logging(section, log_level, log_format)
    args = ["run", str(config_file)]
    if log_level is not None:
        args += ["--log-level", log_level]
    if log_format is not None:
        args += ["--log-format", log_format]
    sys.exit(Reloader(config_file, args).run())


@main.command()
@click.argument("config_file", type=CONFIG_FILE)
@click.argument("channels", metavar="[CHANNEL]...", nargs=-1)
@LOG_LEVEL
@LOG_FORMAT
def worker(
    config_file: Path,
    channels: tuple[str, ...],
    log_level: str | None,
    log_format: LogFormat | None,
) -> None:
    """Run the application of CONFIG_FILE for each CHANNEL of its channel layer, and nothing
    else (no gateway), until SIGINT or SIGTERM.

    Each message sent to a CHANNEL (``await channel_layer.send("thumbnails", {...})``
    from any consumer, in any process sharing the layer) is an event of that channel's
    application instance, scope ``{"type": "channel", "channel": CHANNEL}``. Without a
    CHANNEL, the channels of the file's workers: section. The layer must be one that
    processes share (type: redis), not the in-memory one.
    """
    try:
        names = check_channel_names(channels) if channels else None
    except GatewayError as exc:
        raise click.BadParameter(str(exc), param_hint="CHANNEL") from None

    def make(config: Config) -> Daemon:
        try:
            return Daemon.for_worker(config, names)
        except GatewayError as exc:  # no channel named anywhere
            raise click.UsageError(str(exc)) from None

    _serve(_build(config_file, log_level, make, log_format))


@main.command()
@click.argument("config_file", type=CONFIG_FILE)
def check(config_file: Path) -> None:
    """Validate CONFIG_FILE, import its application and gateways, and start nothing."""
    daemon = _build(config_file, None)
    names = ", ".join(f"{g.name} ({g.protocol})" for g in daemon.gateways) or "none"
    channels = ", ".join(c for w in daemon.workers for c in getattr(w, "channels", ()))
    workers = f"; workers: {channels}" if channels else ""
    click.echo(f"{config_file}: OK; gateways: {names}{workers}")


@main.command()
def gateways() -> None:
    """List the installed gateway types (entry points of the group asgi_gateway.gateways):
    where each came from, and its options."""
    click.echo(describe_adapters())


@main.command()
@click.argument("config_file", type=CONFIG_FILE)
@click.option(
    "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the document to this file instead of standard output.",
)
@click.option("--api-version", default="0.0.0", show_default=True, help="Its info.version.")
def asyncapi(config_file: Path, fmt: str, output: Path | None, api_version: str) -> None:
    """Write an AsyncAPI 3.0 document of what CONFIG_FILE's application serves: its MQTT
    routes and chat gateways as channels, its brokers as servers (docs/asyncapi.md)."""
    from gateways.daemon.asyncapi import asyncapi_document, render_document

    titles: list[str] = []

    def make(config: Config) -> Daemon:
        titles.append(config.application)
        return Daemon.from_config(config)

    daemon = _build(config_file, None, make)
    try:
        document = asyncapi_document(
            daemon.application, daemon.gateways, title=titles[0], api_version=api_version
        )
    except GatewayError as exc:
        click.echo(f"asgi-gateway: cannot describe the application\n{exc}", err=True)
        sys.exit(EXIT_INVALID)
    text = render_document(document, "json" if fmt == "json" else "yaml")
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
