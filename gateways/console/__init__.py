"""The console adapter (``type: console``): chat in the terminal, one user at a time.

``ConsoleGateway`` is the protocol server and ``ConsoleGatewayOptions`` its YAML options
(``docs/chat.md``). Inside: ``gateway`` (conversations and output), ``lines`` (control
lines such as ``:dm`` and ``:thread``, and typed text) and ``stdin`` (reading a terminal,
a pipe or a file).
"""

from __future__ import annotations

from gateways.console.gateway import CONTROL_LINES, ConsoleGateway, ConsoleGatewayOptions

__all__ = ["CONTROL_LINES", "ConsoleGateway", "ConsoleGatewayOptions"]
