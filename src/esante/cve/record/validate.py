"""What an Immunization of the CVE must hold, per origin, checked when it is written. Pure: the facts that need
the database (the patient's birth date, the schedule's CVX codes) come in a :class:`Facts`.

The checks fill what follows from the rest and refuse what contradicts it, and report every problem at once
(each an :class:`~esante.fhir.errors.Issue` naming the element), so a client fixes a record in one round trip:

1. **origin** — the extension ``urn:esante:cve:record-origin``; when it is absent it follows from
   ``primarySource`` (true → performed, false → historical); it never changes on update;
2. **GS1 / product** — the scanned DataMatrix (extension ``urn:esante:cve:gs1-datamatrix``) is parsed; its GTIN
   must be in the product table; lot, expiry, serial, product, manufacturer and CVX are filled when absent and
   must agree when present;
3. **per origin** — performed: ``primarySource`` true, no ``reportOrigin``, and unless ``not-done`` a lot number,
   an expiration date and a performer (Practitioner or PractitionerRole); historical: ``primarySource`` false,
   ``reportOrigin`` (default ``record``, the written record); imported: ``primarySource`` false, ``reportOrigin``
   (default ``record``) and an ``identifier`` of the source register;
4. **common** — the patient is ``Patient/<id>`` of the platform; ``vaccineCode`` has a CVX known to the schedule
   or the product table; ``occurrenceDateTime`` is a full date, not in the future, not before the birth date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from esante.cve.engine.model import normalize_cvx
from esante.cve.record.gs1 import Gs1Error, parse_datamatrix
from esante.cve.record.products import Product, ProductTable
from esante.cve.record.profile import (
    CVX_SYSTEM,
    GS1_URL,
    GTIN_SYSTEM,
    MVX_SYSTEM,
    ORIGIN_URL,
    PRODUCT_URL,
    REPORT_ORIGIN_SYSTEM,
    REPORT_ORIGINS,
    SERIAL_URL,
    Origin,
    codings,
    cvx_of,
    extension_value,
    extensions,
    full_date,
    origin_coding,
    origin_of,
    set_extension,
)
from esante.fhir.errors import Issue

__all__ = ["Facts", "check_record", "settle_origin"]

CLOCK_SKEW = timedelta(minutes=5)  # a client's clock a little ahead of ours is not "the future"


@dataclass(frozen=True)
class Facts:
    today: date
    now: datetime  # aware (UTC)
    birth_date: str | None  # the patient's birthDate as stored (None: not recorded)
    known_cvx: frozenset[str]  # normalised CVX codes the platform knows (schedule and product table)
    products: ProductTable


def _issue(text: str, expression: str, code: str = "processing", details: str | None = None) -> Issue:
    return Issue(code, text, expression=(expression,), details_code=details)


def settle_origin(resource: dict[str, Any], previous: dict[str, Any] | None) -> tuple[Origin | None, list[Issue]]:
    """The record's origin (written into the extension when it was inferred), or the issues that prevent it."""
    stated = extensions(resource, ORIGIN_URL)
    origin = origin_of(resource)
    issues: list[Issue] = []
    if len(stated) > 1:
        issues.append(_issue(f"the extension {ORIGIN_URL} appears more than once", "Immunization.extension"))
    elif stated and origin is None:
        choices = ", ".join(o.value for o in Origin)
        issues.append(
            _issue(
                f"the extension {ORIGIN_URL} needs a valueCoding of system {ORIGIN_URL}, code one of {choices}",
                "Immunization.extension",
                "code-invalid",
            )
        )
    elif origin is None:
        primary = resource.get("primarySource")
        if primary is True:
            origin = Origin.PERFORMED
        elif primary is False:
            origin = Origin.HISTORICAL
        else:
            issues.append(
                _issue(
                    f"the record origin is missing: extension {ORIGIN_URL} (performed, historical or imported), "
                    "or primarySource",
                    "Immunization.extension",
                    "required",
                )
            )
        if origin is not None:
            set_extension(resource, ORIGIN_URL, "valueCoding", origin_coding(origin))
    if previous is not None and origin is not None:
        before = origin_of(previous)
        if before is not None and before is not origin:
            issues.append(
                _issue(
                    f"the record origin cannot change ({before.value} → {origin.value}): enter the record in error "
                    "and create another",
                    "Immunization.extension",
                )
            )
    return origin, issues


def _product_coding(product: Product) -> dict[str, str]:
    return {"system": GTIN_SYSTEM, "code": product.gtin, "display": product.name}


