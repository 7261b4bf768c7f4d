"""The authorization server mounted in the real application (``create_app``): tokens it issues open ``/fhir`` through
the resource server's bearer gate, and a revoked token stops working there at once."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.security.oauth_support import authorize_as, person, public_app, system_client, whole_platform


async def test_issued_tokens_open_fhir_and_revocation_closes_it(db_url: str, tmp_path: Path) -> None:
    async with whole_platform(db_url, tmp_path) as (fhir, server):
        base = server.base
        lab = await system_client(server, "lab-1", scopes="system/Patient.rs")
        await public_app(server)
        who = await person(server, "patient", "lea", patient_id="p-lea")
        async with httpx.AsyncClient() as http:
            metadata = (await http.get(f"{base}/.well-known/smart-configuration")).json()
            assert metadata["token_endpoint"] == f"{base}/oauth/token"

            data = {"grant_type": "client_credentials", **lab.auth_params(server.token_url)}
            system_token = (await http.post(server.token_url, data=data)).json()["access_token"]
            bearer = {"Authorization": f"Bearer {system_token}"}
            assert (await http.get(f"{fhir}/Patient/p-lea", headers=bearer)).status_code == 200
            assert (await http.get(f"{fhir}/Patient/p-lea")).status_code == 401
            revoke = {"token": system_token, **lab.auth_params(f"{base}/oauth/revoke")}
            assert (await http.post(f"{base}/oauth/revoke", data=revoke)).status_code == 200
            assert (await http.get(f"{fhir}/Patient/p-lea", headers=bearer)).status_code == 401

            body = await authorize_as(server, http, who)
            patient = {"Authorization": f"Bearer {body['access_token']}"}
            own = await http.get(f"{fhir}/Patient/p-lea", headers=patient)
            assert own.status_code == 200 and own.json()["id"] == "p-lea"
