"""pydantic models of the daemon's YAML file (``asgi-gateway run gateway.yaml``).

Every model forbids unknown keys, except :class:`GatewayConfig`, whose keys other than
``type`` are that gateway type's options, validated later by the gateway's own model through
:meth:`Config.validate_gateway_options`.
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from config.access import AccessConfig
from config.cluster import ClusterConfig
from config.errors import ConfigError, ConfigPath, ImportFromStringError
from config.importing import import_from_string, split_import_path
from config.monitoring import MonitoringConfig
from config.redaction import RedactedReprMixin
from config.source import SourceMap
from config.state import StateConfig
from config.validation import config_error_from_validation

__all__ = [
    "Config",
    "GatewayConfig",
    "LayerConfig",
    "LogLevel",
    "LoggingConfig",
    "WorkersConfig",
]

M = TypeVar("M", bound=BaseModel)

DEFAULT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: ``logging.format`` for one JSON object per line (``config.logjson.JsonLogFormatter``).
JSON_LOG_FORMAT = "json"

# Gateway names end up in scopes, channel names and metric labels: the Channels name alphabet.
_GATEWAY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,99}")

# A worker's channel: a normal channel name of the Channels layer spec (ASCII letters, digits,
# '-', '_', '.'; under 100 characters), the rule layer.require_valid_channel_name applies too.
# A process-specific name (with '!') is refused: only its own process can receive from it.
_WORKER_CHANNEL = re.compile(r"[A-Za-z0-9_.-]{1,99}")


def _level_name(value: str) -> str:
    name = value.strip().upper()
    levels = logging.getLevelNamesMapping()
    if name not in levels:
        raise ValueError(f"must be a logging level name, one of {', '.join(levels)} (any case)")
    return name


def _log_format(value: str) -> str:
    if value.strip().lower() == JSON_LOG_FORMAT:
        return JSON_LOG_FORMAT
    try:
        logging.Formatter(value)
    except ValueError:
        raise ValueError(
            "must be a %-style logging format, e.g. '%(levelname)s %(name)s: %(message)s', "
            "or 'json' for one JSON object per line"
        ) from None
    return value


def _import_path(value: str) -> str:
    try:
        split_import_path(value)
    except ImportFromStringError as exc:
        raise ValueError(exc.problem) from None
    return value


def _gateway_name(value: str) -> str:
    if not _GATEWAY_NAME.fullmatch(value):
        raise ValueError("a gateway name holds 1 to 99 letters, digits, '-', '_' or '.'")
    return value


def _worker_channel(value: str) -> str:
    if "!" in value:
        raise ValueError(
            f"{value!r} is a process-specific channel name ('!'): only the process that made "
            "it can receive from it, so no worker can serve it; name a normal channel"
        )
    if not _WORKER_CHANNEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid channel name: 1 to 99 ASCII letters, digits, '-', '_' "
            "or '.' (Channels layer spec)"
        )
    return value


LogLevel = Annotated[str, AfterValidator(_level_name)]
"""A logging level name (``"debug"``, ``"WARNING"``...), normalised to upper case."""

GatewayName = Annotated[str, AfterValidator(_gateway_name)]

WorkerChannel = Annotated[str, AfterValidator(_worker_channel)]
"""A channel name a worker serves: a normal (not process-specific) channel name."""


class _Model(RedactedReprMixin):
    model_config = ConfigDict(extra="forbid")


class LayerConfig(_Model):
    """The channel layer shared by every gateway.

    Attributes:
        type: A short name (``"memory"``, ``"redis"``) or an import path such as
            ``"channels_redis.core.RedisChannelLayer"``; resolved by the ``layer`` package.
        options: Keyword arguments of the layer's constructor (e.g. ``capacity``, ``expiry``
            in seconds). Values written with ``${VAR}`` are strings.
    """

    type: str = Field(default="memory", min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)


class LoggingConfig(_Model):
    """Logging of the daemon, applied with :func:`logging.config.dictConfig`.

    Attributes:
        level: Level of the root logger.
        format: ``%``-style format of every record, written to standard error; or ``json``
            for one JSON object per line (``time``, ``level``, ``logger``, ``message``, then
            ``exception``, ``gateway``, ``scope`` where known; see :mod:`config.logjson`).
        loggers: Levels of named loggers, e.g. ``{"aiomqtt": "WARNING"}``.
    """

    level: LogLevel = "INFO"
    format: Annotated[str, AfterValidator(_log_format)] = DEFAULT_LOG_FORMAT
    loggers: dict[str, LogLevel] = Field(default_factory=dict)

    def dict_config(self) -> dict[str, Any]:
        """The :func:`logging.config.dictConfig` schema (version 1) that :meth:`apply` uses.

        Returns:
            A configuration with one stream handler on ``sys.stderr`` on the root logger, the
            named loggers' levels, and existing loggers left enabled.
        """
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"default": self._formatter()},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "default",
                    "stream": "ext://sys.stderr",
                }
            },
            "root": {"level": self.level, "handlers": ["stderr"]},
            "loggers": {name: {"level": level} for name, level in self.loggers.items()},
        }

    @property
    def is_json(self) -> bool:
        """Whether records are written as JSON lines (``format: json``)."""
        return self.format == JSON_LOG_FORMAT

    def choose_format(self, kind: Literal["text", "json"]) -> None:
        """Override the file's format, as ``--log-format`` does.

        Args:
            kind: ``"json"`` for JSON lines; ``"text"`` for the file's ``%``-style format, or
                the default one if the file says ``json``.
        """
        if kind == "json":
            self.format = JSON_LOG_FORMAT
        elif self.is_json:
            self.format = DEFAULT_LOG_FORMAT

    def _formatter(self) -> dict[str, Any]:
        if self.is_json:
            return {"()": "config.logjson.JsonLogFormatter"}
        return {"format": self.format}

    def apply(self) -> None:
        """Configure the standard library's ``logging`` from this section.

        Replaces the root logger's handlers; loggers that exist keep working.
        """
        logging.config.dictConfig(self.dict_config())


class GatewayConfig(RedactedReprMixin):
    """One named gateway: its ``type`` and, as every other key, that type's options.

    Attributes:
        type: The gateway type, a registered short name (``"mqtt"``) or an import path.
    """

    # Every key but `type` is an option, checked by the gateway's own model later.
    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1)

    @property
    def options(self) -> dict[str, Any]:
        """The gateway's options: every key but ``type``, as read from YAML (unvalidated)."""
        return dict(self.model_extra or {})


