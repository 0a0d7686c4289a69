"""A chat gateway's own small state file: the ``state_path`` option of the gateways that resume
after a restart (Telegram's update offset, the marks of Mattermost, Rocket.Chat and Zulip,
the activities Teams answered). One home for how such a file is read and written, so that
every adapter's ledger keeps only what it records.

The file is JSON. ``read`` runs once, at start: a file that exists but cannot be read, is not
JSON, or is not the shape the ledger's parser expects is a ``GatewayError`` naming the
gateway and the file (start afresh by moving it away). ``write`` replaces it atomically (a
temporary file beside it, then ``os.replace``); a write that fails is logged once, as an
ERROR saying what a restart may then repeat, until one succeeds, and never raised: the
gateway goes on serving.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateways.errors import GatewayError

__all__ = ["StateFile"]

T = TypeVar("T")


class StateFile:
    """The state file of one gateway (see the module).

    Args:
        gateway: The gateway's name, for messages.
        path: The file, or ``None`` for none (then ``read`` finds nothing and ``write`` does
            nothing).
        logger: The adapter's logger.
        lost: What a failed write may cost after a restart, for the log line ("updates
            handled before a restart may be delivered again").
        kind: What the file should be, for the error of one that is not ("a Rocket.Chat
            gateway's state file"); ``None``: just the gateway's state.
    """

    def __init__(
        self,
        gateway: str,
        path: Path | None,
        logger: logging.Logger,
        lost: str,
        *,
        kind: str | None = None,
    ) -> None:
        self.gateway = gateway
        self.kind = kind
        self.path = path
        self.logger = logger
        self.lost = lost
        self._failed = False

    def read(self, parse: Callable[[Any], T]) -> T | None:
        """``parse(state)`` of the file's JSON; ``None`` when there is no file.

        Raises:
            GatewayError: The file can't be read, is not JSON, or ``parse`` raised
                ``ValueError``, ``KeyError``, ``TypeError`` or ``AttributeError`` on it.
        """
        path = self.path
        if path is None or not path.exists():
            return None
        try:
            return parse(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            what = f": it is not {self.kind}" if self.kind else ""
            raise GatewayError(
                f"gateway {self.gateway!r}: state_path {str(path)!r} can't be read as the "
                f"gateway's state ({exc!r}){what}; move it away to start afresh"
            ) from exc

    def write(self, state: Any) -> None:
        """Replace the file with ``state`` as JSON, atomically; a failure is logged once."""
        path = self.path
        if path is None:
            return
        temporary = path.with_name(path.name + ".tmp")
        try:
            temporary.write_text(json.dumps(state), encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            if not self._failed:
                self.logger.error(
                    "Gateway %r: cannot write state_path %r (%s); %s",
                    self.gateway,
                    str(path),
                    exc,
                    self.lost,
                )
            self._failed = True
        else:
            self._failed = False
