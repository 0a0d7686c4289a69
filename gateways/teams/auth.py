"""Who may post activities to the bot: the Bot Connector's JWTs, checked with PyJWT.

Every request the Bot Connector sends to the messaging endpoint carries
``Authorization: Bearer <JWT>``; the bot accepts it only if, per "Authenticate requests from
the Bot Connector service to your bot"
(https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication#bot-to-connector):

1. the header is present with the ``Bearer`` scheme and the token is a JWT;
2. its ``iss`` is ``https://api.botframework.com`` (the ``issuer`` option);
3. its ``aud`` is the bot's Microsoft App ID (``app_id``);
4. it is within its validity period (``exp``, ``nbf``), with ``clock_skew`` (5 minutes);
5. its signature verifies with a key of the OpenID keys document (the ``jwks_uri`` of the
   OpenID metadata, ``openid_metadata_url``), by the key's ``kid``, with an algorithm the
   metadata lists (``id_token_signing_alg_values_supported``; RSA or EC only, never
   ``none`` nor a shared-secret one);
6. its ``serviceUrl`` claim is the activity's ``serviceUrl`` (checked by the gateway once
   the body is read: ``Verified.service_url``), and the key's ``endorsements``, where it has
   any, include the activity's ``channelId``.

The keys are fetched at start, kept for ``keys_max_age`` seconds (the document asks for a
refresh at least every day), and fetched again early when a token names a ``kid`` not
known, at most once a minute (so forged ``kid`` s cannot make the gateway hammer the
endpoint). PyJWT (with its ``cryptography`` backend) does the JWT work; nothing here is
home-made crypto.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from gateways.base import GatewayError

__all__ = [
    "KeysUnavailable",
    "OpenIdKeys",
    "SigningKey",
    "TokenRefused",
    "Verified",
    "verify_bearer",
]

logger = logging.getLogger("gateways.teams")

#: Algorithms accepted at all; the metadata narrows them (asymmetric only: no alg confusion).
_ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"})
#: Seconds between two early fetches of the keys for an unknown ``kid``.
_EARLY_REFETCH = 60.0


class TokenRefused(GatewayError):
    """An inbound request's token is refused; ``reason`` says why, never the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(GatewayError):
    """The OpenID metadata or keys cannot be fetched: nothing can be checked (a 503)."""


