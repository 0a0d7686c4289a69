"""The keys and tokens of ``TeamsTestServer``: an RSA key of its own that signs the Bot
Connector's tokens to the bot, published as the OpenID keys document, and the bad tokens a
test sends (forged, expired, for another audience, of another issuer).

Tokens are those of "Authenticate requests from the Bot Connector service to your bot"
(https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication#connector-to-bot):
RS256, ``kid`` in the header, claims ``iss`` ``https://api.botframework.com``, ``aud`` the
app id, ``exp``, ``nbf`` and ``serviceUrl``; the key in the document has ``endorsements``
(the channel ids it signs for, ``msteams``). Made with PyJWT and ``cryptography``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["ISSUER", "SigningKeys"]

#: The issuer of the Bot Connector's tokens.
ISSUER = "https://api.botframework.com"


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class SigningKeys:
    """The server's signing key (``kid``) and the tokens it makes.

    Attributes:
        app_id: The audience of good tokens.
        service_url: The ``serviceUrl`` claim of good tokens.
        endorsements: The key's ``endorsements`` in the keys document.
    """

    app_id: str
    service_url: str
    endorsements: tuple[str, ...] = ("msteams",)
    kid: str = field(default_factory=lambda: f"test-{secrets.token_hex(4)}")
    _key: rsa.RSAPrivateKey = field(default_factory=_new_key, repr=False)

    def rotate(self) -> None:
        """A new key with a new ``kid`` replaces the old one (tokens it signed go bad)."""
        self._key = _new_key()
        self.kid = f"test-{secrets.token_hex(4)}"

    def jwks(self) -> dict[str, Any]:
        """The OpenID keys document: ``{"keys": [<JWK of the public key>]}``."""
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update(
            {"kid": self.kid, "use": "sig", "alg": "RS256", "endorsements": list(self.endorsements)}
        )
        return {"keys": [jwk]}

    def token(self, *, lifetime: float = 3600.0, **claims: Any) -> str:
        """A good token, or one with ``claims`` changed (``aud=...``, ``iss=...``,
        ``serviceUrl=...``; a claim given as ``None`` is left out)."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": ISSUER,
            "aud": self.app_id,
            "nbf": now - 5,
            "exp": now + int(lifetime),
            "serviceUrl": self.service_url,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self._key, algorithm="RS256", headers={"kid": self.kid})

    def expired_token(self) -> str:
        """A token that expired an hour ago (beyond any clock skew)."""
        return self.token(exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200)

    def forged_token(self) -> str:
        """A token with the right ``kid`` and claims, signed by another key."""
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": self.app_id,
            "nbf": now - 5,
            "exp": now + 3600,
            "serviceUrl": self.service_url,
        }
        return jwt.encode(body, _new_key(), algorithm="RS256", headers={"kid": self.kid})

    def unsigned_token(self) -> str:
        """A token with ``alg`` ``none`` (no signature at all)."""
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": self.app_id,
            "exp": now + 3600,
            "serviceUrl": self.service_url,
        }
        return jwt.encode(body, "", algorithm="none", headers={"kid": self.kid})
