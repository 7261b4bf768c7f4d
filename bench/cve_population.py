"""Synthetic CVE records for the benchmarks: patients with vaccination histories shaped by the Luxembourg calendar
(docs/cve-schedule-lu.md), written in bulk through the resource store (its CVE hooks check every Immunization).

Pure generation (``history``) + the bulk writer (``seed``). Deterministic for a seed and a day.

Who (ages at ``today``): 8 % under 2, 24 % 2-17, 48 % 18-64, 20 % 65-94 — a register where children's records
are complete (the CVE started with them) and adults have what was transcribed or imported.

What, each dose given with probability 0.93 (children) and a delay of 0-40 days (1 in 10: 2-6 months):

- 2, 4, 11 months hexavalent (CVX 146) and PCV (133, 20 % PCV20 216); rotavirus 2 and 3 months (119); MenB 3, 5,
  12 months (163); MMR or MMRV at 12 and 18 months (03/94); MenACWY at 13 months (203); DTaP-IPV at 5-6 years
  (130); HPV at 11 and 11.5 years (165); dTap-IPV at 15-16 years (130);
- adults: a dTap-IPV / Tdap / Td-IPV booster about every 10 years from 25 (probability 0.5 each); COVID-19 2021
  (two doses, 208 or 207, probability 0.8) and a 2021-2022 booster (0.6), imported from MSVAC; from 65, influenza
  each season since 2019 (0.5), zoster twice since 2023 (0.3), PCV20 once (0.3), a seasonal COVID-19 dose (0.4).

Origins: COVID-19 doses of 2021-2022 are ``imported`` (with their MSVAC identifier), doses since 2024 ``performed``
(lot, expiry, performer), older ones ``historical`` (from the paper card).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

ORIGIN = "urn:esante:cve:record-origin"
CVX = "http://hl7.org/fhir/sid/cvx"
REPORT_ORIGIN = "http://terminology.hl7.org/CodeSystem/immunization-origin"
VACCINATORS = 50


@dataclass(frozen=True)
class Dose:
    day: date
    cvx: str


def _months(birth: date, months: float) -> date:
    return birth + timedelta(days=round(months * 30.44))


def _years(birth: date, years: float) -> date:
    return birth + timedelta(days=round(years * 365.25))


def _birth(rng: random.Random, today: date) -> date:
    band = rng.random()
    if band < 0.08:
        age_days = rng.randint(20, 730)
    elif band < 0.32:
        age_days = rng.randint(731, 18 * 365)
    elif band < 0.80:
        age_days = rng.randint(18 * 365, 65 * 365)
    else:
        age_days = rng.randint(65 * 365, 94 * 365)
    return today - timedelta(days=age_days)


def doses(rng: random.Random, birth: date, today: date) -> list[Dose]:
    """A vaccination history for someone born on ``birth``, as of ``today`` (see the module docstring)."""
    out: list[Dose] = []

    def give(day: date, cvx: str, p: float = 0.93) -> None:
        if rng.random() > p:
            return
        late = rng.randint(60, 180) if rng.random() < 0.1 else rng.randint(0, 40)
        when = day + timedelta(days=late)
        if when < today and when >= birth:
            out.append(Dose(when, cvx))

    pcv = "216" if rng.random() < 0.2 else "133"
    childhood = birth >= date(2005, 1, 1)
    if childhood or rng.random() < 0.3:  # older adults: a transcribed childhood only sometimes
        for months in (2, 4, 11):
            give(_months(birth, months), "146")
            give(_months(birth, months), pcv)
        if birth >= date(2009, 1, 1):
            give(_months(birth, 2), "119")
            give(_months(birth, 3), "119")
        if birth >= date(2019, 1, 1):
            for months in (3, 5, 12):
                give(_months(birth, months), "163")
        mmr = "94" if rng.random() < 0.3 else "03"
        give(_months(birth, 12), mmr)
        give(_months(birth, 18), mmr)
        give(_months(birth, 13), "203")
        give(_years(birth, 5.5), "130")
        if birth >= date(2008, 1, 1):
            give(_years(birth, 11), "165")
            give(_years(birth, 11.5), "165")
        give(_years(birth, 15.5), "130")
    for age in range(25, 95, 10):
        give(_years(birth, age + rng.random() * 3), rng.choice(("130", "115", "195")), 0.5)
    if birth <= date(2005, 1, 1):
        covid = rng.choice(("208", "207"))
        if rng.random() < 0.8:
            first = date(2021, 3, 1) + timedelta(days=rng.randint(0, 200))
            out.append(Dose(first, covid))
            out.append(Dose(first + timedelta(days=rng.randint(21, 42)), covid))
            if rng.random() < 0.6:
                out.append(Dose(date(2021, 11, 15) + timedelta(days=rng.randint(0, 120)), covid))
    if _years(birth, 65) < today:
        for season in range(2019, today.year + 1):
            day = date(season, 10, 1) + timedelta(days=rng.randint(0, 60))
            if day >= _years(birth, 65):
                give(day, rng.choice(("150", "197", "205")), 0.5)
        if rng.random() < 0.3:
            start = max(date(2023, 4, 1), _years(birth, 65)) + timedelta(days=rng.randint(0, 400))
            give(start, "187", 1.0)
            give(start + timedelta(days=rng.randint(60, 180)), "187", 1.0)
        give(max(date(2022, 1, 1), _years(birth, 65)) + timedelta(days=rng.randint(0, 900)), "216", 0.3)
        give(date(2025, 10, 1) + timedelta(days=rng.randint(0, 60)), "309", 0.4)
    return sorted((d for d in out if d.day < today), key=lambda d: d.day)


def patient(n: int, birth: date, rng: random.Random) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"cve{n:06d}",
        "identifier": [{"system": "urn:oid:1.3.182.4.4", "value": f"{birth:%Y%m%d}{n % 100_000:05d}"}],
        "name": [{"family": f"Synth{n}", "given": [rng.choice(("Lea", "Max", "Ana", "Tom", "Eva", "Luc"))]}],
        "gender": rng.choice(("female", "male")),
        "birthDate": birth.isoformat(),
    }


def immunization(patient_id: str, dose: Dose, k: int, rng: random.Random) -> dict[str, Any]:
    """The stored shape (what the CVE's hooks would fill is filled already, so they change nothing)."""
    if dose.cvx in ("208", "207") and dose.day < date(2023, 1, 1):
        origin = "imported"
    elif dose.day >= date(2024, 1, 1):
        origin = "performed"
    else:
        origin = "historical"
    body: dict[str, Any] = {
        "resourceType": "Immunization",
        "extension": [{"url": ORIGIN, "valueCoding": {"system": ORIGIN, "code": origin}}],
        "status": "completed",
        "vaccineCode": {"coding": [{"system": CVX, "code": dose.cvx}]},
        "patient": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": dose.day.isoformat(),
        "recorded": f"{dose.day.isoformat()}T12:00:00Z",
        "primarySource": origin == "performed",
    }
    if origin == "performed":
        body["lotNumber"] = f"LOT{rng.randint(1000, 9999)}"
        body["expirationDate"] = (dose.day + timedelta(days=400)).isoformat()
        body["performer"] = [{"actor": {"reference": f"Practitioner/vac{rng.randrange(VACCINATORS)}"}}]
    else:
        body["reportOrigin"] = {"coding": [{"system": REPORT_ORIGIN, "code": "record"}]}
    if origin == "imported":
        body["identifier"] = [{"system": "urn:esante:msvac", "value": f"{patient_id}-{k}"}]
    return body


def history(n: int, today: date, seed: int = 52096) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Patient ``n``'s resource and Immunizations (deterministic for ``n``, ``today`` and ``seed``)."""
    rng = random.Random(seed * 1_000_003 + n)
    birth = _birth(rng, today)
    resource = patient(n, birth, rng)
    given = doses(rng, birth, today)
    if not given:  # a record exists because something was recorded
        given = [Dose(min(today - timedelta(days=1), _months(birth, 2)), "146")]
    return resource, [immunization(resource["id"], d, k, rng) for k, d in enumerate(given)]


# ---------------------------------------------------------------------------------------------- the bulk writer
def _prepare(start: int, stop: int, today: date) -> list[tuple[dict[str, Any], Any, list[tuple[dict[str, Any], Any]]]]:
    """Patients start..stop-1 with their Immunizations and every resource's index rows (in a worker process)."""
    from esante.fhir.indexing import extract_index_rows

    out = []
    for n in range(start, stop):
        resource, immunizations = history(n, today)
        out.append((resource, extract_index_rows(resource), [(i, extract_index_rows(i)) for i in immunizations]))
    return out


def _vaccinator(k: int) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": f"vac{k}",
        "active": True,
        "name": [{"family": f"Vaccinator{k}", "given": ["Sam"]}],
        "qualification": [{"code": {"coding": [{"system": "urn:esante:hpd:profession", "code": "medecin"}]}}],
    }


