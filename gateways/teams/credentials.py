"""The bot's own token for the Bot Connector: OAuth 2.0 client credentials, cached.

Per "Authenticate requests from your bot to the Bot Connector service"
(https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication#bot-to-connector),
the bot POSTs ``grant_type=client_credentials``, ``client_id`` (the app id),
``client_secret`` (the app password) and ``scope`` (``https://api.botframework.com/.default``)
as a form to the token endpoint, and gets ``{"token_type": "Bearer", "expires_in": <seconds>,
"access_token": "..."}``, to send as ``Authorization: Bearer`` to the Bot Connector. The
token is cached until shortly before it expires (the document: "cache the token until it
expires"); one request at a time fetches it, however many sends wait for it. A token the Bot
Connector refuses (401) is dropped and a new one fetched once (``invalidate``).
Neither the secret nor a token is ever logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp
from pydantic import SecretStr

from gateways.base import GatewayError

__all__ = ["ClientCredentials", "CredentialsRefused"]

logger = logging.getLogger("gateways.teams")

#: Seconds before its expiry that a cached token is replaced (most of a short one's life).
_MARGIN = 300.0


class CredentialsRefused(GatewayError):
    """The token endpoint refused the app's credentials (400/401): not worth retrying."""


class ClientCredentials:
    """Tokens of the client-credentials flow, cached until shortly before they expire.

    Args:
        token_url: The token endpoint.
        client_id: The app id.
        client_secret: The app password.
        scope: The scope asked for.
        session: Gives the aiohttp session to post with.
        timeout: Seconds one request may take.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        scope: str,
        session: Callable[[], aiohttp.ClientSession],
        timeout: float,
    ) -> None:
        self.token_url = token_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "scope": scope,
        }
        self._secret = client_secret
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        #: How many tokens were fetched (for tests).
        self.fetches = 0

    async def token(self) -> str:
        """A valid access token, the cached one while it is fresh.

        Raises:
            CredentialsRefused: The endpoint refused the credentials.
            GatewayError: The endpoint cannot be reached or answered something else.
        """
        async with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._token, lifetime = await self._fetch()
                margin = min(_MARGIN, lifetime / 2)
                self._renew_at = time.monotonic() + lifetime - margin
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the Bot Connector refused it): the next ``token()`` fetches anew."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        form = {**self._form, "client_secret": self._secret.get_secret_value()}
        where = f"the token endpoint {self.token_url!r}"
        try:
            async with self._session().post(
                self.token_url, data=form, timeout=self._timeout
            ) as response:
                status = response.status
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayError(f"cannot reach {where}: {type(exc).__name__} {exc}") from exc
        error = body.get("error") if isinstance(body, dict) else None
        if status in (400, 401):
            raise CredentialsRefused(
                f"{where} refused the app's credentials: {status} {error!r} (check app_id, "
                "app_password and tenant_id)"
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        lifetime = body.get("expires_in") if isinstance(body, dict) else None
        if status != 200 or not isinstance(token, str) or not token:
            raise GatewayError(f"{where} answered {status} {error!r}, no access token")
        try:
            seconds = float(lifetime) if lifetime is not None else 3600.0
        except (TypeError, ValueError):
            seconds = 3600.0
        self.fetches += 1
        logger.debug("Bot Connector token fetched from %s, for %.0f s", self.token_url, seconds)
        return token, max(seconds, 1.0)
