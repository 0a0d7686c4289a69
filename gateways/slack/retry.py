"""Web API retry handlers of the Slack gateway: slack_sdk's own, and a watch for refused tokens.

slack_sdk's ``AsyncWebClient`` asks each of its retry handlers (``retry_handlers=``, its
public extension point) whether to retry, after every response and every connection error.
``RefusedTokenWatch`` never retries: it reports a response refusing the token
(``TOKEN_REFUSALS``) and lets the call fail as it would have. It sees the calls slack_sdk's
Socket Mode client makes on its own: once the app-level token is revoked, the refusal comes
from the ``apps.connections.open`` of a reconnect, which that client only logs before it
tries again, forever; the gateway learns of it here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from gateways.slack.options import SlackRetry

__all__ = ["TOKEN_REFUSALS", "RefusedTokenWatch", "retry_handlers"]

#: Errors by which Slack refuses a token for good, documented for every Web API method
#: (https://docs.slack.dev/reference/methods/auth.test, "Errors"): the token is invalid
#: (``invalid_auth``), missing (``not_authed``), revoked (``token_revoked``), expired (a
#: rotating token the gateway does not refresh: ``token_expired``), or belongs to a deleted
#: user or workspace (``account_inactive``). Retrying can't help; ``ratelimited``,
#: ``internal_error``, ``fatal_error``, HTTP 5xx and network errors may pass and are retried.
TOKEN_REFUSALS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)


class RefusedTokenWatch(AsyncRetryHandler):
    """A retry handler that never retries, but reports a token Slack refused.

    Args:
        on_refused: Called with the Web API method (``"apps.connections.open"``) and Slack's
            error (``"token_revoked"``) of each response refusing the token; it must not
            raise. It never sees the token.
    """

    def __init__(self, on_refused: Callable[[str, str], None]) -> None:
        super().__init__(max_retry_count=0)
        self.on_refused = on_refused

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        """Report a refused token; always ``False`` (the other handlers decide on retries)."""
        body: Any = response.body if response is not None else None
        if isinstance(body, dict) and body.get("ok") is False:
            refusal = body.get("error")
            if refusal in TOKEN_REFUSALS:
                method = urlsplit(request.url).path.rsplit("/", 1)[-1]
                self.on_refused(method, str(refusal))
        return False


def retry_handlers(
    retry: SlackRetry, on_refused: Callable[[str, str], None]
) -> list[AsyncRetryHandler]:
    """The watch for refused tokens, then slack_sdk's own retry handlers with the configured
    counts (HTTP 429 after ``Retry-After``, connection errors, HTTP 500/503)."""
    handlers: list[AsyncRetryHandler] = [RefusedTokenWatch(on_refused)]
    if retry.rate_limited:
        handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=retry.rate_limited))
    if retry.connection_errors:
        handlers.append(AsyncConnectionErrorRetryHandler(max_retry_count=retry.connection_errors))
    if retry.server_errors:
        handlers.append(AsyncServerErrorRetryHandler(max_retry_count=retry.server_errors))
    return handlers