async def seed(
    store: Any, patients: int, today: date, *, workers: int = 2, chunk: int = 500, progress: Any = None
) -> dict[str, float]:
    """Write ``patients`` synthetic CVE records through ``store`` (its hooks run when it has them), one transaction
    per ``chunk`` patients; the index rows are extracted in ``workers`` processes. Returns counts and seconds."""
    import asyncio
    import time
    from concurrent.futures import ProcessPoolExecutor

    database = store.database
    async with database.transaction() as conn:
        session = store.session(conn)
        for k in range(VACCINATORS):
            await session.create(_vaccinator(k), res_id=f"vac{k}")
        await session.flush()
    written = 0
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    starts = list(range(0, patients, chunk))
    with ProcessPoolExecutor(workers) as pool:
        pending = [
            loop.run_in_executor(pool, _prepare, s, min(s + chunk, patients), today) for s in starts[: workers * 2]
        ]
        queued = len(pending)
        while pending:
            prepared = await pending.pop(0)
            if queued < len(starts):
                s = starts[queued]
                pending.append(loop.run_in_executor(pool, _prepare, s, min(s + chunk, patients), today))
                queued += 1
            async with database.transaction() as conn:
                session = store.session(conn)
                await session.reserve_rids(sum(1 + len(imms) for _, _, imms in prepared))
                for resource, rows, immunizations in prepared:
                    await session.create(resource, res_id=resource["id"], client_id=False, index_rows=rows)
                    for immunization, imm_rows in immunizations:
                        await session.create(immunization, client_id=False, index_rows=imm_rows)
                        written += 1
                await session.flush()
            if progress is not None:
                progress(len(prepared))
    return {"patients": patients, "immunizations": written, "seconds": round(time.perf_counter() - started, 1)}
