"""The ``asgi-gateway`` command: a thin click layer over ``config`` and ``Daemon``.

``run FILE`` serves the file's gateways (and its ``workers:``, if any); ``worker FILE
CHANNEL...`` serves only a worker for those channels, with the file's application and layer;
``check FILE`` validates and starts nothing.

Exit codes: 0 after a graceful stop (SIGINT/SIGTERM) or a passing ``check``; 1 when a
gateway fails while serving; 2 when the file or the command line is invalid (click's own
usage errors are 2 as well).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import click

from config import Config, ConfigError, load_config
from gateways.base import GatewayError
from gateways.listing import describe_adapters
from gateways.server import Daemon
from gateways.worker import check_channel_names

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_INVALID = 2

logger = logging.getLogger("gateways.cli")

#: Libraries that log every state change at INFO; quiet unless the file says otherwise.
QUIET_LOGGERS = {"amqtt": "WARNING", "transitions": "WARNING"}

CONFIG_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _prepare_import_path(config_file: Path) -> None:
    """Put the current directory and the YAML file's directory on ``sys.path``, so
    ``application: app:application`` finds ``app.py`` beside the file (uvicorn adds the
    current directory likewise)."""
    for folder in (Path.cwd(), config_file.resolve().parent):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def _build(
    config_file: Path,
    log_level: str | None,
    make: Callable[[Config], Daemon] = Daemon.from_config,
) -> Daemon:
    try:
        config = load_config(config_file)
        if log_level is not None:
            config.logging.level = log_level.upper()
        for name, level in QUIET_LOGGERS.items():
            config.logging.loggers.setdefault(name, level)
        config.logging.apply()
        _prepare_import_path(config_file)
        return make(config)
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="asgi-gateway")
def main() -> None:
    """A gateway daemon for MQTT devices and chat platforms, serving ASGI applications."""


@main.command()
@click.argument("config_file", type=CONFIG_FILE)
@LOG_LEVEL
def run(config_file: Path, log_level: str | None) -> None:
    """Run the gateways (and workers) that CONFIG_FILE describes until SIGINT or SIGTERM."""
    _serve(_build(config_file, log_level))


@main.command()
@click.argument("config_file", type=CONFIG_FILE)
@click.argument("channels", metavar="[CHANNEL]...", nargs=-1)
@LOG_LEVEL
def worker(config_file: Path, channels: tuple[str, ...], log_level: str | None) -> None:
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

    _serve(_build(config_file, log_level, make))


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
