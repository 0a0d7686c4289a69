"""The aiohttp listener that the daemon's aiohttp endpoints share: Slack's Events API
(``gateways.slack``), Telegram's webhook (``gateways.telegram``) and the monitoring server
(``gateways.daemon.monitoring``). Not imported by ``import gateways``, which loads no aiohttp.
"""

from __future__ import annotations

from aiohttp import web

from gateways.errors import GatewayError

__all__ = ["bound_url", "listen"]


async def listen(
    app: web.Application, host: str, port: int, who: str, purpose: str | None = None
) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` (no access log, no signal handlers of its own).

    Args:
        app: The aiohttp application.
        host: The address to bind, ``"127.0.0.1"`` or ``"0.0.0.0"``.
        port: The TCP port; 0 for a free one (``bound_url`` then tells which).
        who: Who listens, first in the error message (``"gateway 'slack'"``).
        purpose: What for, in the error message (``"Slack's Events API"``).

    Returns:
        The runner: ``await runner.cleanup()`` stops listening and closes connections.

    Raises:
        GatewayError: The address cannot be listened on (in use, not this machine's); the
            runner is cleaned up.
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        what = f" for {purpose}" if purpose else ""
        raise GatewayError(f"{who}: cannot listen on {host}:{port}{what}: {exc}") from exc
    return runner


def bound_url(runner: web.AppRunner | None, path: str) -> str | None:
    """``http://host:port/path`` with the address ``runner`` is bound to (the port actually
    bound when 0 was asked for); ``None`` before it listens."""
    if runner is None or not runner.addresses:
        return None
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}{path}"
