"""Configuration of the asgi-gateway daemon: the YAML file, its models, and import paths.

``load_config("gateway.yaml")`` reads the file (ruamel.yaml, keeping every key's line),
interpolates ``${VAR}`` / ``${VAR:-default}`` from the environment, and validates it with
pydantic. Every problem is a :class:`ConfigError` that names the file, line and key path.
Gateways validate their own options with :meth:`Config.validate_gateway_options`, declaring
secrets as pydantic ``SecretStr`` (see :mod:`config.redaction`).

This package imports nothing else of asgi-gateway.
"""

from __future__ import annotations

from config.errors import ConfigError, ConfigPath, ImportFromStringError, format_path
from config.importing import import_from_string, split_import_path
from config.interpolation import InterpolationError, interpolate
from config.loader import load_config, load_config_text
from config.models import (
    Config,
    GatewayConfig,
    LayerConfig,
    LoggingConfig,
    LogLevel,
    WorkersConfig,
)
from config.monitoring import MonitoringConfig
from config.plugins import PluginEntry, PluginRegistry, accepted_options
from config.redaction import (
    SECRET_MASK,
    OptionsModel,
    RedactedReprMixin,
    is_secret_name,
    is_secret_value,
    redact,
    redact_url,
)
from config.source import SourceMap
from config.state import StateConfig

__all__ = [
    "SECRET_MASK",
    "Config",
    "ConfigError",
    "ConfigPath",
    "GatewayConfig",
    "ImportFromStringError",
    "InterpolationError",
    "LayerConfig",
    "LogLevel",
    "LoggingConfig",
    "MonitoringConfig",
    "OptionsModel",
    "PluginEntry",
    "PluginRegistry",
    "RedactedReprMixin",
    "SourceMap",
    "StateConfig",
    "WorkersConfig",
    "accepted_options",
    "format_path",
    "import_from_string",
    "interpolate",
    "is_secret_name",
    "is_secret_value",
    "load_config",
    "load_config_text",
    "redact",
    "redact_url",
    "split_import_path",
]
