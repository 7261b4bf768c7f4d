"""IHE mCSD ITI-90 Find Matching Care Services over real HTTP, on SQLite and PostgreSQL.

``REQUIRED`` is the list of search parameters ITI-90 (mCSD 4.0, §2:3.90.4.1.2) makes a Care Services Selective
Supplier support, per resource type; ``QUERIES`` has at least one case for each of them and, for every string
parameter (chained ones included), for its ``:contains`` and ``:exact`` modifiers, which ITI-90 requires on all of
them. The cases run against :data:`tests.hpd.mcsd_support.DIRECTORY`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx

from esante.fhir.definitions import get_registry
from tests.hpd.mcsd_support import Directory, directory_server

REQUIRED: dict[str, list[str]] = {
    "Organization": [
        "active", "identifier", "name", "partof", "partof:above", "partof:below", "type", "partof.identifier",
        "partof.name", "endpoint.connection-type", "endpoint.payload-type", "ihe-mcsd-hierarchy-type",
        "ihe-mcsd-hierarchy-partof", "ihe-mcsd-hierarchy-partof:above", "ihe-mcsd-hierarchy-partof:below",
    ],
    "Location": [
        "identifier", "name", "organization", "partof", "partof:above", "partof:below", "status", "type",
        "partof.identifier", "partof.name", "organization.active", "organization.identifier", "organization.name",
    ],
    "Practitioner": ["active", "identifier", "name", "given", "family"],
    "PractitionerRole": [
        "active", "location", "organization", "practitioner", "role", "service", "specialty",
        "practitioner.identifier", "practitioner.name", "practitioner.given", "practitioner.family",
        "organization.active", "organization.identifier", "organization.name", "location.status",
        "location.identifier", "location.name", "service.active", "service.identifier", "service.location",
        "service.name", "service.organization",
    ],
    "HealthcareService": [
        "active", "identifier", "location", "name", "organization", "service-type", "organization.active",
        "organization.identifier", "organization.name", "location.status", "location.identifier", "location.name",
    ],
    "Endpoint": ["connection-type", "identifier", "organization", "payload-type", "status"],
    "OrganizationAffiliation": [
        "active", "date", "endpoint", "identifier", "participating-organization", "primary-organization", "role",
    ],
}  # fmt: skip

ESCH = {"r-muller-esch", "r-schmit", "r-wagner"}
SCHMIT = {"r-schmit", "r-schmit-cgdis"}
MULLER = {"r-muller-chl", "r-muller-esch"}
HOSPITAL_ROOMS = {"loc-chl-cardio", "loc-chl-room"}

# type → parameter (as in REQUIRED, plus :contains / :exact variants) → [(query, expected ids)]
QUERIES: dict[str, dict[str, list[tuple[str, set[str]]]]] = {
    "Organization": {
        "active": [("active=false", {"cgdis"})],
        "identifier": [("identifier=urn:esante:hpd:organization|CHL", {"chl"}), ("identifier=LABO", {"labo"})],
        "name": [("name=centre", {"chl"}), ("name=unite", {"chl-rythmo"}), ("name=pharm", {"pharmacie"})],
        "name:contains": [("name:contains=hopitaux", {"fhl"}), ("name:contains=cardio", {"chl-cardio"})],
        "name:exact": [("name:exact=Pharmacie du Globe", {"pharmacie"}), ("name:exact=pharmacie du globe", set())],
        "partof": [("partof=Organization/chl", {"chl-cardio"}), ("partof=chl-cardio", {"chl-rythmo"})],
        "partof:below": [("partof:below=chl", {"chl-cardio", "chl-rythmo"}), ("partof:below=chl-rythmo", set())],
        "partof:above": [
            ("partof:above=chl", {"chl-cardio"}),
            ("partof:above=chl-cardio", {"chl-cardio", "chl-rythmo"}),
        ],
        "type": [("type=http://terminology.hl7.org/CodeSystem/organization-type|dept", {"chl-cardio", "chl-rythmo"})],
        "partof.identifier": [("partof.identifier=urn:esante:hpd:organization|CHL", {"chl-cardio"})],
        "partof.name": [("partof.name=service", {"chl-rythmo"}), ("partof.name=centre", {"chl-cardio"})],
        "partof.name:contains": [("partof.name:contains=cardio", {"chl-rythmo"})],
        "partof.name:exact": [("partof.name:exact=Centre Hospitalier de Luxembourg", {"chl-cardio"})],
        "endpoint.connection-type": [("endpoint.connection-type=hl7-fhir-rest", {"chl"})],
        "endpoint.payload-type": [("endpoint.payload-type=urn:esante:hpd:payload-type|mhd", {"chl"})],
        "ihe-mcsd-hierarchy-type": [
            ("ihe-mcsd-hierarchy-type=federation", {"chl"}),
            ("ihe-mcsd-hierarchy-type=urn:esante:hpd:hierarchy-type|network", {"labo"}),
        ],
        "ihe-mcsd-hierarchy-partof": [("ihe-mcsd-hierarchy-partof=Organization/fhl", {"chl"})],
        "ihe-mcsd-hierarchy-partof:below": [("ihe-mcsd-hierarchy-partof:below=fhl", {"chl", "labo"})],
        "ihe-mcsd-hierarchy-partof:above": [
            ("ihe-mcsd-hierarchy-partof:above=fhl", {"chl"}),
            ("ihe-mcsd-hierarchy-partof:above=Organization/chl", {"chl", "labo"}),
        ],
    },
    "Location": {
        "identifier": [("identifier=urn:esante:hpd:location|LOC-ESCH", {"loc-esch"})],
        "name": [("name=chl", {"loc-chl", "loc-chl-cardio"})],
        "name:contains": [("name:contains=cardiologie", {"loc-chl-cardio"})],
        "name:exact": [("name:exact=CHL Centre", {"loc-chl"}), ("name:exact=CHL", set())],
        "organization": [("organization=Organization/chl", {"loc-chl"})],
        "partof": [("partof=loc-chl", {"loc-chl-cardio"})],
        "partof:below": [("partof:below=Location/loc-chl", HOSPITAL_ROOMS), ("partof:below=loc-esch", set())],
        "partof:above": [("partof:above=loc-chl", {"loc-chl-cardio"}), ("partof:above=loc-chl-cardio", HOSPITAL_ROOMS)],
        "status": [
            ("status=suspended", {"loc-chl-room"}),
            ("status=inactive,suspended", {"loc-chl-room", "loc-ettelbruck"}),
        ],
        "type": [
            (
                "type=http://terminology.hl7.org/CodeSystem/v3-RoleCode|HOSP&status=active",
                {"loc-chl", "loc-chl-cardio", "loc-esch", "loc-cgdis"},
            )
        ],
        "partof.identifier": [("partof.identifier=LOC-CHL", {"loc-chl-cardio"})],
        "partof.name": [("partof.name=chl", HOSPITAL_ROOMS)],
        "partof.name:contains": [("partof.name:contains=aile", {"loc-chl-room"})],
        "partof.name:exact": [("partof.name:exact=CHL Centre", {"loc-chl-cardio"})],
        "organization.active": [("organization.active=false", {"loc-cgdis"})],
        "organization.identifier": [("organization.identifier=urn:esante:hpd:organization|CABINET-ESCH", {"loc-esch"})],
        "organization.name": [("organization.name=pharmacie", {"loc-ettelbruck"})],
        "organization.name:contains": [("organization.name:contains=rythmo", {"loc-chl-room"})],
        "organization.name:exact": [("organization.name:exact=Service de cardiologie", {"loc-chl-cardio"})],
    },
    "Practitioner": {
        "active": [("active=false", {"wagner"})],
        "identifier": [("identifier=urn:oid:1.3.182.2.8.1|1000000017", {"muller"})],
        "name": [("name=muller", {"muller"}), ("name=jo", {"dasilva"})],
        "name:contains": [("name:contains=silv", {"dasilva"})],
        "name:exact": [("name:exact=Müller", {"muller"}), ("name:exact=Muller", set())],
        "given": [("given=paul", {"muller"})],
        "given:contains": [("given:contains=ari", {"schmit"})],
        "given:exact": [("given:exact=João", {"dasilva"}), ("given:exact=Joao", set())],
        "family": [("family=da", {"dasilva"})],
        "family:contains": [("family:contains=agn", {"wagner"})],
        "family:exact": [("family:exact=Schmit", {"schmit"})],
    },
    "PractitionerRole": {
        "active": [("active=false", {"r-wagner"})],
        "location": [("location=Location/loc-esch", ESCH)],
        "organization": [("organization=chl-cardio", {"r-muller-chl"})],
        "practitioner": [("practitioner=Practitioner/muller", MULLER)],
        "role": [("role=urn:esante:hpd:profession|infirmier", SCHMIT)],
        "service": [("service=HealthcareService/hs-cardio", {"r-muller-chl"})],
        "specialty": [("specialty=med-cardiologie", MULLER)],
        "practitioner.identifier": [("practitioner.identifier=urn:oid:1.3.182.2.8.1|1000000025", SCHMIT)],
        "practitioner.name": [("practitioner.name=da%20sil", {"r-dasilva"})],
        "practitioner.name:contains": [("practitioner.name:contains=ller", MULLER)],
        "practitioner.name:exact": [("practitioner.name:exact=Wagner", {"r-wagner"})],
        "practitioner.given": [("practitioner.given=marie", SCHMIT)],
        "practitioner.given:contains": [("practitioner.given:contains=aul", MULLER)],
        "practitioner.given:exact": [("practitioner.given:exact=Anne", {"r-wagner"})],
        "practitioner.family": [("practitioner.family=mul", MULLER)],
        "practitioner.family:contains": [("practitioner.family:contains=schm", SCHMIT)],
        "practitioner.family:exact": [("practitioner.family:exact=Da Silva", {"r-dasilva"})],
        "organization.active": [("organization.active=false", {"r-schmit-cgdis"})],
        "organization.identifier": [("organization.identifier=urn:esante:hpd:organization|PHARMACIE", {"r-dasilva"})],
        "organization.name": [("organization.name=cabinet", ESCH)],
        "organization.name:contains": [("organization.name:contains=globe", {"r-dasilva"})],
        "organization.name:exact": [("organization.name:exact=Service de cardiologie", {"r-muller-chl"})],
        "location.status": [("location.status=inactive", {"r-dasilva"})],
        "location.identifier": [("location.identifier=LOC-CHL-CARDIO", {"r-muller-chl"})],
        "location.name": [("location.name=cabinet", ESCH)],
        "location.name:contains": [("location.name:contains=ettelbruck", {"r-dasilva"})],
        "location.name:exact": [("location.name:exact=Cabinet de l'Alzette", ESCH)],
        "service.active": [("service.active=true", {"r-muller-chl"}), ("service.active=false", set())],
        "service.identifier": [("service.identifier=HS-CARDIO", {"r-muller-chl"})],
        "service.location": [("service.location=Location/loc-chl-cardio", {"r-muller-chl"})],
        "service.name": [("service.name=consultation", {"r-muller-chl"})],
        "service.name:contains": [("service.name:contains=cardio", {"r-muller-chl"})],
        "service.name:exact": [("service.name:exact=Consultation de cardiologie", {"r-muller-chl"})],
        "service.organization": [("service.organization=Organization/chl-cardio", {"r-muller-chl"})],
    },
    "HealthcareService": {
        "active": [("active=false", {"hs-prise-de-sang"})],
        "identifier": [("identifier=HS-CARDIO", {"hs-cardio"})],
        "location": [("location=loc-esch", {"hs-prise-de-sang"})],
        "name": [("name=prise", {"hs-prise-de-sang"})],
        "name:contains": [("name:contains=sang", {"hs-prise-de-sang"})],
        "name:exact": [("name:exact=Consultation de cardiologie", {"hs-cardio"})],
        "organization": [("organization=Organization/labo", {"hs-prise-de-sang"})],
        "service-type": [("service-type=urn:esante:hpd:service-type|prelevement", {"hs-prise-de-sang"})],
        "organization.active": [("organization.active=true", {"hs-cardio", "hs-prise-de-sang"})],
        "organization.identifier": [("organization.identifier=CHL-CARDIO", {"hs-cardio"})],
        "organization.name": [("organization.name=laboratoires", {"hs-prise-de-sang"})],
        "organization.name:contains": [("organization.name:contains=cardio", {"hs-cardio"})],
        "organization.name:exact": [("organization.name:exact=Laboratoires Réunis", {"hs-prise-de-sang"})],
        "location.status": [
            ("location.status=active", {"hs-cardio", "hs-prise-de-sang"}),
            ("location.status=inactive", set()),
        ],
        "location.identifier": [("location.identifier=LOC-ESCH", {"hs-prise-de-sang"})],
        "location.name": [("location.name=cabinet", {"hs-prise-de-sang"})],
        "location.name:contains": [("location.name:contains=aile", {"hs-cardio"})],
        "location.name:exact": [("location.name:exact=CHL Centre%5C, aile de cardiologie", {"hs-cardio"})],
    },
    "Endpoint": {
        "connection-type": [
            ("connection-type=direct-project", {"ep-labo"}),
            (
                "connection-type=http://terminology.hl7.org/CodeSystem/endpoint-connection-type|hl7-fhir-rest",
                {"ep-chl"},
            ),
        ],
        "identifier": [("identifier=EP-LABO", {"ep-labo"})],
        "organization": [("organization=Organization/chl", {"ep-chl"})],
        "payload-type": [("payload-type=regimail", {"ep-labo"})],
        "status": [("status=off", {"ep-labo"})],
    },
    "OrganizationAffiliation": {
        "active": [("active=true", {"aff-fhl-chl"})],
        "date": [("date=ge2016", {"aff-fhl-chl"}), ("date=lt2011", {"aff-chl-labo"})],
        "endpoint": [("endpoint=Endpoint/ep-labo", {"aff-chl-labo"})],
        "identifier": [("identifier=AFF-FHL-CHL", {"aff-fhl-chl"})],
        "participating-organization": [("participating-organization=Organization/labo", {"aff-chl-labo"})],
        "primary-organization": [("primary-organization=fhl", {"aff-fhl-chl"})],
        "role": [("role=http://hl7.org/fhir/organization-role|member", {"aff-fhl-chl"})],
    },
}

# ITI-90's _include / _revinclude per type: (type, query, ids of the included resources)
INCLUDES: list[tuple[str, str, set[str]]] = [
    ("Organization", "_id=chl&_include=Organization:endpoint", {"ep-chl"}),
    ("Organization", "_id=chl&_revinclude=Location:organization", {"loc-chl"}),
    ("Organization", "_id=chl&_revinclude=OrganizationAffiliation:participating-organization", {"aff-fhl-chl"}),
    ("Organization", "_id=fhl&_revinclude=OrganizationAffiliation:primary-organization", {"aff-fhl-chl"}),
    ("Location", "_id=loc-esch&_include=Location:organization", {"cabinet-esch"}),
    ("PractitionerRole", "_id=r-schmit&_include=PractitionerRole:practitioner", {"schmit"}),
    ("OrganizationAffiliation", "_id=aff-chl-labo&_include=OrganizationAffiliation:endpoint", {"ep-labo"}),
    (
        "Location",
        "_id=loc-chl-room&_include=Location:partof&_include:iterate=Location:partof",
        {"loc-chl", "loc-chl-cardio"},
    ),
]


def _string_parameter(resource_type: str, name: str) -> bool:
    """Whether ``name`` (possibly chained: ``partof.name``) ends on a string search parameter."""
    registry = get_registry()
    types = [resource_type]
    *links, last = name.split(":")[0].split(".")
    for link in links:
        definitions = [d for t in types if (d := registry.get(t, link)) is not None]
        types = [target for d in definitions for target in d.targets]
    return any((d := registry.get(t, last)) is not None and d.type == "string" for t in types)


def test_every_required_parameter_and_string_modifier_has_a_case() -> None:
    missing: list[str] = []
    for resource_type, parameters in REQUIRED.items():
        for parameter in parameters:
            wanted = [parameter]
            if _string_parameter(resource_type, parameter):
                wanted += [f"{parameter}:contains", f"{parameter}:exact"]
            missing += [f"{resource_type}?{w}" for w in wanted if w not in QUERIES[resource_type]]
    assert not missing, missing


def _check_queries(directory: Directory) -> list[str]:
    failures = []
    for resource_type, parameters in QUERIES.items():
        for parameter, cases in parameters.items():
            for query, expected in cases:
                bundle = directory.bundle(f"{resource_type}?{query}")
                found = {e["resource"]["id"] for e in bundle.get("entry", [])}
                if found != expected or bundle.get("total") != len(expected):
                    failures.append(
                        f"{resource_type} {parameter}: {query} → {sorted(found)} (total {bundle.get('total')}),"
                        f" expected {sorted(expected)}"
                    )
    return failures


def _last_updated(directory: Directory) -> list[str]:
    """``_id`` and ``_lastUpdated`` with the six prefixes ITI-90 requires (gt lt ge le sa eb)."""
    failures = []
    loaded = directory.bundle("Practitioner?_count=100")["entry"]
    first = max(e["resource"]["meta"]["lastUpdated"] for e in loaded)  # the last one the load wrote
    update = directory.http.put(
        f"{directory.base}/Practitioner/schmit",
        json={"resourceType": "Practitioner", "id": "schmit", "active": True, "name": [{"family": "Schmit"}]},
    )
    assert update.status_code == 200, update.text
    changed = update.json()["meta"]["lastUpdated"]
    everyone = {"muller", "schmit", "dasilva", "wagner"}
    cases = [
        (f"_lastUpdated=gt{first}", {"schmit"}),
        (f"_lastUpdated=ge{changed}", {"schmit"}),
        (f"_lastUpdated=lt{changed}", everyone - {"schmit"}),
        (f"_lastUpdated=le{first}", everyone - {"schmit"}),
        (f"_lastUpdated=sa{first}", {"schmit"}),
        (f"_lastUpdated=eb{changed}", everyone - {"schmit"}),
        ("_lastUpdated=gt2000-01-01&_lastUpdated=lt2999", everyone),
        ("_id=muller,wagner", {"muller", "wagner"}),
        (f"_id=schmit&_lastUpdated=lt{changed}", set()),
    ]
    for query, expected in cases:
        found = directory.ids(f"Practitioner?{query.replace('+', '%2B')}")
        if found != expected:
            failures.append(f"Practitioner?{query} → {sorted(found)}, expected {sorted(expected)}")
    return failures


def test_iti90_find_matching_care_services(db_url: str, tmp_path: Path) -> None:
    with directory_server(db_url, tmp_path) as directory:
        failures = _check_queries(directory)
        for resource_type, query, included in INCLUDES:
            bundle = directory.bundle(f"{resource_type}?{query}")
            found = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"}
            if found != included:
                failures.append(f"{resource_type}?{query} included {sorted(found)}, expected {sorted(included)}")
        failures += _last_updated(directory)
        assert not failures, "\n".join(failures)


def test_iti90_post_search_read_and_capabilities(db_url: str, tmp_path: Path) -> None:
    with directory_server(db_url, tmp_path) as d:
        posted = d.http.post(
            f"{d.base}/PractitionerRole/_search",
            content="specialty=med-cardiologie&_include=PractitionerRole:practitioner",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert posted.status_code == 200, posted.text
        modes = {(e["resource"]["id"], e["search"]["mode"]) for e in posted.json()["entry"]}
        assert modes == {("r-muller-chl", "match"), ("r-muller-esch", "match"), ("muller", "include")}
        # Retrieve Care Services Resource: 200, or 404 with an OperationOutcome issue code not-found
        assert d.http.get(f"{d.base}/HealthcareService/hs-cardio").json()["name"] == "Consultation de cardiologie"
        missing = d.http.get(f"{d.base}/Organization/nowhere")
        assert missing.status_code == 404 and missing.json()["issue"][0]["code"] == "not-found"
        statement = httpx.get(f"{d.base}/metadata").json()
        assert (
            "https://profiles.ihe.net/ITI/mCSD/CapabilityStatement/IHE.mCSD.CareServicesSelectiveSupplier"
            in (statement["instantiates"])
        )
        assert (
            "https://profiles.ihe.net/ITI/mCSD/CapabilityStatement/IHE.mCSD.CareServicesUpdateSupplier"
            in (statement["instantiates"])
        )
        resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
        for resource_type in REQUIRED:
            profile = f"https://profiles.ihe.net/ITI/mCSD/StructureDefinition/IHE.mCSD.{resource_type}"
            assert resources[resource_type]["supportedProfile"] == [profile]
            assert {"read", "search-type", "history-type"} <= {
                i["code"] for i in resources[resource_type]["interaction"]
            }
        assert "supportedProfile" not in resources["Patient"]
        for resource_type, parameters in REQUIRED.items():
            declared = {p["name"] for p in resources[resource_type]["searchParam"]}
            plain = {p.split(":")[0].split(".")[0] for p in parameters}
            assert plain <= declared, (resource_type, plain - declared)
        assert "Location:organization" in resources["Organization"]["searchRevInclude"]
        org = {p["name"]: p for p in resources["Organization"]["searchParam"]}
        assert org["ihe-mcsd-hierarchy-partof"]["definition"].endswith("IHE.mCSD.Organization.HierarchyPartOf")


def _problem(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    text = " ".join(issue.get("diagnostics", "") for issue in body["issue"])
    for word in words:
        assert word in text, (word, text)


def test_iti90_bad_inputs(db_url: str, tmp_path: Path) -> None:
    with directory_server(db_url, tmp_path) as d:
        strict = {"Prefer": "handling=strict"}
        _problem(d.http.get(f"{d.base}/Practitioner?colour=blue", headers=strict), 400, "colour")
        lenient = d.http.get(f"{d.base}/Practitioner?colour=blue&family=schmit")
        assert lenient.status_code == 200 and {e["resource"]["id"] for e in lenient.json()["entry"]} == {"schmit"}
        assert "colour" not in lenient.json()["link"][0]["url"]
        _problem(d.http.get(f"{d.base}/Practitioner?_lastUpdated=gt2024-13-45"), 400, "_lastUpdated")
        _problem(d.http.get(f"{d.base}/Practitioner?_lastUpdated=xx2024"), 400, "_lastUpdated")
        _problem(d.http.get(f"{d.base}/OrganizationAffiliation?date=not-a-date"), 400, "date")
        _problem(d.http.get(f"{d.base}/Practitioner?name:sounds-like=x"), 400, "name:sounds-like")
        _problem(d.http.get(f"{d.base}/Practitioner?active:contains=true"), 400, "active:contains")
        _problem(d.http.get(f"{d.base}/Practitioner?family:below=x"), 400, "family:below")
        _problem(
            d.http.get(f"{d.base}/PractitionerRole?practitioner:below=muller"), 400, "practitioner:below", "hierarchy"
        )
        remote = quote("http://elsewhere.example/fhir/Location/loc-chl", safe="")
        _problem(d.http.get(f"{d.base}/Location?partof:below={remote}"), 400, "partof:below")
        _problem(d.http.get(f"{d.base}/Location?partof:below=Organization/chl"), 400, "partof:below")
        _problem(d.http.get(f"{d.base}/Location?_include=Location:nothing"), 400, "_include")
        _problem(d.http.get(f"{d.base}/Practitioner/_history?_since=yesterday"), 400, "_since")
        anonymous = httpx.get(f"{d.base}/Practitioner?family=schmit")
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.json()["resourceType"] == "OperationOutcome"


def test_hierarchy_walks_only_through_what_the_caller_may_search(db_url: str, tmp_path: Path) -> None:
    """A patient app holding only ``patient/PractitionerRole.rs`` may not search Locations: ``location:below``
    then matches the named location only, never its sub-locations (the walk would reveal the hierarchy)."""
    from tests.auth import token

    with directory_server(db_url, tmp_path) as d:
        role = {
            "resourceType": "PractitionerRole",
            "id": "r-room",
            "active": True,
            "location": [{"reference": "Location/loc-chl-room"}],
        }
        assert d.http.put(f"{d.base}/PractitionerRole/r-room", json=role).status_code == 201
        assert d.ids("PractitionerRole?location:below=loc-chl") == {"r-muller-chl", "r-room"}
        narrow = token(d.settings, "patient:p1", "patient/PractitionerRole.rs")
        headers = {"Authorization": f"Bearer {narrow}"}
        assert d.ids("PractitionerRole?location:below=loc-chl-cardio", headers=headers) == {"r-muller-chl"}
        wide = token(d.settings, "patient:p1", "patient/PractitionerRole.rs patient/Location.rs")
        both = d.ids("PractitionerRole?location:below=loc-chl", headers={"Authorization": f"Bearer {wide}"})
        assert both == {"r-muller-chl", "r-room"}
