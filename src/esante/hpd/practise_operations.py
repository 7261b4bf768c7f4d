"""The HPD administrators' operations on a professional's right to practise (POST, Parameters in and out):

    POST /fhir/Practitioner/{id}/$hpd-suspend    reason (string, required), effective (date, default today)
    POST /fhir/Practitioner/{id}/$hpd-withdraw   same
    POST /fhir/Practitioner/{id}/$hpd-restore    same

Only agency staff with the ``hpd-administrator`` role may invoke them (403 otherwise, before anything is looked
up). The change and its cascade run in the request's transaction (:func:`hpd.practise.change_right_to_practise`):
a refusal — 400 bad input, 404 unknown Practitioner, 409 a status that cannot take this change — leaves
everything as it was. The answer names what changed: the new and previous status, the roles made inactive or
active again, the accounts whose grants were revoked, the AuditEvent.
"""

from __future__ import annotations

from typing import Any

from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, Issue, bad_request
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.hpd.model import Status
from esante.hpd.practise import change_right_to_practise
from esante.hpd.practise_model import Agent, PractiseChange, PractiseError, Source
from esante.security.policy import Caller

HPD_ADMINISTRATOR = "hpd-administrator"
TARGETS: dict[str, Status] = {
    "hpd-suspend": Status.SUSPENDED,
    "hpd-withdraw": Status.WITHDRAWN,
    "hpd-restore": Status.ACTIVE,
}
_PARAMETERS = ("reason", "effective")
_ISSUE_CODES = {400: "invalid", 404: "not-found", 409: "business-rule"}


def check_administrator(caller: Caller, operation: str) -> Agent:
    """The deciding HPD administrator (403 for anyone else), as recorded in the history and the audit trail."""
    roles = caller.attributes.get("roles") or ()
    if caller.kind != "staff" or HPD_ADMINISTRATOR not in roles:
        raise FhirError(
            403,
            [Issue("forbidden", f"${operation} is reserved to HPD administrators (staff role {HPD_ADMINISTRATOR})")],
        )
    account = caller.attributes.get("account_id") or caller.subject or "unknown"
    display = caller.attributes.get("subject_name")
    return Agent(str(account), "staff", str(display) if display else None)


def read_parameters(parameters: Any) -> tuple[str | None, str | None]:
    """(reason, effective) from the input Parameters, strictly: anything unknown, repeated or mistyped is a 400."""
    if parameters is None:
        return None, None
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise bad_request("the body must be a Parameters resource (reason, effective)")
    entries = parameters.get("parameter", [])
    if not isinstance(entries, list):
        raise bad_request("Parameters.parameter must be a list", expression="Parameters.parameter")
    found: dict[str, str] = {}
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if name not in _PARAMETERS:
            raise bad_request(
                f"unknown parameter {name!r} (expected: {', '.join(_PARAMETERS)})", expression="Parameters.parameter"
            )
        assert isinstance(name, str) and isinstance(entry, dict)
        if name in found:
            raise bad_request(f"parameter {name} is given more than once", expression=name)
        values = [key for key in entry if key.startswith("value") or key in ("resource", "part")]
        allowed = ("valueString",) if name == "reason" else ("valueDate", "valueString")
        if len(values) != 1 or values[0] not in allowed or not isinstance(entry[values[0]], str):
            raise bad_request(f"{name} must be a {' or '.join(allowed)}", expression=name)
        found[name] = entry[values[0]]
    return found.get("reason"), found.get("effective")


def _answer(change: PractiseChange) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": "practitioner", "valueReference": {"reference": f"Practitioner/{change.practitioner_id}"}},
        {"name": "status", "valueCode": change.status.value},
        {"name": "previous", "valueCode": change.previous.value},
        {"name": "effective", "valueDate": change.effective},
    ]
    parameters += [
        {"name": "role", "valueReference": {"reference": f"PractitionerRole/{role}"}} for role in change.roles
    ]
    parameters.append({"name": "accountsRevoked", "valueInteger": len(change.accounts)})
    parameters.append({"name": "refreshTokensRevoked", "valueInteger": change.refresh_tokens_revoked})
    if change.audit_event:
        parameters.append({"name": "auditEvent", "valueReference": {"reference": f"AuditEvent/{change.audit_event}"}})
    return {"resourceType": "Parameters", "parameter": parameters}


def _operation(name: str, target: Status) -> OperationDefinition:
    async def handler(call: OperationCall) -> Outcome:
        agent = check_administrator(call.ctx.caller, name)
        assert call.resource_id is not None
        reason, effective = read_parameters(call.parameters)
        try:
            change = await change_right_to_practise(
                call.session,
                call.resource_id,
                target,
                reason=reason or "",
                effective=effective,
                source=Source.ADMINISTRATOR,
                agent=agent,
                server=call.ctx.base_url,
                request_id=call.ctx.request_id or None,
                client_address=call.ctx.client_address,
            )
        except PractiseError as failure:
            expression = failure.expression or ("reason" if failure.code.endswith("reason") else None)
            if failure.code.endswith("date"):
                expression = "effective"
            issue = Issue(
                _ISSUE_CODES.get(failure.status, "processing"),
                failure.message,
                expression=(expression,) if expression else (),
                details_code=failure.code,
            )
            raise FhirError(failure.status, [issue]) from failure
        practitioner = await call.session.read("Practitioner", call.resource_id)
        return Outcome(200, _answer(change), touched=[practitioner] if practitioner is not None else None)

    verb = {"hpd-suspend": "Suspend", "hpd-withdraw": "Withdraw", "hpd-restore": "Restore"}[name]
    return OperationDefinition(
        name=name,
        handler=handler,
        instance=True,
        resource_types=frozenset({"Practitioner"}),
        affects_state=True,
        requires="u",
        documentation=(
            f"{verb} a professional's right to practise (HPD administrators): Parameters reason (required), "
            "effective (date, default today). The Practitioner and their roles follow; a loss revokes their grants."
        ),
    )


def practise_operations() -> list[OperationDefinition]:
    return [_operation(name, target) for name, target in TARGETS.items()]
