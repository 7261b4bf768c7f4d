"""The DSP access-scenario matrix over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL.

One world: Anna's DSP with documents of every class and confidentiality level, written by establishment software
in the shared MHD shape, a SubmissionSet and Binaries; her grants made through the operations (trusted circle,
MR03, a block on a trusted professional, an assistant) and the professionals' own declarations (relationships, one
expired, an emergency); Ben's DSP closed; Cleo opted out of emergency access. For each caller the test states which
of Anna's documents they may see, and checks every read path against it — read, vread, search and its total,
``_summary=count``, ``_include``, chain, ``_revinclude``, ``_has``, the compartment, type and instance history,
Binary, a batch, the List — then the combinations (blocked + trusted circle, hidden + author, emergency after the
opt-out, expired relationship, pharmacist and class, closed DSP, withdrawn right then restored) and writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from esante.dsp.model import DOCUMENT_CLASS_SYSTEM
from tests.dsp.dsp_support import (
    MATRICULE,
    World,
    binary,
    document,
    dsp_world,
    ids,
    parameters,
    practitioner,
    put,
    role,
    submission_set,
)

DAY = 86400
ANNA_DOCS = ("n-cons", "n-presc", "n-lab", "n-sum", "r-disc", "r-med", "v-img", "blk-own")
BINARIES = ("n-cons", "v-img", "n-sum")
ALL = frozenset(ANNA_DOCS)
NOT_HIDDEN = ALL - {"v-img"}
NORMAL = frozenset({"n-cons", "n-presc", "n-lab", "n-sum", "blk-own"})

# caller → (Anna's documents they see, the SubmissionSet, Anna's Patient)
EXPECTED: dict[str, tuple[frozenset[str], bool, bool]] = {
    "anna": (ALL, True, True),
    "assistant": (ALL, True, True),
    "ben": (frozenset(), False, False),
    "tc": (NOT_HIDDEN, True, True),
    "mr": (NOT_HIDDEN, True, True),
    "sys_tc": (NOT_HIDDEN, True, True),
    "rel": (NORMAL, True, True),
    "pha": (frozenset({"n-presc", "n-lab"}), True, True),
    "em": (frozenset({"n-sum"}), True, True),
    "exp": (frozenset(), False, False),
    "none": (frozenset(), False, False),
    "blk": (frozenset({"blk-own"}), False, False),
    "au": (frozenset({"v-img"}), False, True),
    "estab": (frozenset(), False, True),
    "sys_none": (frozenset(), False, True),
}


class Scenario:
    def __init__(self, world: World, http: httpx.AsyncClient) -> None:
        self.world = world
        self.http = http
        self.ehid: dict[str, str] = {}
        self.headers: dict[str, dict[str, str]] = {}

    async def op(self, path: str, body: dict[str, Any], headers: dict[str, str], status: int = 201) -> dict[str, Any]:
        response = await self.http.post(f"{self.world.fhir}/{path}", json=body, headers=headers)
        assert response.status_code == status, f"{path}: {response.status_code} {response.text}"
        result: dict[str, Any] = response.json()
        return result

    async def build(self) -> None:
        world, http = self.world, self.http
        for n, (name, profession) in enumerate(
            [
                ("tc", "medecin"),
                ("mr", "medecin"),
                ("rel", "medecin"),
                ("exp", "medecin"),
                ("none", "medecin"),
                ("blk", "medecin"),
                ("pha", "pharmacien"),
                ("em", "medecin"),
                ("au", "infirmier"),
                ("wd", "medecin"),
            ],
            start=1,
        ):
            self.ehid[name] = await practitioner(http, world, name, n, profession)
        await role(http, world, "au-role", "au")
        anna = await world.certified("anna", 1)
        await world.certified("ben", 2)
        await world.certified("cleo", 3)
        await world.certified("dora", 4)  # Anna's assistant (a person with her own eSanté account)
        docs = [
            document("n-cons", anna, "consultation-report", author="Practitioner/tc"),
            document("n-presc", anna, "prescription", author="Practitioner/mr"),
            document("n-lab", anna, "laboratory-results"),
            document("n-sum", anna, "patient-summary"),
            document("r-disc", anna, "discharge-letter", labels=("R",)),
            document("r-med", anna, "medication-list", labels=("R",)),
            document("v-img", anna, "imaging-report", author="PractitionerRole/au-role"),
            document("blk-own", anna, "consultation-report", author="Practitioner/blk"),
            document("b-cons", "ben", "consultation-report", author="Practitioner/tc"),
            document("c-sum", "cleo", "patient-summary"),
        ]
        for doc in docs:
            await put(http, world, doc)
        for doc_id in BINARIES:
            await put(http, world, binary(doc_id))
        await put(http, world, submission_set("ss1", anna, "Practitioner/tc", ["n-cons", "n-presc"]))

        patient = world.patient(anna)
        # Anna's grants (the patient's operations) and her hiding of the imaging report
        for kind, who in (
            ("trusted-circle", "tc"),
            ("referent", "mr"),
            ("trusted-circle", "blk"),
            ("block", "blk"),
            ("trusted-circle", "wd"),
        ):
            await self.op(
                f"Patient/{anna}/$dsp-grant",
                parameters(kind=("valueCode", kind), practitioner={"reference": f"Practitioner/{who}"}),
                patient,
            )
        await self.op("DocumentReference/v-img/$dsp-hide", parameters(), patient, 200)
        await world.execute(
            "INSERT INTO account (id, kind, username, status, patient_id, roles, totp_enabled, failed_logins,"
            " tokens_valid_after, created_at, updated_at) VALUES ('acct-dora', 'patient', 'dora', 'active', 'dora',"
            " '', ?, 0, 0, 0, 0)",
            False,
        )
        await self.op(
            f"Patient/{anna}/$dsp-grant",
            parameters(kind=("valueCode", "assistant"), assistant={"reference": "Patient/dora"}),
            patient,
        )
        # the professionals' declarations; one relationship declared 121 days ago
        await self.op(f"Patient/{anna}/$dsp-relationship", parameters(), world.professional(self.ehid["rel"]))
        await self.op(
            "Patient/$dsp-relationship",
            parameters(patient={"system": MATRICULE, "value": world.matricules[anna]}),
            world.professional(self.ehid["pha"]),
        )
        world.clock.advance(-121 * DAY)
        await self.op(f"Patient/{anna}/$dsp-relationship", parameters(), world.professional(self.ehid["exp"]))
        world.clock.advance(121 * DAY)
        await self.op(
            f"Patient/{anna}/$dsp-emergency",
            parameters(reason="unconscious at the emergency department"),
            world.professional(self.ehid["em"]),
        )
        # Ben: Dr tc in his trusted circle, then he closes his DSP; Cleo opts out of emergency access
        await self.op(
            "Patient/ben/$dsp-grant",
            parameters(kind=("valueCode", "trusted-circle"), practitioner={"reference": "Practitioner/tc"}),
            world.patient("ben"),
        )
        await self.op("Patient/ben/$dsp-close", parameters(), world.patient("ben"), 200)
        await self.op("Patient/cleo/$dsp-emergency-opt-out", parameters(value=True), world.patient("cleo"))

        self.headers = {
            "anna": patient,
            "assistant": world.assistant("acct-dora", "dora", anna),
            "ben": world.patient("ben"),
            "sys_tc": world.system_for(self.ehid["tc"]),
            "estab": world.system(),
            "sys_none": world.system_for(self.ehid["none"]),
            **{
                name: world.professional(self.ehid[name])
                for name in ("tc", "mr", "rel", "pha", "em", "exp", "none", "blk", "au")
            },
        }

    # --- the paths ------------------------------------------------------------------------------------------------
    async def get(self, caller: str, path: str) -> httpx.Response:
        return await self.http.get(f"{self.world.fhir}/{path}", headers=self.headers[caller])

    async def check_caller(self, caller: str, problems: list[str]) -> None:
        visible, sees_list, sees_patient = EXPECTED[caller]
        refs = {f"DocumentReference/{d}" for d in visible}
        anna_doc_refs = {f"DocumentReference/{d}" for d in ANNA_DOCS}

        def expect(what: str, actual: Any, wanted: Any) -> None:
            if actual != wanted:
                problems.append(f"{caller}: {what}: got {actual!r}, expected {wanted!r}")

        for doc in ANNA_DOCS:
            response = await self.get(caller, f"DocumentReference/{doc}")
            expect(f"read {doc}", response.status_code, 200 if doc in visible else 404)
            if response.status_code >= 400:
                expect(f"read {doc} is an OperationOutcome", response.json().get("resourceType"), "OperationOutcome")
        for doc in ("n-cons", "v-img"):
            version = await self.get(caller, f"DocumentReference/{doc}/_history/1")
            expect(f"vread {doc}", version.status_code, 200 if doc in visible else 404)
            history = await self.get(caller, f"DocumentReference/{doc}/_history")
            expect(f"history of {doc}", history.status_code, 200 if doc in visible else 404)
        search = (await self.get(caller, "DocumentReference?patient=Patient/anna&_count=50")).json()
        expect("search", (ids(search), search.get("total")), (refs, len(refs)))
        count = (await self.get(caller, "DocumentReference?patient=Patient/anna&_summary=count")).json()
        expect("_summary=count", count.get("total"), len(refs))
        compartment = (await self.get(caller, "Patient/anna/DocumentReference?_count=50")).json()
        expect("compartment", ids(compartment), refs)
        included = (
            await self.get(caller, "DocumentReference?patient=Patient/anna&_include=DocumentReference:subject")
        ).json()
        wanted_include = {"Patient/anna"} if refs and sees_patient else set()
        expect("_include", (ids(included), ids(included, "include")), (refs, wanted_include))
        matricule = self.world.matricules["anna"]
        chained = (
            await self.get(caller, f"DocumentReference?patient.identifier={MATRICULE}|{matricule}&_count=50")
        ).json()
        expect("chain", ids(chained), refs if sees_patient else set())
        revinclude = (await self.get(caller, "Patient?_id=anna&_revinclude=DocumentReference:subject&_count=50")).json()
        if revinclude.get("resourceType") == "Bundle":
            wanted_rev = ({"Patient/anna"}, refs) if sees_patient else (set(), set())
            expect("_revinclude", (ids(revinclude), ids(revinclude, "include")), wanted_rev)
        else:
            expect("_revinclude", revinclude.get("resourceType"), "OperationOutcome")
            expect("_revinclude refused only where the Patient is not visible", sees_patient, False)
        has = await self.get(
            caller, f"Patient?_has:DocumentReference:subject:category={DOCUMENT_CLASS_SYSTEM}|imaging-report"
        )
        if has.status_code == 200:
            expect("_has", ids(has.json()), {"Patient/anna"} if sees_patient and "v-img" in visible else set())
        else:
            expect("_has refused only where the Patient is not visible", (has.status_code, sees_patient), (403, False))
        history = (await self.get(caller, "DocumentReference/_history?_count=100")).json()
        seen = {f"DocumentReference/{e['resource']['id']}" for e in history.get("entry", []) if "resource" in e}
        expect("type history", seen & anna_doc_refs, refs)
        for doc in BINARIES:
            response = await self.get(caller, f"Binary/bin-{doc}")
            expect(f"Binary of {doc}", response.status_code, 200 if doc in visible else 404)
        batch = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": f"DocumentReference/{d}"}} for d in ("n-sum", "v-img")],
        }
        answer = await self.http.post(f"{self.world.fhir}", json=batch, headers=self.headers[caller])
        statuses = [e["response"]["status"].split()[0] for e in answer.json()["entry"]]
        expect("batch", statuses, ["200" if d in visible else "404" for d in ("n-sum", "v-img")])
        listed = await self.get(caller, "List/ss1")
        expect("read SubmissionSet", listed.status_code, 200 if sees_list else 404)
        lists = (await self.get(caller, "List?patient=Patient/anna")).json()
        expect("search SubmissionSet", ids(lists), {"List/ss1"} if sees_list else set())
        patient = await self.get(caller, "Patient/anna")
        expect("read Patient", patient.status_code in (200,), sees_patient)
        # Ben's DSP is closed: no professional sees anything of it, not even its author; Cleo opted out
        expect(
            "closed DSP's document",
            (await self.get(caller, "DocumentReference/b-cons")).status_code,
            200 if caller == "ben" else 404,
        )
        expect("opted-out patient's summary", (await self.get(caller, "DocumentReference/c-sum")).status_code, 404)


def _failure_report(problems: list[str]) -> str:
    return "\n".join(problems)


async def test_access_matrix(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=60) as http:
        scenario = Scenario(world, http)
        await scenario.build()
        problems: list[str] = []
        for caller in EXPECTED:
            await scenario.check_caller(caller, problems)
        assert not problems, _failure_report(problems)
