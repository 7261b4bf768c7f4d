"""The import drives the right-to-practise cascade (``DirectoryImporter._apply_status`` calls
``change_right_to_practise``): a suspension by delta makes the roles inactive, re-importing it changes nothing, a
restoration brings back the roles that had not ended, and a transition the status cannot take (withdrawn ->
suspended) is a rejected line carrying the cascade's reason."""

from __future__ import annotations

from pathlib import Path

from esante.app import Platform
from tests.hpd.directory_support import current, gp, hospital, nurse, write_csv
from tests.hpd.test_directory_import import run


async def test_the_import_drives_the_cascade(platform: Platform, tmp_path: Path) -> None:
    await run(platform, write_csv(tmp_path / "full.csv", [gp(), hospital(role_until="2025-01-31"), nurse()]))
    suspended = {"status": "suspended", "status_date": "2025-05-20", "status_reason": "suspension disciplinaire"}
    result = await run(platform, write_csv(tmp_path / "s.csv", [gp(**suspended)]))
    assert result.rejected == [] and result.status_changes == 1
    roles = await current(platform, "PractitionerRole")
    assert roles["MED-2010-00042/CAB00001/CAB00001-S1"]["active"] is False
    assert (await current(platform, "Practitioner"))["MED-2010-00042"]["active"] is False
    again = await run(platform, write_csv(tmp_path / "s.csv", [gp(**suspended)]))
    assert again.rejected == [] and not again.updated and again.status_changes == 0
    restored = await run(platform, write_csv(tmp_path / "r.csv", [gp(status_date="2025-05-30")]))
    assert restored.rejected == [] and restored.status_changes == 1
    roles = await current(platform, "PractitionerRole")
    assert roles["MED-2010-00042/CAB00001/CAB00001-S1"]["active"] is True
    assert roles["MED-2010-00042/HOSP01/HOSP01-S1"]["active"] is False, "ended: stays inactive"
    assert (await current(platform, "Practitioner"))["MED-2010-00042"]["active"] is True
    withdrawn = {"status": "withdrawn", "status_date": "2025-05-31", "status_reason": "retrait"}
    assert (await run(platform, write_csv(tmp_path / "w.csv", [nurse(**withdrawn)]))).rejected == []
    refused = {"status": "suspended", "status_date": "2025-06-01", "status_reason": "enquête"}
    result = await run(platform, write_csv(tmp_path / "x.csv", [nurse(**refused)]))
    assert [(r.line, "cannot become suspended" in r.reason) for r in result.rejected] == [(2, True)]
    assert (await current(platform, "Practitioner"))["INF-2015-00007"]["active"] is False
