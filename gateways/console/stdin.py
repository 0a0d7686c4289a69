"""The console gateway's standard input, read without blocking the event loop.

Whatever standard input is, ``ConsoleStdin.open`` gives an ``asyncio.StreamReader`` of it:

- a terminal: the terminal opened again, a file description of its own, read through the
  event loop (its non-blocking mode leaves standard output, the same terminal, blocking);
- a pipe: a duplicate of the descriptor, read through the event loop; ``close`` puts
  standard input back in blocking mode;
- a file, or a device that is no terminal (``/dev/null``, which epoll refuses): read in the
  default executor, as it never blocks for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys

from gateways.base import GatewayError

__all__ = ["ConsoleStdin"]

#: Bytes read at a time from a file.
_CHUNK = 65536


class ConsoleStdin:
    """The process's standard input as an ``asyncio.StreamReader``, and what ``close`` undoes.

    Args:
        gateway: The gateway's name, for error messages.
    """

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        #: Whether standard input is a terminal; set by ``open``.
        self.is_terminal = False
        self._file_reader: asyncio.Task[None] | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._restore_blocking: int | None = None

    async def open(self) -> asyncio.StreamReader:
        """Start reading standard input.

        Returns:
            A reader of its bytes, at EOF when standard input ends.

        Raises:
            GatewayError: Standard input is closed, or can't be read (the message gives its
                mode).
        """
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        try:
            fd = sys.stdin.fileno()
            mode = os.fstat(fd).st_mode
        except (AttributeError, ValueError, OSError) as exc:
            raise GatewayError(
                f"gateway {self.gateway!r}: standard input can't be read: {exc}"
            ) from exc
        self.is_terminal = os.isatty(fd)
        if stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not self.is_terminal):
            self._file_reader = loop.create_task(_read_file(fd, reader))
            return reader
        if self.is_terminal:
            own = os.open(os.ttyname(fd), os.O_RDONLY | os.O_NOCTTY)
        else:
            own = os.dup(fd)
            self._restore_blocking = fd
        pipe = os.fdopen(own, "rb", buffering=0)
        try:
            self._transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe
            )
        except (ValueError, OSError) as exc:
            pipe.close()
            raise GatewayError(
                f"gateway {self.gateway!r}: can't read standard input (mode {mode:o}): {exc}"
            ) from exc
        return reader

    async def close(self) -> None:
        """Stop reading and give standard input back as it was (blocking)."""
        task, self._file_reader = self._file_reader, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        if self._restore_blocking is not None:
            with contextlib.suppress(OSError):
                os.set_blocking(self._restore_blocking, True)
            self._restore_blocking = None


async def _read_file(fd: int, reader: asyncio.StreamReader) -> None:
    loop = asyncio.get_running_loop()
    while chunk := await loop.run_in_executor(None, os.read, fd, _CHUNK):
        reader.feed_data(chunk)
    reader.feed_eof()
