"""``esante synth population``: the files it writes, determinism, and clear refusals of bad options."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
from typer.testing import CliRunner

from esante.cli import app
from esante.identifiers.matricule import parse_matricule
from esante.synth.files import TRUTH_COLUMNS


def run(tmp_path: Path, name: str, *extra: str) -> tuple[Path, Path, Path]:
    out, feeds, truth = tmp_path / f"{name}.ndjson", tmp_path / f"{name}-feeds.ndjson", tmp_path / f"{name}.csv"
    args = ["synth", "population", "--count", "1500", "--seed", "9", "--out", str(out)]
    args += ["--feeds", "800", "--feeds-out", str(feeds), "--truth-out", str(truth), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1500 certified identities" in result.output and "identities/s" in result.output
    return out, feeds, truth


def test_writes_certified_identities_feeds_and_truth(tmp_path: Path) -> None:
    out, feeds, truth = run(tmp_path, "a")
    certified = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(certified) == 1500
    assert all(parse_matricule(p["identifier"][0]["value"]) for p in certified)
    records = [orjson.loads(line) for line in feeds.read_bytes().splitlines()]
    with truth.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == TRUTH_COLUMNS
    assert len(rows) == len(records) >= 800
    assert sum(row["kind"] == "primary" for row in rows) == 800
    for number, (row, record) in enumerate(zip(rows, records, strict=True), start=1):
        assert row["record"] == str(number)
        assert record["identifier"][0] == {"use": "usual", "system": row["domain"], "value": row["local_id"]}
        if row["kind"] != "unregistered":  # line n of the certified file is person P{n-1}
            person = certified[int(row["person_id"][1:])]
            assert person["identifier"][0]["value"] == row["matricule"]


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    first = run(tmp_path, "a")
    second = run(tmp_path, "b")
    for one, two in zip(first, second, strict=True):
        assert one.read_bytes() == two.read_bytes()


def test_population_only(tmp_path: Path) -> None:
    out = tmp_path / "only.ndjson"
    result = CliRunner().invoke(app, ["synth", "population", "--count", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_bytes().splitlines()) == 10


def test_bad_options_are_refused_with_the_reason(tmp_path: Path) -> None:
    out = str(tmp_path / "x.ndjson")
    result = CliRunner().invoke(app, ["synth", "population", "--count", "10", "--out", out, "--feeds", "5"])
    assert result.exit_code == 2 and "--feeds needs --feeds-out and --truth-out" in result.output
    feeds, truth = str(tmp_path / "f.ndjson"), str(tmp_path / "t.csv")
    args = ["synth", "population", "--count", "10", "--out", out, "--feeds", "31", "--feeds-out", feeds]
    result = CliRunner().invoke(app, [*args, "--truth-out", truth])
    assert result.exit_code == 2 and "at most 30 records" in result.output
    result = CliRunner().invoke(app, ["synth", "population", "--count", "0", "--out", out])
    assert result.exit_code == 2
    assert not Path(out).exists()
