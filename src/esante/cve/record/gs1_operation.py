"""``Immunization/$parse-gs1``: the scanned GS1 DataMatrix of a vaccine pack → a draft Immunization (not stored).

    POST [base]/Immunization/$parse-gs1      (GET with ?datamatrix=… also works; the GS character as %1D)
    in:   datamatrix  string    1..1   the scanned text (raw with GS separators, or the bracketed form)
          patient     Reference 0..1   copied into the draft
          occurrence  dateTime  0..1   copied into the draft (occurrenceDateTime)
    out:  immunization  Immunization   the draft: origin performed, primarySource true, vaccineCode (CVX of the
                                       product), the product (GTIN), manufacturer (MVX), lotNumber, expirationDate,
                                       serial number, route (the product's usual one), the scanned text
          gtin, lot, serial (string), expiry (date), product (string), expired (boolean: expiry before today),
          gtinStatus (code: illustrative | verified, the product table's status of that GTIN)

Who: whoever may create Immunizations (``requires`` c): authorised vaccinators, establishment software.
Errors: an unreadable code (syntax, unknown AI, bad check digit, impossible date, missing GS) or one without a GTIN
→ 400; a GTIN the product table does not know, or a pack code without lot (AI 10) or expiry (AI 17) → 422. The
details code (``gs1-…``) names the rule.
"""

from __future__ import annotations

from typing import Any

from esante.cve.context import CveContext
from esante.cve.parameters import Param, read_parameters
from esante.cve.record.gs1 import Gs1Data, Gs1Error, parse_datamatrix
from esante.cve.record.products import Product
from esante.cve.record.profile import (
    CVX_SYSTEM,
    GS1_URL,
    GTIN_SYSTEM,
    MVX_SYSTEM,
    ORIGIN_URL,
    PRODUCT_URL,
    SERIAL_URL,
    Origin,
    origin_coding,
)
from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, Issue
from esante.fhir.operations import OperationCall, OperationDefinition

__all__ = ["draft_immunization", "parse_gs1_operation"]

ROUTE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
ROUTES = {"IM": "Injection, intramuscular", "SQ": "Injection, subcutaneous", "PO": "Swallow, oral"}

_SPECS = {
    "datamatrix": Param(("valueString",), required=True),
    "patient": Param(("valueReference",)),
    "occurrence": Param(("valueDateTime", "valueDate")),
}


def draft_immunization(data: Gs1Data, product: Product, raw: str) -> dict[str, Any]:
    """The Immunization a vaccinator completes (patient, date, site, dose) after scanning the pack. Pure."""
    draft: dict[str, Any] = {
        "resourceType": "Immunization",
        "extension": [
            {"url": ORIGIN_URL, "valueCoding": origin_coding(Origin.PERFORMED)},
            {"url": PRODUCT_URL, "valueCoding": {"system": GTIN_SYSTEM, "code": product.gtin, "display": product.name}},
            {"url": GS1_URL, "valueString": raw},
        ],
        "status": "completed",
        "vaccineCode": {
            "coding": [{"system": CVX_SYSTEM, "code": product.cvx, "display": product.name}],
            "text": product.name,
        },
        "primarySource": True,
    }
    if data.serial is not None:
        draft["extension"].append({"url": SERIAL_URL, "valueString": data.serial})
    manufacturer: dict[str, Any] = {"display": product.manufacturer}
    if product.mvx:
        manufacturer["identifier"] = {"system": MVX_SYSTEM, "value": product.mvx}
    draft["manufacturer"] = manufacturer
    if data.lot is not None:
        draft["lotNumber"] = data.lot
    if data.expiry is not None:
        draft["expirationDate"] = data.expiry.isoformat()
    if product.route in ROUTES:
        draft["route"] = {"coding": [{"system": ROUTE_SYSTEM, "code": product.route, "display": ROUTES[product.route]}]}
    return draft


def _error(status: int, text: str, code: str, issue: str = "value") -> FhirError:
    return FhirError(status, [Issue(issue, text, expression=("datamatrix",), details_code=code)])


def parse_gs1_operation(context: CveContext) -> OperationDefinition:
    async def handler(call: OperationCall) -> Outcome:
        found = read_parameters(call, _SPECS)
        raw = str(found["datamatrix"][0][1])
        today = context.today()
        try:
            data = parse_datamatrix(raw, today)
        except Gs1Error as exc:
            raise _error(400, f"GS1 DataMatrix: {exc}", exc.code) from exc
        if data.gtin is None:
            raise _error(400, "GS1 DataMatrix: the code has no GTIN (AI 01)", "gs1-no-gtin", "required")
        product = context.products.by_gtin(data.gtin)
        if product is None:
            raise _error(
                422,
                f"GS1 DataMatrix: GTIN {data.gtin} is not in the vaccine product table",
                "gs1-unknown-gtin",
                "code-invalid",
            )
        missing = [
            what for what, value in (("lot (AI 10)", data.lot), ("expiry (AI 17)", data.expiry)) if value is None
        ]
        if missing:
            raise _error(
                422,
                f"GS1 DataMatrix: a vaccine pack's code carries its {' and '.join(missing)}; this one does not",
                "gs1-missing-ai",
                "required",
            )
        draft = draft_immunization(data, product, raw)
        if found["patient"]:
            draft["patient"] = found["patient"][0][1]
        if found["occurrence"]:
            draft["occurrenceDateTime"] = found["occurrence"][0][1]
        out: list[dict[str, Any]] = [
            {"name": "immunization", "resource": draft},
            {"name": "gtin", "valueString": data.gtin},
            {"name": "product", "valueString": product.name},
            {"name": "gtinStatus", "valueCode": product.gtin_status},
        ]
        if data.lot is not None:
            out.append({"name": "lot", "valueString": data.lot})
        if data.expiry is not None:
            out.append({"name": "expiry", "valueDate": data.expiry.isoformat()})
            out.append({"name": "expired", "valueBoolean": data.expiry < today})
        if data.serial is not None:
            out.append({"name": "serial", "valueString": data.serial})
        return Outcome(200, {"resourceType": "Parameters", "parameter": out})

    return OperationDefinition(
        name="parse-gs1",
        handler=handler,
        type_level=True,
        resource_types=frozenset({"Immunization"}),
        requires="c",
        documentation="The scanned GS1 DataMatrix of a vaccine pack (datamatrix) → a draft Immunization with the "
        "product, CVX, manufacturer, lot, expiry and serial (not stored).",
    )
