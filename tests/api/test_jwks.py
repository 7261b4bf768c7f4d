"""GET /.well-known/jwks.json over the app: the published keys verify the server's tokens."""

from __future__ import annotations

import httpx
from joserfc import jws
from joserfc.jwk import KeySet

from esante.app import Platform
from esante.security.tokens import mint_for, principal


async def test_jwks_route_publishes_the_signing_keys(client: httpx.AsyncClient, platform: Platform) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "max-age" in response.headers["cache-control"]
    (jwk,) = response.json()["keys"]
    ring = platform.keyring
    assert jwk["kid"] == ring.signing_key().kid and jwk["alg"] == "ES256" and "d" not in jwk
    assert (platform.settings.var_dir / "keys" / f"{jwk['kid']}.pem").exists()

    # a verifier holding only the JWKS checks the server's token
    token = mint_for(platform.settings, ring, principal("patient:p1"))
    keys = KeySet.import_key_set(response.json())
    assert jws.deserialize_compact(token, keys, algorithms=["ES256"]).payload

    old = ring.signing_key().kid
    ring.rotate()
    kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert kids == {old, ring.signing_key().kid}


async def test_jwks_route_is_read_only(client: httpx.AsyncClient) -> None:
    assert (await client.post("/.well-known/jwks.json", content=b"{}")).status_code == 405
    assert (await client.get("/fhir/metadata")).status_code == 200