class WorkersConfig(RedactedReprMixin):
    """The ``workers:`` section: run the application for named channels beside the gateways.

    Attributes:
        channels: Channel names whose messages the worker hands to the application, one
            long-lived application instance (``scope["type"] == "channel"``) per name.

    Every other key is an option of the worker (``max_queued_events``, ``disconnect_grace``),
    validated later by the worker's own model through :meth:`Config.validate_worker_options`.
    """

    model_config = ConfigDict(extra="allow")

    channels: list[WorkerChannel] = Field(min_length=1)

    @field_validator("channels")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in value:
            if name in seen:
                raise ValueError(f"channel {name!r} is listed twice")
            seen.add(name)
        return value

    @property
    def options(self) -> dict[str, Any]:
        """The worker's options: every key but ``channels``, as read from YAML (unvalidated)."""
        return dict(self.model_extra or {})


class _Absent(dict[str, Any]):
    """The default of ``gateways``: tells a file without the key from one with ``{}``."""


class Config(_Model):
    """The whole configuration file.

    Attributes:
        application: Import path of the ASGI application, ``"package.module:attr"``.
        layer: The channel layer.
        workers: Channel names to run workers for in this process, or ``None``.
        gateways: Gateway name -> gateway; at least one, unless ``workers`` is given.
        logging: Logging levels and format.
        shutdown_timeout: Seconds to let scopes drain after SIGTERM before cancelling them.
        monitoring: The HTTP server of ``/metrics``, ``/healthz``, ``/readyz`` and the
            dashboard (``/``), or ``None`` (the default) for none.
        access: Who may run which chat command (``config.access``), or ``None``.
        state: The store of durable scopes' state (``config.state``), or ``None`` for none.
        cluster: Scope ownership across daemons (``config.cluster``), or ``None`` for none.
        lifespan: The ASGI lifespan protocol for the application (``"auto"``, ``"on"``,
            ``"off"``: ``gateways.daemon.lifespan``): ``lifespan.startup`` before the
            gateways start, ``lifespan.shutdown`` after they stopped.
    """

    application: Annotated[str, AfterValidator(_import_path)]
    layer: LayerConfig = Field(default_factory=LayerConfig)
    # Before `gateways`, whose check reads it.
    workers: WorkersConfig | None = None
    gateways: dict[GatewayName, GatewayConfig] = Field(
        default_factory=_Absent, validate_default=True
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    shutdown_timeout: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    monitoring: MonitoringConfig | None = None
    access: AccessConfig | None = None
    state: StateConfig | None = None
    cluster: ClusterConfig | None = None
    lifespan: Literal["auto", "on", "off"] = "auto"

    _source: SourceMap = PrivateAttr(default_factory=SourceMap)

    @field_validator("gateways", mode="before")
    @classmethod
    def _gateways_unless_workers(cls, value: Any, info: ValidationInfo) -> Any:
        # An absent `workers` is in info.data as None; an invalid one is not there at all
        # (and is reported on its own).
        if isinstance(value, _Absent) and "workers" in info.data and info.data["workers"] is None:
            raise PydanticCustomError("missing", "Field required")
        return value

    @field_validator("gateways")
    @classmethod
    def _at_least_one_gateway(
        cls, value: dict[str, GatewayConfig], info: ValidationInfo
    ) -> dict[str, GatewayConfig]:
        if not value and "workers" in info.data and info.data["workers"] is None:
            raise ValueError("at least one gateway is required (or a workers: section)")
        return value

    def __eq__(self, other: object) -> bool:
        # Equal values make equal configurations, wherever they were loaded from.
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(other) is type(self) and self.__dict__ == other.__dict__

    @classmethod
    def from_source(cls, data: Any, source: SourceMap) -> Config:
        """Validate ``data`` read from a YAML file, remembering where each key was.

        Args:
            data: The file's contents as plain Python values.
            source: The file name and the line of each key path in it.

        Raises:
            pydantic.ValidationError: ``data`` is not a valid configuration.
        """
        config = cls.model_validate(data)
        if config.access is not None:
            problems = config.access.problems(set(config.gateways))
            if problems:
                raise ValidationError.from_exception_data(
                    cls.__name__,
                    [
                        {"type": PydanticCustomError("access", text), "loc": path, "input": value}
                        for path, text, value in problems
                    ],
                )
        config._source = source
        return config

    @property
    def file(self) -> str | None:
        """Name of the file this configuration was loaded from, if any."""
        return self._source.file

    def line_of(self, path: ConfigPath) -> int | None:
        """The 1-based line of the key at ``path`` (or of its nearest enclosing key).

        Args:
            path: Key path, e.g. ``("gateways", "devices", "type")``.

        Returns:
            The line, or ``None`` if the configuration was not loaded from YAML.
        """
        return self._source.line(path)

    def error_at(
        self, path: ConfigPath, problem: str, cls: type[ConfigError] = ConfigError
    ) -> ConfigError:
        """A ``cls`` error about the key at ``path``, with its file and line.

        For checks made after loading, e.g. an unknown gateway type:
        ``raise config.error_at(("gateways", name, "type"), f"unknown gateway type {t!r}")``.

        Args:
            path: Key path of the offending key.
            problem: What is wrong, quoting the offending value (never a secret).
            cls: :class:`ConfigError` or a subclass.

        Returns:
            The error (not raised).
        """
        return self._source.error(path, problem, cls)

    def import_object(self, path: ConfigPath) -> Any:
        """Import what the import path stored at key ``path`` names.

        Args:
            path: Key path of a string option, e.g. ``("application",)``, ``("layer", "type")``.

        Returns:
            The imported object.

        Raises:
            ImportFromStringError: The value is not an import path that resolves; located at
                ``path``.
            ImportError: Raised by the code of the module being imported.
        """
        value = self._value_at(path)
        if not isinstance(value, str):
            raise self.error_at(
                path, f"expected an import path, got {value!r}", ImportFromStringError
            )
        try:
            return import_from_string(value)
        except ImportFromStringError as exc:
            raise self.error_at(path, exc.problem, ImportFromStringError) from None

    def validate_gateway_options(self, name: str, model: type[M]) -> M:
        """Validate the options of gateway ``name`` with the gateway type's own model.

        Args:
            name: The gateway's name (its key under ``gateways``).
            model: A pydantic model of that gateway type's options; declare secrets as
                ``SecretStr`` (see :mod:`config.redaction`).

        Returns:
            The validated options.

        Raises:
            ConfigError: No gateway is named ``name``, or its options are invalid; each problem
                has the path ``("gateways", name, <key>, ...)`` and the line of that key.
        """
        gateway = self.gateways.get(name)
        if gateway is None:
            raise self.error_at(
                ("gateways",), f"no gateway named {name!r}; gateways: {', '.join(self.gateways)}"
            )
        options = gateway.options
        try:
            return model.model_validate(options)
        except ValidationError as exc:
            raise config_error_from_validation(
                exc, data=options, model=model, prefix=("gateways", name), source=self._source
            ) from None

    def validate_worker_options(self, model: type[M]) -> M:
        """Validate the options of the ``workers:`` section with the worker's own model.

        Args:
            model: A pydantic model of the worker's options (``gateways.daemon.WorkerOptions``).

        Returns:
            The validated options; the model's defaults when there is no ``workers:`` section.

        Raises:
            ConfigError: An option is unknown or invalid; each problem has the path
                ``("workers", <key>, ...)`` and the line of that key.
        """
        options = self.workers.options if self.workers is not None else {}
        try:
            return model.model_validate(options)
        except ValidationError as exc:
            raise config_error_from_validation(
                exc, data=options, model=model, prefix=("workers",), source=self._source
            ) from None

    def _value_at(self, path: ConfigPath) -> Any:
        current: Any = self
        for part in path:
            if isinstance(current, BaseModel) and isinstance(part, str):
                fields = type(current).model_fields
                current = (
                    getattr(current, part)
                    if part in fields
                    else (current.model_extra or {}).get(part)
                )
            elif isinstance(current, dict):
                current = current.get(part)
            elif isinstance(current, list) and isinstance(part, int) and part < len(current):
                current = current[part]
            else:
                return None
        return current
