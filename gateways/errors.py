"""The base error of the gateways package."""

from __future__ import annotations

__all__ = ["GatewayError"]


class GatewayError(Exception):
    """Base error of the gateways package: a transport failure, an event a gateway can't do."""
