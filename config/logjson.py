"""JSON lines for the daemon's log (``logging: {format: json}``, ``--log-format json``).

One JSON object per record, on one line, built by python-json-logger::

    {"time": "2025-01-31T09:12:03.123456+00:00", "level": "ERROR", "logger": "gateways.base",
     "message": "Gateway 'mqtt': application instance for scope 'work/b' raised; ...",
     "gateway": "mqtt", "scope": "work/b", "exception": "Traceback (most recent call last): ..."}

``time`` is ISO 8601 in UTC; ``gateway`` and ``scope`` appear where the record carries them
(``logger.error(..., extra={"gateway": name, "scope": key})``), as every other ``extra`` key
does. Secrets stay out as in text logs, and more: the message, the exception text and every
extra value pass through :func:`config.redaction.redact` (URL passwords become ``***``, a
value under a secret's name such as ``password`` is masked).
"""

from __future__ import annotations

from typing import Any

from pythonjsonlogger.json import JsonFormatter

from config.redaction import redact

__all__ = ["JSON_LOG_FIELDS", "JsonLogFormatter"]

JSON_LOG_FIELDS = ("time", "level", "logger", "message")
"""The keys every line has, in this order (then ``exception``, ``gateway``, ``scope``...)."""

_RENAMED = {"levelname": "level", "name": "logger", "exc_info": "exception"}


class JsonLogFormatter(JsonFormatter):
    """A :class:`logging.Formatter` writing each record as one line of JSON, redacted.

    Takes no arguments (``{"()": "config.logjson.JsonLogFormatter"}`` in a
    :func:`logging.config.dictConfig` schema).
    """

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields=_RENAMED,
            timestamp="time",
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Put the common keys first and pass every value through :func:`redact`."""
        ordered = {key: log_data.pop(key) for key in JSON_LOG_FIELDS if key in log_data}
        ordered.update(log_data)
        return {key: redact(value, key) for key, value in ordered.items()}
