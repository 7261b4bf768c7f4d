"""The pure parts: requests, the Communication, reading, keys, the retry schedule, the e-mail's text and kinds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esante.fhir.validation import validate_resource
from esante.notify.email import EmailSettings, compose, valid_address
from esante.notify.kinds import KindError, catalogue, known_kinds, packaged, parse_catalogue
from esante.notify.model import (
    NotificationError,
    NotificationRequest,
    RetryPolicy,
    check_request,
    communication,
    kind_of,
    make_key,
    recipients,
    with_read,
)

SECRET = "Discharge letter: HIV viral load, Dr Muller, CHL"


def _request(**changes: object) -> NotificationRequest:
    values: dict[str, object] = {
        "recipient": "Patient/p1",
        "kind": "dsp-new-document",
        "text": SECRET,
        "key": "dsp-new-document:Patient/p1:DocumentReference/d1",
        "about": ("DocumentReference/d1",),
    }
    values.update(changes)
    return NotificationRequest(**values)  # type: ignore[arg-type]


def test_the_stored_notification_is_a_valid_r4_communication() -> None:
    request = _request()
    resource = communication(request, check_request(request, known_kinds()), 1_800_000_000.25)
    validate_resource(resource)
    assert resource["subject"] == {"reference": "Patient/p1"}
    assert resource["recipient"] == [{"reference": "Patient/p1"}]
    assert resource["about"] == [{"reference": "DocumentReference/d1"}]
    assert resource["payload"] == [{"contentString": SECRET}]
    assert resource["sent"] == "2027-01-15T08:00:00.250Z"
    assert resource["category"][0]["coding"][0]["code"] == "dsp-new-document"
    assert resource["identifier"][0]["value"] == request.key
    assert resource["priority"] == "routine"
    assert "received" not in resource
    assert kind_of(resource) == "dsp-new-document" and recipients(resource) == ["Patient/p1"]


def test_a_professional_notification_about_a_patient() -> None:
    request = _request(recipient="Practitioner/dr1", subject="Patient/p1", kind="dsp-access-granted")
    resource = communication(request, check_request(request, known_kinds()), 0)
    validate_resource(resource)
    assert resource["subject"] == {"reference": "Patient/p1"}
    assert resource["recipient"] == [{"reference": "Practitioner/dr1"}]
    emergency = _request(kind="dsp-emergency-access")
    assert communication(emergency, check_request(emergency, known_kinds()), 0)["priority"] == "urgent"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"recipient": "Organization/o1"}, "recipient must be"),
        ({"recipient": "p1"}, "recipient must be"),
        ({"kind": "dsp-gossip"}, "unknown notification kind"),
        ({"text": "  "}, "text must be"),
        ({"text": "x" * 2001}, "longer than"),
        ({"key": ""}, "key must be"),
        ({"key": "k" * 256}, "key must be"),
        ({"subject": "Practitioner/x"}, "subject must be"),
        ({"about": ("not a reference",)}, "about must hold"),
        ({"priority": "whenever"}, "priority must be"),
    ],
)
def test_malformed_requests_are_refused_naming_the_problem(changes: dict[str, object], message: str) -> None:
    with pytest.raises(NotificationError, match=message):
        check_request(_request(**changes), known_kinds())


def test_reading_sets_received_once_and_unread_removes_it() -> None:
    request = _request()
    resource = communication(request, check_request(request, known_kinds()), 0)
    resource["meta"] = {"versionId": "1"}
    read = with_read(resource, 60)
    assert read is not None and read["received"] == "1970-01-01T00:01:00.000Z"
    assert list(read).index("received") == list(read).index("sent") + 1
    assert "meta" not in read
    validate_resource(read)
    assert with_read(read, 120) is None, "the first reading time is kept"
    unread = with_read(read, None)
    assert unread is not None and "received" not in unread
    assert with_read(unread, None) is None


def test_keys_are_unambiguous_and_bounded() -> None:
    assert make_key("cve-reminder", "Patient/p1", "MMR", 2) == "cve-reminder:Patient/p1:MMR:2"
    assert make_key("k", "a:b", "c") != make_key("k", "a", "b:c")
    long = make_key("cve-reminder", "x" * 400)
    assert len(long) == 255 and long != make_key("cve-reminder", "x" * 401)


def test_retry_schedule_doubles_up_to_the_cap_and_ends() -> None:
    policy = RetryPolicy(max_attempts=4, base_seconds=60, max_seconds=200)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [60, 120, 200, 200]
    assert not policy.exhausted(3) and policy.exhausted(4)


def _email_settings() -> EmailSettings:
    return EmailSettings("eSante <no-reply@esante.lu>", "https://portal.esante.lu", ("fr", "de", "en"))


def test_the_email_carries_no_health_data_only_the_kind_text() -> None:
    message = compose(
        packaged(), _email_settings(), notification_id="n-1", kind="dsp-new-document", to="a@b.lu", date=0
    )
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode("utf-8")
    assert "https://portal.esante.lu" in body
    assert "nouveau document" in body.lower() and "neues dokument" in body.lower() and "new document" in body.lower()
    for word in ("HIV", "Muller", "CHL", "p1", "d1", "DocumentReference"):
        assert word not in body and word not in str(message["Subject"])
    assert message["Message-ID"] == "<n-1@esante.lu>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["To"] == "a@b.lu"


def test_a_non_ascii_sender_name_is_encoded() -> None:
    settings = EmailSettings("eSanté Luxembourg <no-reply@esante.lu>", "https://x", ("de",))
    message = compose(packaged(), settings, notification_id="n", kind="cve-reminder", to="a@b.lu", date=0)
    assert message["From"].isascii() and message["From"].endswith("<no-reply@esante.lu>")
    assert message.as_string().isascii()


def test_every_packaged_kind_has_text_in_three_languages() -> None:
    for code, kind in packaged().kinds.items():
        assert set(kind.email) >= {"fr", "de", "en"}, code


def test_an_operator_file_replaces_texts_and_bad_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "texts.json"
    french = {"fr": {"subject": "Rappel", "body": "Voir {portal_url}"}}
    path.write_text(json.dumps({"kinds": {"cve-reminder": {"display": "Rappel", "email": french}}}))
    texts = catalogue(str(path))
    assert texts.kinds["cve-reminder"].email["fr"].body == "Voir {portal_url}"
    assert texts.kinds["cve-reminder"].email["en"].subject, "other languages stay packaged"
    bad = {"kinds": {"cve-reminder": {"email": {"fr": {"subject": "x", "body": "Dear {patient_name}"}}}}}
    path.write_text(json.dumps(bad))
    with pytest.raises(KindError, match="placeholder"):
        catalogue(str(path))
    path.write_text(json.dumps({"kinds": {"unknown-kind": {"email": {}}}}))
    with pytest.raises(KindError, match="unknown kind"):
        catalogue(str(path))
    with pytest.raises(KindError, match="subject"):
        parse_catalogue({"kinds": {"k1": {"email": {"fr": {"subject": "a\nb", "body": ""}}}}})
    with pytest.raises(KindError, match="cannot be read"):
        catalogue(str(tmp_path / "missing.json"))


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("a@b.lu", True),
        ("a.b+c@x.example.org", True),
        ("a@b", False),
        ("a b@c.lu", False),
        ("", False),
        ("a@b.lu, c@d.lu", False),
        ("a@b.lu\r\nBcc: x@y.lu", False),
    ],
)
def test_addresses_from_accounts_are_checked(address: str, valid: bool) -> None:
    assert valid_address(address) is valid
