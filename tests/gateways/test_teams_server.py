"""TeamsTestServer on its own, as a bot that is not ours would see it: the OpenID metadata and
keys verify its tokens with PyJWT, the token endpoint takes only the app's credentials, and
the Bot Connector only the tokens it issued."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest

from gateways.testing.teams import ISSUER, TeamsTestServer


@pytest.fixture
async def teams() -> AsyncIterator[TeamsTestServer]:
    async with TeamsTestServer.started() as server:
        yield server


async def test_its_tokens_verify_with_its_published_keys(teams: TeamsTestServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(teams.openid_metadata_url) as response:
            metadata = await response.json()
        async with session.get(metadata["jwks_uri"]) as response:
            keys = jwt.PyJWKSet.from_dict(await response.json())
    token = teams.keys.token()
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=teams.app_id, issuer=ISSUER)
    assert claims["serviceUrl"] == teams.service_url
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(teams.keys.forged_token(), key.key, algorithms=["RS256"], audience=teams.app_id)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(teams.keys.expired_token(), key.key, algorithms=["RS256"], audience=teams.app_id)


async def test_the_token_endpoint_and_the_connector_check_credentials(
    teams: TeamsTestServer,
) -> None:
    url = f"{teams.login_url}/botframework.com/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": teams.app_id,
        "scope": "https://api.botframework.com/.default",
    }
    post = f"{teams.service_url}v3/conversations/a%3A1/activities"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data={**form, "client_secret": "wrong"}) as response:
            assert response.status == 401
            assert (await response.json())["error"] == "invalid_client"
        async with session.post(url, data={**form, "client_secret": teams.app_password}) as got:
            answer = await got.json()
        assert answer["token_type"] == "Bearer"
        assert answer["expires_in"] == 3600
        headers = {"Authorization": "Bearer not-issued"}
        async with session.post(post, json={"type": "message"}, headers=headers) as response:
            assert response.status == 401
        headers = {"Authorization": f"Bearer {answer['access_token']}"}
        async with session.post(
            post, json={"type": "message", "text": "hi"}, headers=headers
        ) as response:
            assert response.status == 201
    (sent,) = teams.sent
    assert (sent.conversation_id, sent.text, sent.reply_to) == ("a:1", "hi", None)
    assert teams.token_requests[0] == form