def _same_cvx(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and normalize_cvx(a) == normalize_cvx(b)


def _apply_product(resource: dict[str, Any], product: Product, issues: list[Issue]) -> None:
    """Fill vaccineCode's CVX, the product and the manufacturer from the product; refuse contradictions."""
    written = extension_value(resource, PRODUCT_URL, "valueCoding")
    if isinstance(written, dict) and written.get("code") not in (None, product.gtin):
        issues.append(
            _issue(
                f"the product {written.get('code')} differs from the pack's GTIN {product.gtin}",
                "Immunization.extension",
                details="cve-product-mismatch",
            )
        )
    else:
        set_extension(resource, PRODUCT_URL, "valueCoding", _product_coding(product))
    cvx = cvx_of(resource)
    if cvx is None:
        concept = resource.get("vaccineCode") if isinstance(resource.get("vaccineCode"), dict) else {}
        assert isinstance(concept, dict)
        resource["vaccineCode"] = {
            **concept,
            "coding": [*codings(concept), {"system": CVX_SYSTEM, "code": product.cvx, "display": product.name}],
        }
    elif not _same_cvx(cvx, product.cvx):
        issues.append(
            _issue(
                f"vaccineCode CVX {cvx} is not the product's CVX {product.cvx} ({product.name})",
                "Immunization.vaccineCode",
                details="cve-product-mismatch",
            )
        )
    manufacturer = resource.get("manufacturer")
    if manufacturer is None:
        reference: dict[str, Any] = {"display": product.manufacturer}
        if product.mvx:
            reference["identifier"] = {"system": MVX_SYSTEM, "value": product.mvx}
        resource["manufacturer"] = reference
    elif isinstance(manufacturer, dict) and product.mvx:
        identifier = manufacturer.get("identifier")
        mvx = (
            identifier.get("value") if isinstance(identifier, dict) and identifier.get("system") == MVX_SYSTEM else None
        )
        if mvx is not None and mvx != product.mvx:
            issues.append(
                _issue(
                    f"manufacturer MVX {mvx} is not the product's manufacturer ({product.mvx})",
                    "Immunization.manufacturer",
                    details="cve-product-mismatch",
                )
            )


def _apply_gs1(resource: dict[str, Any], facts: Facts, issues: list[Issue]) -> None:
    raw = extension_value(resource, GS1_URL, "valueString")
    if raw is None:
        if extensions(resource, GS1_URL):
            issues.append(_issue(f"the extension {GS1_URL} needs a valueString", "Immunization.extension"))
        return
    try:
        data = parse_datamatrix(raw, facts.today)
    except Gs1Error as exc:
        issues.append(_issue(f"GS1 DataMatrix: {exc}", "Immunization.extension", "value", exc.code))
        return
    if data.gtin is None:
        issues.append(
            _issue("GS1 DataMatrix: the code has no GTIN (AI 01)", "Immunization.extension", "required", "gs1-no-gtin")
        )
        return
    product = facts.products.by_gtin(data.gtin)
    if product is None:
        issues.append(
            _issue(
                f"GS1 DataMatrix: GTIN {data.gtin} is not in the vaccine product table",
                "Immunization.extension",
                "code-invalid",
                "gs1-unknown-gtin",
            )
        )
        return
    _apply_product(resource, product, issues)
    pairs: list[tuple[str, str, str | None, str]] = [
        ("lotNumber", "lot (AI 10)", data.lot, "Immunization.lotNumber"),
        (
            "expirationDate",
            "expiry (AI 17)",
            data.expiry.isoformat() if data.expiry else None,
            "Immunization.expirationDate",
        ),
    ]
    for key, what, value, path in pairs:
        if value is None:
            continue
        written = resource.get(key)
        if written is None:
            resource[key] = value
        elif written != value:
            issues.append(
                _issue(
                    f"{key} {written!r} differs from the {what} of the GS1 code ({value})", path, details="gs1-mismatch"
                )
            )
    if data.serial is not None:
        serial = extension_value(resource, SERIAL_URL, "valueString")
        if serial is None:
            set_extension(resource, SERIAL_URL, "valueString", data.serial)
        elif serial != data.serial:
            issues.append(
                _issue(
                    f"the serial number {serial!r} differs from the serial (AI 21) of the GS1 code ({data.serial})",
                    "Immunization.extension",
                    details="gs1-mismatch",
                )
            )


def _apply_product_extension(resource: dict[str, Any], facts: Facts, issues: list[Issue]) -> None:
    """A product given without a GS1 code: it must be in the table; fill and check as for a scan."""
    if extension_value(resource, GS1_URL, "valueString") is not None:
        return
    coding = extension_value(resource, PRODUCT_URL, "valueCoding")
    if coding is None:
        return
    gtin = coding.get("code") if isinstance(coding, dict) else None
    if not isinstance(coding, dict) or coding.get("system") != GTIN_SYSTEM or not isinstance(gtin, str):
        issues.append(
            _issue(f"the extension {PRODUCT_URL} needs a valueCoding of system {GTIN_SYSTEM}", "Immunization.extension")
        )
        return
    product = facts.products.by_gtin(gtin)
    if product is None:
        issues.append(
            _issue(
                f"the product GTIN {gtin} is not in the vaccine product table",
                "Immunization.extension",
                "code-invalid",
                "gs1-unknown-gtin",
            )
        )
        return
    _apply_product(resource, product, issues)


def _report_origin(resource: dict[str, Any], issues: list[Issue]) -> None:
    concept = resource.get("reportOrigin")
    if concept is None:
        resource["reportOrigin"] = {
            "coding": [{"system": REPORT_ORIGIN_SYSTEM, "code": "record", "display": REPORT_ORIGINS["record"]}]
        }
        return
    known = [c for c in codings(concept) if c.get("system") == REPORT_ORIGIN_SYSTEM and c.get("code") in REPORT_ORIGINS]
    if not known:
        issues.append(
            _issue(
                f"reportOrigin needs a coding of {REPORT_ORIGIN_SYSTEM} ({', '.join(REPORT_ORIGINS)})",
                "Immunization.reportOrigin",
                "code-invalid",
            )
        )


def _performer_ok(resource: dict[str, Any]) -> bool:
    for performer in resource.get("performer", []) or []:
        actor = performer.get("actor") if isinstance(performer, dict) else None
        reference = actor.get("reference") if isinstance(actor, dict) else None
        if isinstance(reference, str) and reference.startswith(("Practitioner/", "PractitionerRole/")):
            return True
    return False


def _per_origin(resource: dict[str, Any], origin: Origin, issues: list[Issue]) -> None:
    primary = resource.get("primarySource")
    if origin is Origin.PERFORMED:
        if primary is False:
            issues.append(
                _issue(
                    "a performed act is reported by its primary source: primarySource must be true",
                    "Immunization.primarySource",
                )
            )
        resource["primarySource"] = True
        if resource.get("reportOrigin") is not None:
            issues.append(
                _issue(
                    "reportOrigin is for records not reported by the vaccinator: a performed act has none",
                    "Immunization.reportOrigin",
                )
            )
        if resource.get("status") == "not-done":
            return
        if not resource.get("lotNumber"):
            issues.append(
                _issue("a performed act needs the lot number (lotNumber)", "Immunization.lotNumber", "required")
            )
        if not resource.get("expirationDate"):
            issues.append(
                _issue(
                    "a performed act needs the product's expiration date (expirationDate)",
                    "Immunization.expirationDate",
                    "required",
                )
            )
        if not _performer_ok(resource):
            issues.append(
                _issue(
                    "a performed act needs its vaccinator: performer.actor referencing a Practitioner or "
                    "PractitionerRole",
                    "Immunization.performer",
                    "required",
                )
            )
        return
    if primary is True:
        issues.append(
            _issue(
                f"an {origin.value} record is not reported by the vaccinator who gave it: primarySource must be false",
                "Immunization.primarySource",
            )
        )
    resource["primarySource"] = False
    _report_origin(resource, issues)
    if origin is Origin.IMPORTED:
        identifiers = [
            i
            for i in resource.get("identifier", []) or []
            if isinstance(i, dict) and isinstance(i.get("system"), str) and isinstance(i.get("value"), str)
        ]
        if not identifiers:
            issues.append(
                _issue(
                    "an imported record needs the source register's identifier (identifier with system and value)",
                    "Immunization.identifier",
                    "required",
                )
            )


def _before_birth(occurrence: date, birth: str) -> bool:
    """Whether ``occurrence`` precedes a (possibly partial) birth date."""
    if len(birth) >= 10:
        born = full_date(birth)
        return born is not None and occurrence < born
    if len(birth) == 7:
        return occurrence.isoformat()[:7] < birth
    if len(birth) == 4:
        return occurrence.isoformat()[:4] < birth
    return False


def _common(resource: dict[str, Any], facts: Facts, issues: list[Issue]) -> None:
    cvx = cvx_of(resource)
    if cvx is None:
        issues.append(_issue(f"vaccineCode needs a CVX coding ({CVX_SYSTEM})", "Immunization.vaccineCode", "required"))
    elif normalize_cvx(cvx) not in facts.known_cvx:
        issues.append(
            _issue(
                f"vaccineCode CVX {cvx} is not a vaccine of the schedule nor of the product table",
                "Immunization.vaccineCode",
                "code-invalid",
            )
        )
    value = resource.get("occurrenceDateTime")
    occurrence = full_date(value)
    if occurrence is None:
        issues.append(
            _issue(
                "occurrenceDateTime with a full date (YYYY-MM-DD) is required: the recommendations count days",
                "Immunization.occurrenceDateTime",
                "required",
            )
        )
        return
    if occurrence > facts.today or (len(str(value)) > 10 and _after_now(str(value), facts.now)):
        issues.append(
            _issue("the vaccination date is in the future", "Immunization.occurrenceDateTime", "business-rule")
        )
    if facts.birth_date and _before_birth(occurrence, facts.birth_date):
        issues.append(
            _issue(
                "the vaccination date is before the patient's birth date",
                "Immunization.occurrenceDateTime",
                "business-rule",
            )
        )
    expiry = resource.get("expirationDate")
    if expiry is not None and full_date(expiry) is None:
        issues.append(_issue("expirationDate must be a full date", "Immunization.expirationDate", "value"))


def _after_now(value: str, now: datetime) -> bool:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment > now + CLOCK_SKEW


def check_record(resource: dict[str, Any], origin: Origin, facts: Facts) -> list[Issue]:
    """Fill and check ``resource`` (changed in place); the issues found (empty: it may be stored)."""
    issues: list[Issue] = []
    _apply_gs1(resource, facts, issues)
    _apply_product_extension(resource, facts, issues)
    _per_origin(resource, origin, issues)
    _common(resource, facts, issues)
    return issues
