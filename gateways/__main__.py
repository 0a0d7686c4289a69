"""``python -m gateways`` is the ``asgi-gateway`` command."""

from gateways.cli import main

main()
