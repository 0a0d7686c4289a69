"""The ``monitoring:`` section: where the daemon serves ``/metrics``, ``/healthz``,
``/readyz`` and the dashboard (``/``: ``gateways.daemon.monitoring``); absent, the daemon
serves none of them."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from config.redaction import RedactedReprMixin

__all__ = ["MonitoringConfig"]


class MonitoringConfig(RedactedReprMixin):
    """The daemon's monitoring HTTP server.

    Attributes:
        host: The address to listen on; the default keeps it to this machine. ``0.0.0.0``
            (or ``::``) lets a Prometheus server elsewhere scrape it.
        port: The TCP port, 1 to 65535 (Prometheus exporters commonly use 9464); 0 lets
            the system pick a free one (logged at start).
    """

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(ge=0, le=65535)
