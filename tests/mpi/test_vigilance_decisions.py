"""The pure planning of identity-vigilance decisions (mpi/vigilance/decisions.py) and the Parameters reader: what
each decision writes for given identities, and what it refuses, without a database."""

from __future__ import annotations

from typing import Any

import pytest

from esante.fhir.errors import FhirError
from esante.mpi.model import IdentityLevel
from esante.mpi.provenance import Activity
from esante.mpi.vigilance.decisions import (
    Identity,
    Revision,
    check_task,
    closed_task,
    plan_link,
    plan_merge,
    plan_unlink,
    plan_unmerge,
    with_links,
)
from esante.mpi.vigilance.inputs import Spec, read

H = "urn:oid:1.3.182.3.1.1.7.2"
L = "urn:oid:1.3.182.3.1.1.9.2"


def _links(**kinds: str) -> list[dict[str, Any]]:
    return [{"other": {"reference": f"Patient/{v}"}, "type": k.replace("_", "-")} for k, v in kinds.items()]


def certified(pid: str, **extra: Any) -> Identity:
    return Identity(pid, 1, {"resourceType": "Patient", "id": pid, **extra}, None, IdentityLevel.CERTIFIED)


def local(pid: str, domain: str = H, **extra: Any) -> Identity:
    level = IdentityLevel.VALIDATED if "link" in extra else IdentityLevel.PROVISIONAL
    return Identity(pid, 1, {"resourceType": "Patient", "id": pid, **extra}, domain, level)


def _refused(status: int, text: str, plan: Any, *args: Any) -> None:
    with pytest.raises(FhirError) as caught:
        plan(*args)
    assert caught.value.status == status and text in str(caught.value), str(caught.value)


def test_with_links_sets_exactly_the_mpi_links_and_keeps_the_others() -> None:
    resource = {"link": [*_links(seealso="a"), {"other": {"reference": "RelatedPerson/r"}, "type": "refer"}]}
    moved = with_links(resource, seealso="b", replaced_by=None)
    assert moved["link"] == [{"other": {"reference": "RelatedPerson/r"}, "type": "refer"}, *_links(seealso="b")]
    assert resource["link"][0]["other"]["reference"] == "Patient/a"  # a copy: the read version is untouched
    assert "link" not in with_links({"link": _links(seealso="a")}, seealso=None, replaced_by=None)


def test_link_moves_and_names_the_removed_link() -> None:
    plan = plan_link(local("h", link=_links(seealso="a")), certified("b"))
    assert plan.activity is Activity.LINK and plan.entities == [("source", "Patient/b"), ("removal", "Patient/a")]
    assert plan.writes[0].resource["link"] == _links(seealso="b")
    _refused(409, "already linked", plan_link, local("h", link=_links(seealso="b")), certified("b"))
    _refused(422, "must be a certified one", plan_link, local("h"), local("k"))
    _refused(422, "is a certified identity", plan_link, certified("c"), certified("b"))
    _refused(409, "link to the survivor", plan_link, local("h"), certified("b", link=_links(replaced_by="a")))
    _refused(409, "decide on the survivor", plan_link, local("h", link=_links(replaced_by="k")), certified("b"))


def test_unlink() -> None:
    plan = plan_unlink(local("h", link=_links(seealso="a")))
    assert plan.entities == [("removal", "Patient/a")] and "link" not in plan.writes[0].resource
    _refused(409, "is not linked", plan_unlink, local("h"))


def test_certified_merge_repoints_only_what_is_linked_to_the_source() -> None:
    linked = [local("h", link=_links(seealso="s")), local("k", L, link=_links(seealso="s")), local("m")]
    plan = plan_merge(certified("s"), certified("t"), linked)
    retired, *repointed = plan.writes
    assert retired.resource["active"] is False and retired.resource["link"] == _links(replaced_by="t")
    assert [w.identity.id for w in repointed] == ["h", "k"] and all(w.revision for w in repointed)
    assert all(w.resource["link"] == _links(seealso="t") for w in repointed)