@dataclass(frozen=True, slots=True)
class Verified:
    """What a checked token vouches for.

    Attributes:
        claims: The token's claims (``iss``, ``aud``, ``exp``, ``serviceUrl``...).
        service_url: Its ``serviceUrl`` claim, ``None`` without one.
        endorsements: The signing key's ``endorsements`` (channel ids); empty when it has none.
    """

    claims: dict[str, Any]
    service_url: str | None
    endorsements: frozenset[str]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key of the OpenID keys document, with the channels it is endorsed for."""

    key: jwt.PyJWK
    endorsements: frozenset[str]


class OpenIdKeys:
    """The signing keys of the OpenID metadata at ``metadata_url``, cached (see the module).

    Args:
        metadata_url: The OpenID metadata document's URL.
        max_age: Seconds the keys are kept before they are fetched again.
        session: Gives the aiohttp session to fetch with (the gateway's).
        timeout: Seconds one fetch may take.
    """

    def __init__(
        self,
        metadata_url: str,
        max_age: float,
        session: Callable[[], aiohttp.ClientSession],
        timeout: float,
    ) -> None:
        self.metadata_url = metadata_url
        self.max_age = max_age
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._keys: dict[str, SigningKey] = {}
        self._algorithms: list[str] = ["RS256"]
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        #: How often the keys were fetched (for tests and the log).
        self.fetches = 0

    @property
    def algorithms(self) -> list[str]:
        """The algorithms a token may be signed with (the metadata's asymmetric ones)."""
        return list(self._algorithms)

    async def refresh(self) -> None:
        """Fetch the metadata, then its ``jwks_uri``; keys that PyJWT can't use are skipped.

        Raises:
            KeysUnavailable: Either document cannot be fetched or is not what it should be.
        """
        async with self._lock:
            await self._fetch()

    async def key(self, kid: str) -> SigningKey:
        """The key ``kid``, fetching the keys first when they are too old or ``kid`` is new.

        Raises:
            TokenRefused: No key has that ``kid``, even after fetching them again.
            KeysUnavailable: The keys cannot be fetched.
        """
        now = time.monotonic()
        async with self._lock:
            fetched = self._fetched_at
            stale = fetched is None or now - fetched >= self.max_age
            unknown = fetched is not None and kid not in self._keys
            if stale or (unknown and now - (fetched or 0.0) >= _EARLY_REFETCH):
                await self._fetch()
            found = self._keys.get(kid)
        if found is None:
            raise TokenRefused(f"signed with a key not in the OpenID keys (kid {kid[:40]!r})")
        return found

    async def _fetch(self) -> None:
        try:
            metadata = await self._json(self.metadata_url)
            jwks_uri = metadata["jwks_uri"]
            if not isinstance(jwks_uri, str):
                raise TypeError("jwks_uri is not a string")
            document = await self._json(jwks_uri)
            entries = document["keys"]
            if not isinstance(entries, list):
                raise TypeError("keys is not a list")
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            raise KeysUnavailable(
                f"cannot fetch the OpenID keys from {self.metadata_url!r}: {exc!r}"
            ) from exc
        keys: dict[str, SigningKey] = {}
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            try:
                parsed = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key type or algorithm PyJWT does not take
            endorsed = entry.get("endorsements")
            names = (
                frozenset(e for e in endorsed if isinstance(e, str)) if endorsed else frozenset()
            )
            keys[entry["kid"]] = SigningKey(parsed, names)
        listed = metadata.get("id_token_signing_alg_values_supported")
        algorithms = [a for a in listed if a in _ASYMMETRIC] if isinstance(listed, list) else []
        self._keys = keys
        self._algorithms = algorithms or ["RS256"]
        self._fetched_at = time.monotonic()
        self.fetches += 1
        logger.debug("OpenID keys fetched from %s: %d keys", self.metadata_url, len(keys))

    async def _json(self, url: str) -> dict[str, Any]:
        async with self._session().get(url, timeout=self._timeout) as response:
            response.raise_for_status()
            body = await response.json(content_type=None)
        if not isinstance(body, dict):
            raise TypeError(f"{url} did not answer a JSON object")
        return body


async def verify_bearer(
    header: str | None, keys: OpenIdKeys, *, audience: str, issuer: str, leeway: float
) -> Verified:
    """Check an ``Authorization`` header's JWT (rules 1 to 5 of the module).

    Args:
        header: The ``Authorization`` header's value, or ``None``.
        keys: The OpenID keys.
        audience: The ``aud`` required (the app id).
        issuer: The ``iss`` required.
        leeway: Seconds of clock skew allowed.

    Returns:
        What the token vouches for.

    Raises:
        TokenRefused: The header or its token is wrong; ``reason`` says how.
        KeysUnavailable: The keys cannot be fetched to check it.
    """
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRefused("no 'Authorization: Bearer' header")
    token = token.strip()
    try:
        head = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRefused("the bearer token is not a JWT") from None
    kid = head.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRefused("the token's header names no key (kid)")
    found = await keys.key(kid)
    try:
        claims = jwt.decode(
            token,
            found.key.key,
            algorithms=keys.algorithms,
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRefused("the token expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenRefused("the token is not valid yet (nbf)") from None
    except jwt.InvalidAudienceError:
        raise TokenRefused("the token is for another audience (not this app id)") from None
    except jwt.InvalidIssuerError:
        raise TokenRefused("the token has another issuer") from None
    except jwt.InvalidSignatureError:
        raise TokenRefused("the token's signature does not verify") from None
    except jwt.InvalidAlgorithmError:
        raise TokenRefused(f"the token's algorithm {head.get('alg')!r} is not allowed") from None
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"the token is invalid ({type(exc).__name__})") from None
    service_url = claims.get("serviceUrl")
    return Verified(
        claims=claims,
        service_url=service_url if isinstance(service_url, str) else None,
        endorsements=found.endorsements,
    )
