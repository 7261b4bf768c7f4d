"""The public directory search (``PractitionerRole/$hpd-directory``) over real HTTP, on SQLite and PostgreSQL:
open without a login, public elements only, only professionals a patient should be offered, bad inputs named,
a brake on anonymous callers, the policy seam and the audit trail on its path."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from esante.fhir.definitions import get_registry
from esante.fhir.errors import FhirError
from esante.hpd import public_directory
from esante.hpd.public_directory import PublicDirectoryRule, directory_action
from esante.hpd.public_query import parse_directory_query
from esante.hpd.public_view import PUBLIC_ELEMENTS, public_view
from esante.security.pdp.engine import PolicyDecisionPoint
from esante.security.pdp.rules import default_rules
from esante.security.policy import Action, Caller
from tests.auth import token
from tests.hpd.mcsd_support import DIRECTORY, Directory, directory_server

SEARCH = "PractitionerRole/$hpd-directory"
# what must never leave the directory: identifiers, the private phone and address, birth date, the right-to-practise
PRIVATE_VALUES = ("1000000017", "1000000025", "1974091186700", "691 000 111", "Mamer", "1970-01-01", "M-100000")
PRIVATE_KEYS = ("identifier", "birthDate", "gender", "extension", "qualification", "photo", "endpoint", "text")


def _open(d: Directory, query: str, **kwargs: Any) -> httpx.Response:
    """The search as a patient's browser sends it: no token."""
    return httpx.get(f"{d.base}/{SEARCH}?{query}", timeout=30, **kwargs)


def _matches(d: Directory, query: str) -> set[str]:
    response = _open(d, query)
    assert response.status_code == 200, f"{query}: {response.text}"
    return {e["resource"]["id"] for e in response.json()["entry"] if e["search"]["mode"] == "match"}


