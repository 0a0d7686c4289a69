"""Options of the Microsoft Teams gateway (its YAML keys).

The app password is a ``SecretStr``: never logged, never shown by ``asgi-gateway check``, and
error messages name the option without its value. The defaults are the Bot Framework's public
cloud endpoints ("Authenticate requests with the Bot Connector API",
https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator

from gateways.chat import ChatGatewayOptions

__all__ = ["TeamsGatewayOptions"]

#: A Microsoft App ID (an Entra ID application's client id) or a tenant id: a GUID.
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} {value!r} must be an http:// or https:// URL")
    return value


class TeamsGatewayOptions(ChatGatewayOptions):
    """YAML options of a Microsoft Teams gateway (besides those of ``ChatGatewayOptions``).

    Attributes:
        app_id: The bot's Microsoft App ID (its Entra ID application's client id, a GUID):
            the audience of every inbound token, and the client id of outbound ones.
        app_password: The app's client secret. Never logged.
        tenant_id: A single-tenant app's tenant (a GUID): outbound tokens come from that
            tenant. ``None`` (multi-tenant): from ``botframework.com``.
        bot_name: The bot's name as Teams shows it (``scope["bot"]["name"]``); a mention of
            the bot reaches the application as ``@<bot_name>``.
        listen: Address the messaging endpoint listens on.
        port: Port of the messaging endpoint (0: any free one; see
            ``TeamsGateway.endpoint_url``).
        path: Path of the messaging endpoint, as set in the Azure Bot resource.
        openid_metadata_url: The Bot Connector's OpenID metadata document, whose
            ``jwks_uri`` lists the keys inbound tokens are signed with.
        issuer: The ``iss`` an inbound token must have.
        login_url: The Entra ID authority outbound tokens come from.
        token_url: The client-credentials token endpoint; ``None``:
            ``<login_url>/<tenant_id or botframework.com>/oauth2/v2.0/token``.
        token_scope: The ``scope`` asked for in outbound tokens.
        service_url: The Bot Connector to post to in a conversation no activity came from
            yet (``conversations``, an addressed event): Teams'
            ``https://smba.trafficmanager.net/teams/`` or a regional one. ``None``: such a
            conversation cannot be posted in until someone writes there.
        clock_skew: Seconds of clock skew allowed on ``exp`` and ``nbf`` of inbound tokens.
        keys_max_age: Seconds the signing keys are kept before they are fetched again (a
            token signed with a key not known is a reason to fetch them earlier, at most
            once a minute).
        activity_wait: Seconds an activity's request waits to be answered until the
            application handled it; then it is answered 202 anyway (the Bot Connector
            waits about 15 s).
        state_path: A file where the gateway keeps which activities it handled and the
            conversations' Bot Connectors, so that after a restart it neither repeats an
            activity nor forgets where to post. ``None``: kept in memory only.
        api_timeout: Seconds one HTTP request to the Bot Connector or the token endpoint
            may take.
        rate_limit_retries: How often a send answered 429 ``Too Many Requests`` is sent
            again, each after its ``Retry-After``.
        max_retry_after: Most seconds the gateway waits for a 429's ``Retry-After``; a
            longer one fails the send (``GatewayError``) at once.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    app_id: str
    app_password: SecretStr
    tenant_id: str | None = None
    bot_name: str = Field(default="bot", min_length=1)
    listen: str = "127.0.0.1"
    port: int = Field(default=3978, ge=0, le=65_535)
    path: str = "/api/messages"
    openid_metadata_url: str = "https://login.botframework.com/v1/.well-known/openidconfiguration"
    issuer: str = "https://api.botframework.com"
    login_url: str = "https://login.microsoftonline.com"
    token_url: str | None = None
    token_scope: str = "https://api.botframework.com/.default"  # noqa: S105 (a scope name)
    service_url: str | None = None
    clock_skew: float = Field(default=300.0, ge=0, le=3600)
    keys_max_age: float = Field(default=86_400.0, gt=0)
    activity_wait: float = Field(default=10.0, ge=0, le=14)
    state_path: Path | None = None
    api_timeout: float = Field(default=30.0, gt=0)
    rate_limit_retries: int = Field(default=3, ge=0, le=100)
    max_retry_after: float = Field(default=60.0, ge=0)

    @field_validator("app_id", "tenant_id")
    @classmethod
    def _guid(cls, value: str | None) -> str | None:
        if value is not None and not _GUID.fullmatch(value):
            raise ValueError(
                f"{value!r} must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), as the "
                "Azure Bot resource shows it"
            )
        return value

    @field_validator("app_password")
    @classmethod
    def _password(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("app_password must not be empty")
        return value

    @field_validator("openid_metadata_url", "login_url", "token_url", "service_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _http_url("the URL", value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path {value!r} must start with '/'")
        return value

    @property
    def token_endpoint(self) -> str:
        """The client-credentials token endpoint (``token_url``, else the tenant's)."""
        if self.token_url is not None:
            return self.token_url
        tenant = self.tenant_id or "botframework.com"
        return f"{self.login_url.rstrip('/')}/{tenant}/oauth2/v2.0/token"
