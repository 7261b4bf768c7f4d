"""Full flows with real clients against the whole application on loopback (both databases):

- a laboratory's software obtains a token with client_credentials and a private_key_jwt assertion signed by the
  test, then works through fhirpy (create, search) within its registered scopes;
- a patient authorizes the patient portal (authorization code + PKCE: login page with password and TOTP, consent
  page, redirect, code exchange), then reads their record through fhirclient: their own data only.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fhirclient import client as smart_client
from fhirclient.models import observation as fobservation
from fhirclient.models import patient as fpatient
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError

from tests.security.oauth_support import authorize_as, person, public_app, system_client, whole_platform


async def test_fhirpy_and_fhirclient_with_tokens_from_both_flows(db_url: str, tmp_path: Path) -> None:
    async with whole_platform(db_url, tmp_path) as (fhir, server):
        lab = await system_client(server, "lab-1", scopes="system/Patient.cruds system/Observation.cruds")
        await public_app(server)
        lea = await person(server, "patient", "lea", patient_id="p-lea")

        # --- the laboratory: client_credentials + private_key_jwt, then fhirpy
        async with httpx.AsyncClient() as http:
            data = {"grant_type": "client_credentials", "scope": "system/Observation.cruds system/Patient.rs"}
            granted = (await http.post(server.token_url, data={**data, **lab.auth_params(server.token_url)})).json()
        assert granted["token_type"] == "Bearer" and granted["scope"] == data["scope"]
        lab_fhir = AsyncFHIRClient(
            fhir,
            authorization=f"Bearer {granted['access_token']}",
            extra_headers={"Content-Type": "application/fhir+json"},
        )
        for subject, value in (("p-lea", 61), ("p-lea", 62)):
            observation = lab_fhir.resource(
                "Observation",
                status="final",
                code={"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                subject={"reference": f"Patient/{subject}"},
                valueQuantity={"value": value, "unit": "kg"},
            )
            await observation.save()
        other = lab_fhir.resource("Observation", status="final", code={"text": "other patient"})
        other["subject"] = {"reference": "Patient/p-other"}
        await other.save()
        found = await lab_fhir.resources("Observation").search(subject="Patient/p-lea").fetch_all()
        assert len(found) == 2
        with pytest.raises(ForbiddenError):  # the token holds system/Patient.rs: no Patient writes
            await lab_fhir.resource("Patient", name=[{"family": "Nope"}]).save()

        # --- the patient: authorization code + PKCE through the login and consent pages, then fhirclient
        async with httpx.AsyncClient() as http:
            tokens = await authorize_as(server, http, lea)
        assert tokens["patient"] == "p-lea"
        smart = smart_client.FHIRClient(settings={"app_id": "portal", "api_base": fhir})
        smart.server.session.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        me = fpatient.Patient.read("p-lea", smart.server)
        assert me.id == "p-lea"
        mine = list(fobservation.Observation.where({"code": "29463-7"}).perform_resources_iter(smart.server))
        assert sorted(o.valueQuantity.value for o in mine) == [61, 62]
        everything = next(fobservation.Observation.where({}).perform_iter(smart.server))
        assert everything.total == 2, "the other patient's Observation is neither listed nor counted"
        with pytest.raises(Exception) as refused:
            fobservation.Observation.read(other.id, smart.server)
        assert "404" in str(refused.value)