def _problem(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    text = " ".join(f"{i.get('diagnostics', '')} {' '.join(i.get('expression', []))}" for i in body["issue"])
    for word in words:
        assert word in text, (word, text)


def _keys(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(key)
            _keys(item, found)
    elif isinstance(value, list):
        for item in value:
            _keys(item, found)
    return found


EXTRA_ROLES = [
    {  # the pharmacist also practises in Esch: offered
        "resourceType": "PractitionerRole",
        "id": "r-dasilva-esch",
        "active": True,
        "practitioner": {"reference": "Practitioner/dasilva"},
        "organization": {"reference": "Organization/cabinet-esch"},
        "location": [{"reference": "Location/loc-esch"}],
        "code": [{"coding": [{"system": "urn:esante:hpd:profession", "code": "pharmacien"}]}],
    },
    {  # ... and used to practise at CHL: a role whose period has ended is not offered
        "resourceType": "PractitionerRole",
        "id": "r-dasilva-old",
        "active": True,
        "period": {"start": "2010-01-01", "end": "2019-12-31"},
        "practitioner": {"reference": "Practitioner/dasilva"},
        "location": [{"reference": "Location/loc-chl"}],
        "code": [{"coding": [{"system": "urn:esante:hpd:profession", "code": "pharmacien"}]}],
    },
    {  # a role known by its organisation only (no location): the organisation's address gives its locality
        "resourceType": "PractitionerRole",
        "id": "r-muller-org",
        "active": True,
        "practitioner": {"reference": "Practitioner/muller"},
        "organization": {"reference": "Organization/chl"},
        "code": [{"coding": [{"system": "http://snomed.info/sct", "code": "309343006", "display": "Physician"}]}],
    },
]


def test_public_search_over_http(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with directory_server(db_url, tmp_path) as d:
        for role in EXTRA_ROLES:
            assert d.http.put(f"{d.base}/PractitionerRole/{role['id']}", json=role).status_code == 201
        response = _open(d, "name=muller&specialty=med-cardiologie")
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert bundle["type"] == "searchset" and bundle["total"] == 2
        entries = {(e["resource"]["resourceType"], e["resource"]["id"]): e for e in bundle["entry"]}
        assert {k for k, e in entries.items() if e["search"]["mode"] == "match"} == {
            ("PractitionerRole", "r-muller-chl"),
            ("PractitionerRole", "r-muller-esch"),
        }
        assert {k for k, e in entries.items() if e["search"]["mode"] == "include"} == {
            ("Practitioner", "muller"),
            ("Location", "loc-chl-cardio"),
            ("Location", "loc-esch"),
            ("Organization", "chl-cardio"),
            ("Organization", "cabinet-esch"),
        }
        # only public elements, marked as a subset
        text = response.text
        assert not [v for v in PRIVATE_VALUES if v in text], text
        keys = _keys(bundle["entry"], set())
        assert not keys & set(PRIVATE_KEYS), keys & set(PRIVATE_KEYS)
        for entry in bundle["entry"]:
            resource = entry["resource"]
            allowed = set(PUBLIC_ELEMENTS[resource["resourceType"]]) | {"resourceType", "id", "meta"}
            assert set(resource) <= allowed, set(resource) - allowed
            assert resource["meta"]["tag"][0]["code"] == "SUBSETTED"
        muller = entries[("Practitioner", "muller")]["resource"]
        assert muller["name"] == [{"use": "official", "family": "Müller", "given": ["Jean", "Paul"], "prefix": ["Dr"]}]
        esch = entries[("Location", "loc-esch")]["resource"]
        assert esch["address"]["city"] == "Esch-sur-Alzette" and esch["telecom"][0]["value"] == "+352 54 00 00"
        role = entries[("PractitionerRole", "r-muller-chl")]["resource"]
        assert role["practitioner"] == {"reference": "Practitioner/muller"}  # the reference's identifier is gone
        assert role["telecom"] == [{"system": "phone", "value": "+352 4411 1", "use": "work"}]

        cases = {
            "name=jean%20müller": {"r-muller-chl", "r-muller-esch", "r-muller-org"},
            "name=MULLER%20paul": {"r-muller-chl", "r-muller-esch", "r-muller-org"},
            "name=silva": {"r-dasilva-esch"},  # the Ettelbruck location is closed, the CHL role has ended
            "name=wagner": set(),  # right to practise withdrawn: neither the role nor the professional is offered
            "name=marie": {"r-schmit"},  # not the role at the CGDIS, an inactive organisation
            "profession=infirmier": {"r-schmit"},
            "profession=urn:esante:hpd:profession|pharmacien": {"r-dasilva-esch"},
            "profession=medecin,infirmier&locality=esch": {"r-muller-esch", "r-schmit"},
            "profession=http://snomed.info/sct|309343006": {"r-muller-org"},
            "specialty=med-cardiologie&locality=Esch-sur-Alzette": {"r-muller-esch"},
            "locality=1210": {"r-muller-chl", "r-muller-org"},  # L-1210, by location or by organisation
            "locality=luxembourg": {"r-muller-chl", "r-muller-org"},
            "locality=L-4011&name=da": {"r-dasilva-esch"},
            "locality=ettelbruck": set(),
        }
        failures = {q: found for q, want in cases.items() if (found := _matches(d, q)) != want}
        assert not failures, failures
        # a name matching more practitioners than the look-up lists is searched as a chain: same answers
        monkeypatch.setattr(public_directory, "NAME_LOOKUP_LIMIT", 0)
        chained = {q: found for q, want in cases.items() if "name=" in q and (found := _matches(d, q)) != want}
        assert not chained, chained
        monkeypatch.undo()

        # paging: links that keep the criteria, a total that counts every page
        first = _open(d, "locality=esch&_count=2").json()
        assert first["total"] == 3 and len([e for e in first["entry"] if e["search"]["mode"] == "match"]) == 2
        following = next(link["url"] for link in first["link"] if link["relation"] == "next")
        assert following.startswith(f"{d.base}/{SEARCH}?") and "locality=esch" in following
        second = httpx.get(following, timeout=30).json()
        assert {link["relation"] for link in second["link"]} == {"self", "previous"}
        seen = [e["resource"]["id"] for b in (first, second) for e in b["entry"] if e["search"]["mode"] == "match"]
        assert sorted(seen) == ["r-dasilva-esch", "r-muller-esch", "r-schmit"]

        # a withdrawal shows at once
        muller = next(r for r in DIRECTORY if r["id"] == "muller")
        assert d.http.put(f"{d.base}/Practitioner/muller", json={**muller, "active": False}).status_code == 200
        assert _matches(d, "name=muller") == set()

        # POST with a Parameters resource
        posted = httpx.post(
            f"{d.base}/{SEARCH}",
            json={
                "resourceType": "Parameters",
                "parameter": [{"name": "profession", "valueCode": "infirmier"}, {"name": "_count", "valueInteger": 5}],
            },
            headers={"Content-Type": "application/fhir+json"},
            timeout=30,
        )
        assert posted.status_code == 200, posted.text
        assert {e["resource"]["id"] for e in posted.json()["entry"] if e["search"]["mode"] == "match"} == {"r-schmit"}

        # declared in the CapabilityStatement, on PractitionerRole
        statement = httpx.get(f"{d.base}/metadata", timeout=30).json()
        roles = next(r for r in statement["rest"][0]["resource"] if r["type"] == "PractitionerRole")
        assert "hpd-directory" in {op["name"] for op in roles["operation"]}


def test_public_search_bad_inputs(db_url: str, tmp_path: Path) -> None:
    with directory_server(db_url, tmp_path) as d:
        _problem(_open(d, ""), 400, "at least one of")
        _problem(_open(d, "name=%20%20"), 400, "at least one of")
        _problem(_open(d, "specialite=cardiologie"), 400, "specialite", "unknown parameter")
        _problem(_open(d, "family=muller"), 400, "family")
        _problem(_open(d, "profession=cardiologue"), 400, "profession", "unknown profession code 'cardiologue'")
        _problem(_open(d, "specialty=medecin"), 400, "specialty", "unknown specialty code 'medecin'")
        _problem(_open(d, "profession=medecin,"), 400, "profession", "empty code")
        _problem(_open(d, "name=muller&name=jean"), 400, "name", "more than once")
        _problem(_open(d, "name=muller&_count=ten"), 400, "_count")
        _problem(_open(d, "name=muller&_count=0"), 400, "_count")
        _problem(_open(d, "name=muller&_offset=10020"), 400, "_offset", "narrow the search")
        _problem(_open(d, "name=" + "x" * 101), 400, "name", "longer than 100")
        _problem(_open(d, "name=a%20b%20c%20d%20e%20f%20g"), 400, "name", "words")
        _problem(_open(d, "locality=esch%01"), 400, "locality", "control characters")
        posted = httpx.post(
            f"{d.base}/{SEARCH}",
            json={"resourceType": "Parameters", "parameter": [{"name": "name"}]},
            headers={"Content-Type": "application/fhir+json"},
            timeout=30,
        )
        _problem(posted, 400, "Parameters.parameter[0]")
        _problem(
            httpx.post(
                f"{d.base}/{SEARCH}",
                json={"resourceType": "Patient"},
                headers={"Content-Type": "application/fhir+json"},
                timeout=30,
            ),
            400,
            "Parameters",
        )
        # the openness is this operation's only: plain searches and other operations still need a token
        refused = httpx.get(f"{d.base}/PractitionerRole?specialty=med-cardiologie", timeout=30)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="esante"'
        assert httpx.get(f"{d.base}/Practitioner/muller", timeout=30).status_code == 401
        assert httpx.get(f"{d.base}/Practitioner/muller/$validate", timeout=30).status_code == 401
        assert httpx.get(f"{d.base}/Practitioner/$hpd-directory?name=x", timeout=30).status_code == 401
        # a token, when sent, is checked: a bad one is a 401, not an anonymous search
        bad = _open(d, "name=muller", headers={"Authorization": "Bearer not-a-token"})
        assert bad.status_code == 401 and "invalid_token" in bad.headers["www-authenticate"]


def test_public_search_brake_policy_and_audit(db_url: str, tmp_path: Path) -> None:
    with directory_server(db_url, tmp_path, rate_limit_directory=3) as d:
        for _ in range(3):
            assert _open(d, "name=schmit").status_code == 200
        braked = _open(d, "name=schmit")
        _problem(braked, 429, "too many directory searches")
        assert int(braked.headers["retry-after"]) >= 1
        # callers with a token are accountable: not braked; their scopes apply
        patient = {"Authorization": f"Bearer {token(d.settings, 'patient:p1')}"}
        for _ in range(4):
            assert _open(d, "name=schmit", headers=patient).status_code == 200
        narrow = {"Authorization": f"Bearer {token(d.settings, 'patient:p1', 'patient/Observation.rs')}"}
        _problem(_open(d, "name=schmit", headers=narrow), 403, "scopes")
        only_roles = {"Authorization": f"Bearer {token(d.settings, 'patient:p1', 'patient/PractitionerRole.rs')}"}
        roles_only = _open(d, "name=schmit", headers=only_roles)
        assert roles_only.status_code == 200, roles_only.text
        found = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in roles_only.json()["entry"]}
        # the name chain needs Practitioner, which this token may not search: no match rather than a leak
        assert found == set()
        # every search is audited, the anonymous ones with an anonymous requestor and the query
        events = d.bundle("AuditEvent?_count=200")["entry"]
        directory_events = []
        for entry in events:
            event = entry["resource"]
            queries = [
                base64.b64decode(e["query"]).decode()
                for e in event.get("entity", [])
                if isinstance(e.get("query"), str)
            ]
            if any("hpd-directory" in q or "name=schmit" in q for q in queries):
                directory_events.append(event)
        anonymous = [
            e
            for e in directory_events
            if any(a.get("requestor") and a.get("who", {}).get("display") == "anonymous" for a in e["agent"])
        ]
        assert len(anonymous) >= 4, json.dumps(directory_events[:1])
        assert {e["outcome"] for e in anonymous} == {"0", "4"}  # three answered, one braked


def test_public_rule_opens_the_operation_only() -> None:
    registry = get_registry()
    pdp = PolicyDecisionPoint(registry, [*default_rules(registry), PublicDirectoryRule()])
    anonymous = Caller()
    assert pdp.decide(anonymous, directory_action("Practitioner"), "Practitioner", "s").allowed
    assert pdp.decide(anonymous, directory_action("Location"), "Location", "s").allowed
    for resource_type in ("Patient", "Endpoint", "HealthcareService", "AuditEvent"):
        assert not pdp.decide(anonymous, directory_action(resource_type), resource_type, "s").allowed
    assert not pdp.decide(anonymous, directory_action("Practitioner"), "Practitioner", "c").allowed
    assert not pdp.decide(anonymous, Action("search-type", "Practitioner")).allowed
    assert not pdp.decide(anonymous, Action("read", "Practitioner", "x")).allowed
    other = Action("operation", "Practitioner", None, "validate")
    assert not pdp.decide(anonymous, other, "Practitioner", "s").allowed
    without = PolicyDecisionPoint(registry, default_rules(registry))
    assert not without.decide(anonymous, directory_action("Practitioner"), "Practitioner", "s").allowed


def test_public_view_is_an_allow_list() -> None:
    practitioner = next(r for r in DIRECTORY if r["id"] == "muller")
    view = public_view({**practitioner, "meta": {"lastUpdated": "2026-01-01T00:00:00Z", "versionId": "3"}})
    assert set(view) == {"resourceType", "id", "meta", "active", "name", "communication"}
    assert view["meta"]["lastUpdated"] == "2026-01-01T00:00:00Z" and "versionId" not in view["meta"]
    location = {
        "resourceType": "Location",
        "id": "l",
        "name": "Cabinet",
        "telecom": [{"system": "phone", "value": "1", "use": "mobile"}, {"system": "phone", "value": "2"}],
        "address": {"use": "home", "city": "Mamer"},
        "contained": [{"resourceType": "Patient"}],
        "managingOrganization": {"reference": "Organization/o", "identifier": {"value": "x"}, "display": "O"},
    }
    assert public_view(location) == {
        "resourceType": "Location",
        "id": "l",
        "meta": {"tag": [public_view(location)["meta"]["tag"][0]]},
        "name": "Cabinet",
        "telecom": [{"system": "phone", "value": "2"}],
        "managingOrganization": {"reference": "Organization/o", "display": "O"},
    }
    with pytest.raises(ValueError):
        public_view({"resourceType": "Patient", "id": "p"})


def test_directory_query_parsing() -> None:
    query = parse_directory_query([("name", "  Jean   MÜLLER jean "), ("locality", "1210"), ("_format", "json")])
    assert query.name == ("jean", "müller")
    assert [q[0][1] for q in query.locality_alternatives()] == ["1210,L-1210"] * 4
    assert ("practitioner.name:contains", "jean") in query.search()
    escaped = parse_directory_query([("locality", "a,b|c")])
    assert escaped.locality_alternatives()[0][0][1] == "a\\,b\\|c"
    coded = parse_directory_query([("profession", "medecin, http://snomed.info/sct|309343006")])
    assert coded.profession == ("urn:esante:hpd:profession|medecin", "http://snomed.info/sct|309343006")
    assert parse_directory_query([("name", "x"), ("_count", "500")]).count == 50
    with pytest.raises(FhirError) as bad:
        parse_directory_query([("profession", "x")], check_profession=lambda code: f"unknown profession {code!r}")
    assert bad.value.status == 400 and "unknown profession 'x'" in str(bad.value)
