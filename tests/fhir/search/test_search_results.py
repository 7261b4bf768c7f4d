"""Sorting, paging, totals, _include/_revinclude, _summary/_elements and error handling."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from search_kit import SearchKit

from esante.fhir.errors import FhirError
from esante.fhir.search.summary import SUBSETTED_SYSTEM, apply_summary


def patient(pid: str, family: str | None = None, birth: str | None = None, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": pid, **extra}
    if family:
        resource["name"] = [{"family": family}]
    if birth:
        resource["birthDate"] = birth
    return resource


async def test_sort_multi_key_and_missing_last(kit: SearchKit) -> None:
    await kit.add(
        patient("a", "Zed", "1990", gender="male"),
        patient("b", "Abel", "1980", gender="female"),
        patient("c", "Marc", "1990", gender="female"),
        patient("d", None, "2000", gender="male"),
        patient("e", "Bob"),
    )
    assert await kit.ids("Patient", "_sort=family") == ["b", "e", "c", "a", "d"]
    assert await kit.ids("Patient", "_sort=-family") == ["a", "c", "e", "b", "d"]
    assert await kit.ids("Patient", "_sort=birthdate,family") == ["b", "c", "a", "d", "e"]
    assert await kit.ids("Patient", "_sort=-birthdate,-family") == ["d", "a", "c", "b", "e"]
    assert await kit.ids("Patient", "_sort=gender,-birthdate") == ["c", "b", "d", "a", "e"]
    assert await kit.ids("Patient", "_sort=-_id") == ["e", "d", "c", "b", "a"]
    assert await kit.ids("Patient", "_sort=_lastUpdated") == ["a", "b", "c", "d", "e"]
    assert await kit.ids("Patient", "_sort=-_lastUpdated") == ["e", "d", "c", "b", "a"]


async def test_sort_reference_number_quantity(kit: SearchKit) -> None:
    await kit.add(
        *[
            {
                "resourceType": "Observation",
                "id": f"o{i}",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": f"Patient/{pid}"},
                "valueQuantity": {"value": value},
            }
            for i, (pid, value) in enumerate([("b", 3), ("a", 10), ("c", 1)])
        ]
    )
    assert await kit.ids("Observation", "_sort=subject") == ["o1", "o0", "o2"]
    assert await kit.ids("Observation", "_sort=-value-quantity") == ["o1", "o0", "o2"]
    assert await kit.ids("Observation", "_sort=value-quantity") == ["o2", "o0", "o1"]


async def test_paging_is_stable(kit: SearchKit) -> None:
    await kit.add(*[patient(f"p{i:02d}", "Same" if i % 3 else "Other", "2000") for i in range(29)])
    for query in ("", "_sort=family", "_sort=-birthdate,family", "family=s&_sort=-family"):
        expected = await kit.idset("Patient", query)
        seen: list[str] = []
        offset = 0
        while True:
            result = await kit.search("Patient", f"{query}&_count=4&_offset={offset}")
            seen += [m.res_id for m in result.matches]
            assert result.total == len(expected)
            assert result.count == 4
            assert result.offset == offset
            if not result.has_next:
                break
            offset += 4
        assert len(seen) == len(set(seen)) == len(expected)
        assert set(seen) == expected


async def test_total_modes_and_count(kit: SearchKit) -> None:
    await kit.add(*[patient(f"p{i}", "Smith") for i in range(7)])
    result = await kit.search("Patient", "_count=3")
    assert (len(result.matches), result.total, result.has_next) == (3, 7, True)
    assert (await kit.search("Patient", "_count=3&_total=none")).total is None
    estimate = (await kit.search("Patient", "_count=3&_total=estimate")).total
    assert estimate is not None and estimate >= 4
    assert (await kit.search("Patient", "_count=3&_total=accurate&_offset=6")).total == 7
    assert (await kit.search("Patient", "_count=3&_offset=20")).total == 7
    zero = await kit.search("Patient", "_count=0")
    assert (zero.matches, zero.total, zero.has_next) == ([], 7, False)
    summary = await kit.search("Patient", "_summary=count")
    assert (summary.matches, summary.total) == ([], 7)
    big = await kit.search("Patient", "_count=5000", max_count=5)
    assert (big.count, len(big.matches)) == (5, 5)
    assert ("_count", "5") in big.link_params
    assert all(name != "_offset" for name, _ in (await kit.search("Patient", "_offset=2")).link_params)


async def test_includes_and_revincludes(kit: SearchKit) -> None:
    await kit.add(
        {"resourceType": "Organization", "id": "root", "name": "Root"},
        {
            "resourceType": "Organization",
            "id": "org",
            "name": "Org",
            "partOf": {"reference": "Organization/root"},
        },
        {"resourceType": "Practitioner", "id": "doc"},
        patient("p1", "One", managingOrganization={"reference": "Organization/org"}),
        patient("p2", "Two", generalPractitioner=[{"reference": "Practitioner/doc"}]),
        *[
            {
                "resourceType": "Observation",
                "id": f"ob{i}",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": f"Patient/{pid}"},
                "performer": [{"reference": "Practitioner/doc"}],
            }
            for i, pid in enumerate(["p1", "p1", "p2"])
        ],
        {"resourceType": "Provenance", "id": "prov", "target": [{"reference": "Observation/ob0"}]},
    )

    async def run(query: str) -> tuple[list[str], set[str]]:
        result = await kit.search("Observation" if query.startswith("O:") else "Patient", query[2:])
        return [m.res_id for m in result.matches], {f"{i.res_type}/{i.res_id}" for i in result.included}

    everything = (["ob0", "ob1", "ob2"], {"Patient/p1", "Patient/p2"})
    assert await run("O:_include=Observation:subject") == everything
    assert await run("O:_id=ob0&_include=Observation:subject:Patient") == (["ob0"], {"Patient/p1"})
    assert await run("O:_id=ob0&_include=Observation:subject:Group") == (["ob0"], set())
    assert (await run("O:_id=ob0&_include=*"))[1] == {"Patient/p1", "Practitioner/doc"}
    assert (await run("O:_id=ob0&_include=Observation:*"))[1] == {"Patient/p1", "Practitioner/doc"}
    iterate = "O:_id=ob0&_include=Observation:subject&_include:iterate=Patient:organization"
    assert (await run(iterate))[1] == {"Patient/p1", "Organization/org"}
    chain = iterate + "&_include:iterate=Organization:partof"
    assert (await run(chain))[1] == {"Patient/p1", "Organization/org", "Organization/root"}
    # without :iterate the second hop is not followed
    assert (await run("O:_id=ob0&_include=Observation:subject&_include=Patient:organization"))[1] == {"Patient/p1"}
    assert await run("P:_id=p1&_revinclude=Observation:subject") == (
        ["p1"],
        {"Observation/ob0", "Observation/ob1"},
    )
    nested = "P:_id=p1&_revinclude=Observation:subject&_revinclude:iterate=Provenance:target"
    assert (await run(nested))[1] == {"Observation/ob0", "Observation/ob1", "Provenance/prov"}
    both = "P:_id=p2&_include=Patient:general-practitioner&_revinclude=Observation:subject"
    assert (await run(both))[1] == {"Practitioner/doc", "Observation/ob2"}
    # an included resource that is also a match is not repeated
    result = await kit.search("Observation", "_include=Observation:subject&_revinclude=Observation:subject")
    assert {m.res_id for m in result.matches} == {"ob0", "ob1", "ob2"}
    assert {i.res_id for i in result.included} == {"p1", "p2"}


async def test_summary_and_elements(kit: SearchKit) -> None:
    resource = {
        "resourceType": "Patient",
        "id": "p",
        "meta": {"versionId": "1"},
        "text": {"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'>x</div>"},
        "name": [{"family": "X"}],
        "birthDate": "2000",
        "_birthDate": {"extension": [{"url": "http://x", "valueString": "y"}]},
        "deceasedBoolean": False,
        "photo": [{"contentType": "image/png"}],
        "contact": [{"name": {"family": "Y"}}],
    }
    (stored,) = await kit.add(resource)
    stored_json = orjson.loads(stored.content or b"{}")
    reg = kit.registry

    def summary(query: str) -> dict[str, Any]:
        return apply_summary(stored_json, kit.parse("Patient", query), reg)

    full = summary("_summary=true")
    assert set(full) == {"resourceType", "id", "meta", "name", "birthDate", "_birthDate", "deceasedBoolean"}
    assert any(t["system"] == SUBSETTED_SYSTEM and t["code"] == "SUBSETTED" for t in full["meta"]["tag"])
    assert set(summary("_summary=text")) == {"resourceType", "id", "meta", "text"}
    data = summary("_summary=data")
    assert "text" not in data and "photo" in data and "contact" in data
    assert set(summary("_elements=name,Patient.photo")) == {"resourceType", "id", "meta", "name", "photo"}
    assert summary("_summary=false") == stored_json
    assert "meta" not in resource or "tag" not in resource["meta"]  # the input is never modified
    observation = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "c"}}
    observation["note"] = [{"text": "n"}]
    assert set(apply_summary(observation, kit.parse("Observation", "_elements=note"), reg)) == {
        "resourceType",
        "id",
        "meta",
        "note",
        "status",  # mandatory elements are always kept
        "code",
    }
    request = kit.parse("Patient", "_elements=name,birthDate")
    assert request.elements == ["name", "birthDate"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("birthdate=1990-13", "birthdate"),
        ("birthdate=xx1990", "birthdate"),
        ("birthdate=gt", "birthdate"),
        ("family:foo=x", "family"),
        ("family:not=x", "family"),
        ("birthdate:exact=1990", "birthdate"),
        ("gender.name=x", "gender.name"),
        ("general-practitioner:Observation.name=x", "general-practitioner:Observation.name"),
        ("_sort=nothing", "_sort"),
        ("_sort=name,-_text", "_sort"),
        ("_count=ten", "_count"),
        ("_count=-1", "_count"),
        ("_offset=x", "_offset"),
        ("_total=maybe", "_total"),
        ("_summary=short", "_summary"),
        ("_include=Patient:family", "_include"),
        ("_include=Nothing:x", "_include"),
        ("_include:foo=Patient:organization", "_include:foo"),
        ("_revinclude=Observation", "_revinclude"),
        ("organization=Nothing/1", "organization"),
        ("organization:missing=maybe", "organization"),
        ("identifier:of-type=a|b", "identifier"),
        ("identifier=a|b|c", "identifier"),
        ("_has:Observation:code:status=final", "_has:Observation:code:status"),
        ("_has:Nothing:x:y=1", "_has:Nothing:x:y"),
        ("_has:Observation=1", "_has:Observation"),
        ("_lastUpdated=2020-02-30", "_lastUpdated"),
        ("_id:exact=1", "_id"),
        ("gender:in=http://vs", "gender"),
        ("_contained=true", "_contained"),
        ("death-date=ap", "death-date"),
        ("_offset=99999999999999999999", "_offset"),
        ("family=a\x00b", "family"),
    ],
)
async def test_errors_name_the_parameter(kit: SearchKit, query: str, name: str) -> None:
    with pytest.raises(FhirError) as err:
        await kit.search("Patient", query)
    assert err.value.status == 400
    assert name in str(err.value)
    err.value.outcome()  # renders


async def test_odd_values_never_fail(kit: SearchKit) -> None:
    await kit.add(patient("p", "X" * 300, "2000"))
    for query in [
        [("family:exact", "X" * 1000)],
        [("family", "\U0001d518nicode \U0001f600")],
        [("birthdate", "9999-12-31T23:59:59.999999999+14:00")],
        [("_count", "99999999999")],
        [("identifier", "|" + "x" * 2000)],
    ]:
        await kit.search("Patient", query)
    for query in [[("probability", "1e400")], [("probability", "-0.0000000001")], [("probability", "ap0")]]:
        await kit.search("RiskAssessment", query)
    assert await kit.idset("Patient", [("family", "x" * 300)]) == {"p"}


@pytest.mark.parametrize(
    ("res_type", "query", "name"),
    [
        ("Observation", "value-quantity=abc", "value-quantity"),
        ("Observation", "value-quantity=5|http://u", "value-quantity"),
        ("Observation", "code-value-quantity=1234", "code-value-quantity"),
        ("RiskAssessment", "probability=1.2.3", "probability"),
        ("RiskAssessment", "probability=zz5", "probability"),
        ("Observation", "subject:Device.name=x", "subject:Device.name"),  # Device has no 'name'? still a 400
        (None, "_type=Nothing", "_type"),
    ],
)
async def test_more_errors(kit: SearchKit, res_type: str | None, query: str, name: str) -> None:
    with pytest.raises(FhirError) as err:
        await kit.search(res_type, query, strict=True)
    assert err.value.status == 400
    assert name in str(err.value)
