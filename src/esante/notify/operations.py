"""The notifications' FHIR operations: marking read or unread, and the recipient's e-mail choices.

- ``POST Communication/{id}/$mark-read`` (and ``$mark-unread``): the notification is read through the policy seam
  (invisible → 404, as for a read), then only a **recipient** may change it: the patient it is addressed to (or
  their DSP assistant, who acts for them), the professional it is addressed to (token ``fhirUser``). Anyone else
  who may see it (e.g. the patient who is the subject of a professional's notification) gets 403. The change is
  one element, ``received`` (the reading time; the first one is kept), written as a new version by the
  notification service itself — patients have no general write right, and a PATCH would be a general write.
  Marking an already read notification read again changes nothing (200 with the current version).
- ``POST Communication/$mark-read`` (type level): every unread notification addressed to the caller (1,000 at most
  per call), found by a search through the policy seam; answers a Parameters with ``marked``.
- ``GET|POST Patient/{id}/$notification-preferences`` (and ``Practitioner/{id}/…``): whether notifications are
  e-mailed, for every kind and kind by kind. Read by the person (a patient's assistant may read them too);
  changed by the person only (the e-mail goes to the account holder's address).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from esante.fhir.context import Outcome, RequestContext
from esante.fhir.errors import bad_request, forbidden, unprocessable
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.fhir.service import FhirService
from esante.notify import outbox
from esante.notify.kinds import KIND_SYSTEM, known_kinds
from esante.notify.model import kind_of, recipients, with_read

MARK_ALL_LIMIT = 1000


def caller_person(ctx: RequestContext) -> str | None:
    """The recipient reference the caller speaks as: a patient's (or assistant's) Patient, a professional's
    Practitioner (token ``fhirUser``); None for other callers."""
    caller = ctx.caller
    if caller.kind in ("patient", "assistant"):
        person = caller.attributes.get("person_id")
        return f"Patient/{person}" if isinstance(person, str) and person else None
    if caller.kind == "professional":
        fhir_user = caller.attributes.get("fhir_user")
        if isinstance(fhir_user, str) and fhir_user.startswith("Practitioner/"):
            return fhir_user
    return None


class MarkRead:
    def __init__(self, service: FhirService, read: bool, clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.read = read
        self.clock = clock

    async def __call__(self, call: OperationCall) -> Outcome:
        if call.resource_id is None:
            return await self._all(call)
        current = (await self.service.read(call.session, call.ctx, "Communication", call.resource_id)).stored
        assert current is not None and current.content is not None
        resource = orjson.loads(current.content)
        if kind_of(resource) is None:
            raise unprocessable(
                f"Communication/{call.resource_id} is not an eSanté notification", expression="Communication.category"
            )
        person = caller_person(call.ctx)
        if person is None or person not in recipients(resource):
            raise forbidden(f"only a recipient of Communication/{call.resource_id} may mark it read or unread")
        updated = with_read(resource, self.clock() if self.read else None)
        if updated is None:
            return self.service.read_outcome(current, content_location=self.service.location(call.ctx, current))
        stored = await call.session.update(updated, current, method="PATCH")
        await call.session.flush()
        outcome = self.service.read_outcome(stored, content_location=self.service.location(call.ctx, stored))
        outcome.touched = [stored]
        return outcome

    async def _all(self, call: OperationCall) -> Outcome:
        """Mark read every unread notification addressed to the caller (a "mark all as read" button)."""
        person = caller_person(call.ctx)
        if person is None:
            raise forbidden("only a patient, their assistant or a professional has notifications to mark read")
        query = [
            ("recipient", person),
            ("category", f"{KIND_SYSTEM}|"),
            ("received:missing", "true"),
            ("_count", str(MARK_ALL_LIMIT)),
        ]
        found = await self.service.search(call.session, call.ctx, "Communication", query)
        body = found.body  # a Bundle dict whose resources are the stored bytes (orjson.Fragment), or bytes
        bundle = orjson.loads(body if isinstance(body, bytes | bytearray) else orjson.dumps(body))
        now = self.clock()
        marked = []
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") or {}
            if entry.get("search", {}).get("mode", "match") != "match" or "id" not in resource:
                continue
            current = await call.session.read("Communication", resource["id"])
            if current is None or current.deleted or current.content is None:
                continue
            updated = with_read(orjson.loads(current.content), now)
            if updated is not None:
                marked.append(await call.session.update(updated, current, method="PATCH"))
        await call.session.flush()
        body = {"resourceType": "Parameters", "parameter": [{"name": "marked", "valueInteger": len(marked)}]}
        return Outcome(200, body, touched=marked)


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be a valueBoolean", expression=name)
    return value


class Preferences:
    """Reads and records a recipient's e-mail choices (``notify_preference``)."""

    def __init__(self, service: FhirService, default: bool, clock: Callable[[], float]) -> None:
        self.service = service
        self.default = default
        self.clock = clock

    async def __call__(self, call: OperationCall) -> Outcome:
        assert call.resource_type is not None and call.resource_id is not None
        target = f"{call.resource_type}/{call.resource_id}"
        shown = (await self.service.read(call.session, call.ctx, call.resource_type, call.resource_id)).stored
        assert shown is not None
        person = caller_person(call.ctx)
        if person != target:
            raise forbidden(f"only {target} may see or change their notification preferences")
        if call.method == "POST":
            if call.ctx.caller.kind == "assistant":
                raise forbidden("an assistant may read, not change, the patient's notification preferences")
            changes = self._changes(call.parameters)
            now = int(self.clock())
            for kind, email in changes:
                await outbox.set_choice(call.session.conn, target, kind, email, now)
        choices = await outbox.email_choices(call.session.conn, [target])
        addresses = await outbox.addresses(call.session.conn, [target])
        address = addresses.get(target)
        body = self._parameters(target, choices, address)
        return Outcome(200, body, touched=[shown])

    def _changes(self, parameters: Any) -> list[tuple[str, bool | None]]:
        if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
            raise bad_request("the body must be a Parameters resource", expression="Parameters")
        kinds = known_kinds()
        changes: list[tuple[str, bool | None]] = []
        for index, parameter in enumerate(parameters.get("parameter") or []):
            where = f"Parameters.parameter[{index}]"
            name = parameter.get("name") if isinstance(parameter, dict) else None
            if name == "email":
                changes.append((outbox.ALL_KINDS, _boolean(parameter.get("valueBoolean"), f"{where}.valueBoolean")))
            elif name == "kind":
                parts = {p.get("name"): p for p in parameter.get("part") or [] if isinstance(p, dict)}
                code = (parts.get("code") or {}).get("valueCode")
                if not isinstance(code, str) or code not in kinds:
                    raise bad_request(
                        f"{where}: part 'code' must be a valueCode naming a kind ({', '.join(sorted(kinds))})",
                        expression=f"{where}.part",
                    )
                email_part = parts.get("email")
                email = None if email_part is None else _boolean(email_part.get("valueBoolean"), f"{where}.part")
                changes.append((code, email))
            else:
                raise bad_request(f"{where}: unknown parameter {name!r} (email, kind)", expression=where)
        if not changes:
            raise bad_request("nothing to change: give 'email' and/or 'kind' parameters", expression="Parameters")
        return changes

    def _parameters(
        self, target: str, choices: dict[tuple[str, str], bool], address: outbox.Address | None
    ) -> dict[str, Any]:
        every = outbox.wants_email(choices, target, "*", self.default)
        parameter: list[dict[str, Any]] = [
            {"name": "email", "valueBoolean": every},
            {
                "name": "email-address-on-file",
                "valueBoolean": address is not None and address.account_status == "active" and bool(address.email),
            },
        ]
        for code in sorted(known_kinds()):
            parameter.append(
                {
                    "name": "kind",
                    "part": [
                        {"name": "code", "valueCode": code},
                        {"name": "email", "valueBoolean": outbox.wants_email(choices, target, code, self.default)},
                        {"name": "own-choice", "valueBoolean": (target, code) in choices},
                    ],
                }
            )
        return {"resourceType": "Parameters", "parameter": parameter}


def notify_operations(
    service: FhirService, email_default: bool, clock: Callable[[], float] = time.time
) -> list[OperationDefinition]:
    preferences = Preferences(service, email_default, clock)
    return [
        OperationDefinition(
            name="mark-read",
            handler=MarkRead(service, True, clock),
            instance=True,
            type_level=True,
            resource_types=frozenset({"Communication"}),
            affects_state=True,
            requires="r",
            documentation="Mark a notification read (its recipient only; sets Communication.received); at type "
            "level, every unread notification addressed to the caller. docs/notifications.md",
        ),
        OperationDefinition(
            name="mark-unread",
            handler=MarkRead(service, False, clock),
            instance=True,
            resource_types=frozenset({"Communication"}),
            affects_state=True,
            requires="r",
            documentation="Mark a notification unread again (its recipient only). docs/notifications.md",
        ),
        OperationDefinition(
            name="notification-preferences",
            handler=preferences,
            instance=True,
            resource_types=frozenset({"Patient", "Practitioner"}),
            requires="r",
            documentation="GET: whether the person's notifications are e-mailed (every kind, kind by kind); "
            "POST Parameters email / kind(code, email): change it (the person only). docs/notifications.md",
        ),
    ]