def test_local_merge_takes_or_keeps_the_link() -> None:
    plan = plan_merge(local("a", link=_links(seealso="p")), local("b"), [])
    assert [(w.identity.id, w.revision) for w in plan.writes] == [("a", False), ("b", True)]
    assert plan.writes[1].resource["link"] == _links(seealso="p") and ("removal", "Patient/p") in plan.entities
    same = plan_merge(local("a", link=_links(seealso="p")), local("b", link=_links(seealso="p")), [])
    assert len(same.writes) == 1  # the survivor is that person already
    _refused(
        409, "two persons", plan_merge, local("a", link=_links(seealso="p")), local("b", link=_links(seealso="q")), []
    )
    _refused(422, "two domains", plan_merge, local("a"), local("b", L), [])
    _refused(422, "same identity", plan_merge, local("a"), local("a"), [])
    _refused(422, "a certified identity and a local one", plan_merge, certified("a"), local("b"), [])


def test_unmerge_restores_the_source_and_points_back() -> None:
    source = certified("s", active=False, link=_links(replaced_by="t"))
    before_merge = {"resourceType": "Patient", "active": True}
    back = Revision({"link": _links(seealso="s")}, {"link": _links(seealso="t")}, local("h", link=_links(seealso="t")))
    moved = Revision({"link": _links(seealso="s")}, {"link": _links(seealso="t")}, local("k"))
    plan = plan_unmerge(source, "t", before_merge, [back, moved])
    restored, pointed = plan.writes
    assert restored.resource["active"] is True and "link" not in restored.resource
    assert pointed.identity.id == "h" and pointed.resource["link"] == _links(seealso="s")
    assert plan.skipped == ["Patient/k is now linked to nothing (a later decision), left as it is"]
    _refused(409, "undo the later merge first", plan_unmerge, source, "x", before_merge, [])


def test_review_task_checks_and_closing() -> None:
    task = {
        "resourceType": "Task",
        "status": "requested",
        "code": {"coding": [{"system": "urn:esante:mpi-task", "code": "identity-review"}]},
        "focus": {"reference": "Patient/h"},
    }
    assert check_task(task, "t", {"h", "a"}) is task
    _refused(422, "reviews Patient/h", check_task, task, "t", {"x"})
    _refused(409, "already completed", check_task, {**task, "status": "completed"}, "t", {"h"})
    _refused(404, "does not exist", check_task, None, "t", {"h"})
    closed = closed_task(task, "2026-12-02T10:00:00.000000Z", "link", "Provenance/p", "same person")
    assert closed["status"] == "completed" and closed["executionPeriod"] == {"end": "2026-12-02T10:00:00.000000Z"}
    assert [o["type"]["coding"][0]["code"] for o in closed["output"]] == ["decision", "provenance"]
    assert task["status"] == "requested"  # a copy


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"resourceType": "Bundle"}, "must be a Parameters"),
        ({"resourceType": "Parameters", "parameter": {}}, "must be a list"),
        ({"resourceType": "Parameters", "parameter": [{"name": "x"}]}, "unknown parameter 'x'"),
        ({"resourceType": "Parameters", "parameter": [{"name": "local", "valueString": "h"}]}, "valueReference"),
        ({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "x" * 2001}]}, "longer"),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "local", "valueReference": {"reference": "Patient/a b"}}],
            },
            "must reference a Patient",
        ),
    ],
)
def test_parameters_are_read_strictly(body: dict[str, Any], text: str) -> None:
    specs = (Spec("local", "Patient"), Spec("reason", "string"))
    _refused(400, text, read, body, specs)


def test_parameters_accept_absolute_and_versioned_references() -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "local", "valueReference": {"reference": "https://esante.lu/fhir/Patient/h1/_history/3"}},
            {"name": "reason", "valueString": "  same person "},
        ],
    }
    assert read(body, (Spec("local", "Patient", True), Spec("reason", "string"))) == {
        "local": "h1",
        "reason": "same person",
    }
