"""``python -m gateways`` is the ``asgi-gateway`` command."""

import signal
import sys

# A SIGTERM while the command is still importing is a stop before anything started (the
# `run` command and then the daemon's serve() install their own handlers after this).
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

from gateways.daemon.cli import main  # noqa: E402

main()
