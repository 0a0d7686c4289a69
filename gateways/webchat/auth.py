"""Tokens a host site issues to name a web chat session's user: JWTs signed with HS256
(RFC 7519, RFC 7518 section 3.2), checked with PyJWT.

A token must carry ``sub`` (the user id, the session's identity ``webchat:<sub>``) and
``exp``; it may carry ``name`` (shown to the bot as ``user["name"]``), ``iss`` and ``aud``
(checked when the options name them), ``nbf`` and ``iat``. Nothing of a token is logged:
refusals give the reason only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jwt
from pydantic import SecretStr

__all__ = ["TokenRefused", "TokenUser", "verify_token"]

#: A user id a token may give: printable, no spaces, so that ``webchat:<sub>`` is an identity
#: that access rules can name (``config.access``).
_SUB = re.compile(r"[^\s\x00-\x1f]{1,200}")


class TokenRefused(Exception):
    """A token that does not name a user; ``reason`` says why, without the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenUser:
    """Who a valid token names: ``id`` (its ``sub``), ``name`` (its ``name`` claim or
    ``None``) and ``expires`` (its ``exp``, seconds since the epoch)."""

    id: str
    name: str | None
    expires: float


def verify_token(
    token: object,
    secret: SecretStr,
    *,
    issuer: str | None,
    audience: str | None,
    leeway: float,
) -> TokenUser:
    """Check a token's signature (HS256 only), ``exp`` (required), ``nbf``, ``iat``, ``iss``
    and ``aud``, and read its user.

    Args:
        token: What the page sent as ``token``.
        secret: The HMAC key.
        issuer: The required ``iss``, or ``None``.
        audience: The required ``aud``, or ``None`` (a token with ``aud`` is then refused).
        leeway: Seconds of clock skew allowed.

    Returns:
        The user.

    Raises:
        TokenRefused: Not a str, not a JWT, another algorithm, a bad signature, expired, not
            yet valid, a wrong issuer or audience, or no usable ``sub``.
    """
    if not isinstance(token, str) or not token:
        raise TokenRefused("the token is not a non-empty string")
    try:
        claims = jwt.decode(
            token,
            secret.get_secret_value(),
            algorithms=["HS256"],
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRefused("the token has expired") from None
    except jwt.InvalidSignatureError:
        raise TokenRefused("the token's signature is wrong") from None
    except jwt.InvalidTokenError as exc:
        raise TokenRefused(f"the token is invalid ({type(exc).__name__}: {exc})") from None
    sub, name = claims.get("sub"), claims.get("name")
    if not isinstance(sub, str) or not _SUB.fullmatch(sub):
        raise TokenRefused("the token's sub is not a user id (1-200 characters, no spaces)")
    if name is not None and not isinstance(name, str):
        raise TokenRefused("the token's name is not a string")
    return TokenUser(sub, name[:100] if name else None, float(claims["exp"]))
