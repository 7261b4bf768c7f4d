"""Load a schedule written in the CDC CDSi supporting-data XML format (the edge: all file I/O is here).

A folder holds one ``AntigenSupportingData*.xml`` per antigen and one ``ScheduleSupportingData.xml``. Each file
is validated against the CDC XSDs (shipped in ``xsd/`` so that a folder without them is still checked), then
turned into the immutable objects of model.py. Any problem — unreadable XML, a schema violation, an age that
does not parse, a series that names an unknown vaccine group — raises :class:`SupportingDataError` naming the
file and the element, so a bad schedule never loads half-way.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lxml import etree

from esante.cve.engine.dates import Duration, DurationError, parse_cdsi_date, parse_duration
from esante.cve.engine.model import (
    AgeRule,
    AllowableInterval,
    AllowableVaccine,
    Antigen,
    AntigenContraindication,
    AntigenSeries,
    Condition,
    ConditionalSkip,
    ConditionSet,
    ContraindicatedVaccine,
    CvxAssociation,
    DateOfBirthImmunity,
    Immunity,
    InadvertentVaccine,
    Indication,
    IntervalRule,
    LiveVirusConflict,
    ObservationDefinition,
    PreferableVaccine,
    SeriesDose,
    SupportingData,
    VaccineContraindication,
    VaccineGroup,
    normalize_cvx,
)

__all__ = ["SupportingDataError", "load_supporting_data", "parse_antigen_xml", "parse_schedule_xml"]

_XSD_DIR = Path(__file__).with_name("xsd")
Element = Any  # lxml's _Element; kept loose for mypy (lxml ships no stubs here)


class SupportingDataError(ValueError):
    """The supporting data cannot be loaded; the message names the file and what is wrong."""


@cache
def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(_XSD_DIR / name)))


def _parse_validated(content: bytes, schema_name: str, source: str) -> Element:
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise SupportingDataError(f"{source}: not well-formed XML: {exc}") from exc
    if root.getroottree().docinfo.internalDTD is not None:
        raise SupportingDataError(f"{source}: a DOCTYPE is not allowed in supporting data")
    schema = _schema(schema_name)
    try:
        valid = schema.validate(root)
    except etree.Error as exc:
        raise SupportingDataError(f"{source}: cannot be validated against {schema_name}: {exc}") from exc
    if not valid:
        error = schema.error_log.last_error
        raise SupportingDataError(f"{source}: does not conform to {schema_name}: line {error.line}: {error.message}")
    return root


def _text(element: Element | None, tag: str) -> str | None:
    if element is None:
        return None
    child = element.find(tag)
    if child is None or child.text is None:
        return None
    value = str(child.text).strip()
    return value or None


def _texts(element: Element, tag: str) -> tuple[str, ...]:
    return tuple(str(c.text).strip() for c in element.findall(tag) if c.text and str(c.text).strip())


class _Reader:
    """Field readers that turn a bad value into an error naming the file and the element."""

    def __init__(self, source: str) -> None:
        self.source = source

    def duration(self, element: Element, tag: str) -> Duration | None:
        raw = _text(element, tag)
        try:
            return parse_duration(raw)
        except DurationError as exc:
            raise SupportingDataError(f"{self.source}: line {element.sourceline}: <{tag}>: {exc}") from exc

    def date(self, element: Element, tag: str) -> Any:
        raw = _text(element, tag)
        try:
            return parse_cdsi_date(raw)
        except ValueError as exc:
            raise SupportingDataError(f"{self.source}: line {element.sourceline}: <{tag}> {raw!r}: {exc}") from exc

    def integer(self, element: Element, tag: str) -> int | None:
        raw = _text(element, tag)
        if raw is None or raw.lower() == "n/a":
            return None
        try:
            return int(raw)
        except ValueError as exc:
            raise SupportingDataError(
                f"{self.source}: line {element.sourceline}: <{tag}> {raw!r} is not a number"
            ) from exc

    @staticmethod
    def flag(element: Element, tag: str) -> bool:
        return (_text(element, tag) or "").lower() in {"y", "yes", "true", "override"}


def _cvx_list(raw: str | None) -> frozenset[str]:
    if not raw or raw.strip().lower() == "n/a":
        return frozenset()
    return frozenset(normalize_cvx(p) for p in raw.replace(",", ";").split(";") if p.strip())


def _condition(r: _Reader, c: Element) -> Condition:
    count_logic = (_text(c, "doseCountLogic") or "").lower()
    return Condition(
        condition_id=_text(c, "conditionID") or "",
        condition_type=(_text(c, "conditionType") or "").lower(),
        start_date=r.date(c, "startDate"),
        end_date=r.date(c, "endDate"),
        begin_age=r.duration(c, "beginAge"),
        end_age=r.duration(c, "endAge"),
        interval=r.duration(c, "interval"),
        dose_count=r.integer(c, "doseCount"),
        dose_type=(_text(c, "doseType") or "total").lower(),
        dose_count_logic=count_logic,
        vaccine_types=_cvx_list(_text(c, "vaccineTypes")),
        series_groups=tuple(p.strip() for p in (_text(c, "seriesGroups") or "").split(";") if p.strip()),
    )


def _series_dose(r: _Reader, d: Element) -> SeriesDose:
    number_text = (_text(d, "doseNumber") or "").replace("Dose", "").strip()
    try:
        number = int(number_text)
    except ValueError as exc:
        raise SupportingDataError(f"{r.source}: line {d.sourceline}: <doseNumber> {number_text!r}") from exc
    ages = tuple(
        AgeRule(
            abs_min_age=r.duration(a, "absMinAge"),
            min_age=r.duration(a, "minAge"),
            earliest_rec_age=r.duration(a, "earliestRecAge"),
            latest_rec_age=r.duration(a, "latestRecAge"),
            max_age=r.duration(a, "maxAge"),
            effective=r.date(a, "effectiveDate"),
            cessation=r.date(a, "cessationDate"),
        )
        for a in d.findall("age")
    )
    intervals = []
    for i in d.findall("interval"):
        obs = i.find("fromRelevantObs")
        obs_code = _text(obs, "code") if obs is not None else None
        intervals.append(
            IntervalRule(
                from_previous=r.flag(i, "fromPrevious"),
                from_target_dose=r.integer(i, "fromTargetDose"),
                from_most_recent=_cvx_list(_text(i, "fromMostRecent")),
                from_relevant_obs=obs_code if obs_code and obs_code.lower() != "n/a" else None,
                abs_min_int=r.duration(i, "absMinInt"),
                min_int=r.duration(i, "minInt"),
                earliest_rec_int=r.duration(i, "earliestRecInt"),
                latest_rec_int=r.duration(i, "latestRecInt"),
                priority=r.flag(i, "intervalPriority"),
                effective=r.date(i, "effectiveDate"),
                cessation=r.date(i, "cessationDate"),
            )
        )
    allowable_intervals = tuple(
        AllowableInterval(
            from_previous=r.flag(i, "fromPrevious"),
            from_target_dose=r.integer(i, "fromTargetDose"),
            abs_min_int=r.duration(i, "absMinInt"),
            effective=r.date(i, "effectiveDate"),
            cessation=r.date(i, "cessationDate"),
        )
        for i in d.findall("allowableInterval")
        if _text(i, "absMinInt") is not None
    )
    preferable = tuple(
        PreferableVaccine(
            cvx=normalize_cvx(_text(v, "cvx") or ""),
            vaccine_type=_text(v, "vaccineType") or "",
            begin_age=r.duration(v, "beginAge"),
            end_age=r.duration(v, "endAge"),
            trade_name=_text(v, "tradeName"),
            mvx=_text(v, "mvx"),
            volume=_text(v, "volume"),
            forecast_vaccine_type=r.flag(v, "forecastVaccineType"),
        )
        for v in d.findall("preferableVaccine")
        if _text(v, "cvx")
    )
    allowable = tuple(
        AllowableVaccine(
            cvx=normalize_cvx(_text(v, "cvx") or ""),
            vaccine_type=_text(v, "vaccineType") or "",
            begin_age=r.duration(v, "beginAge"),
            end_age=r.duration(v, "endAge"),
        )
        for v in d.findall("allowableVaccine")
        if _text(v, "cvx")
    )
    inadvertent = tuple(
        InadvertentVaccine(cvx=normalize_cvx(_text(v, "cvx") or ""), vaccine_type=_text(v, "vaccineType") or "")
        for v in d.findall("inadvertentVaccine")
        if _text(v, "cvx")
    )
    skips = []
    for s in d.findall("conditionalSkip"):
        sets = tuple(
            ConditionSet(
                set_id=_text(cs, "setID") or "",
                description=_text(cs, "setDescription") or "",
                effective=r.date(cs, "effectiveDate"),
                cessation=r.date(cs, "cessationDate"),
                condition_logic=(_text(cs, "conditionLogic") or "AND").upper(),
                conditions=tuple(_condition(r, c) for c in cs.findall("condition")),
            )
            for cs in s.findall("set")
        )
        if sets:
            skips.append(
                ConditionalSkip(
                    context=_text(s, "context") or "Both",
                    set_logic=(_text(s, "setLogic") or "n/a").upper(),
                    sets=sets,
                )
            )
    seasonal = d.find("seasonalRecommendation")
    return SeriesDose(
        dose_number=number,
        ages=ages,
        intervals=tuple(intervals),
        allowable_intervals=allowable_intervals,
        preferable_vaccines=preferable,
        allowable_vaccines=allowable,
        inadvertent_vaccines=inadvertent,
        conditional_skips=tuple(skips),
        recurring=r.flag(d, "recurringDose"),
        seasonal_start=r.date(seasonal, "startDate") if seasonal is not None else None,
        seasonal_end=r.date(seasonal, "endDate") if seasonal is not None else None,
    )


def _series(r: _Reader, s: Element) -> AntigenSeries:
    select = s.find("selectSeries")
    indications = []
    for ind in s.findall("indication"):
        obs = ind.find("observationCode")
        indications.append(
            Indication(
                observation_code=_text(obs, "code") if obs is not None else None,
                observation_text=_text(obs, "text") if obs is not None else None,
                description=_text(ind, "description"),
                begin_age=r.duration(ind, "beginAge"),
                end_age=r.duration(ind, "endAge"),
                guidance=_text(ind, "guidance"),
            )
        )
    equivalent = tuple(
        p.strip() for p in (_text(s, "equivalentSeriesGroups") or "").split(";") if p.strip() and p.strip() != "n/a"
    )
    preference = r.integer(select, "seriesPreference")
    doses = tuple(_series_dose(r, d) for d in s.findall("seriesDose"))
    if not doses:
        raise SupportingDataError(f"{r.source}: series {_text(s, 'seriesName')!r} has no seriesDose")
    return AntigenSeries(
        name=_text(s, "seriesName") or "",
        antigen=_text(s, "targetDisease") or "",
        vaccine_group=_text(s, "vaccineGroup") or "",
        series_type=_text(s, "seriesType") or "Standard",
        admin_guidance=_texts(s, "seriesAdminGuidance"),
        equivalent_series_groups=equivalent,
        required_genders=frozenset(g.lower() for g in _texts(s, "requiredGender")),
        default_series=r.flag(select, "defaultSeries"),
        product_path=r.flag(select, "productPath"),
        series_group_name=_text(select, "seriesGroupName") or "",
        series_group=_text(select, "seriesGroup") or "",
        series_priority=_text(select, "seriesPriority") or "A",
        series_preference=preference if preference is not None else 1,
        min_age_to_start=r.duration(select, "minAgeToStart"),
        max_age_to_start=r.duration(select, "maxAgeToStart"),
        indications=tuple(indications),
        doses=doses,
    )


def parse_antigen_xml(content: bytes, source: str = "<antigen>") -> Antigen:
    """One AntigenSupportingData document → :class:`Antigen` (validated against AntigenSupportingData.xsd)."""
    root = _parse_validated(content, "AntigenSupportingData.xsd", source)
    r = _Reader(source)
    immunity_el = root.find("immunity")
    clinical: set[str] = set()
    by_birth: list[DateOfBirthImmunity] = []
    if immunity_el is not None:
        for ch in immunity_el.findall("clinicalHistory"):
            code = _text(ch, "guidelineCode")
            if code:
                clinical.add(code)
        for dob in immunity_el.findall("dateOfBirth"):
            birth_date = r.date(dob, "immunityBirthDate")
            if birth_date is None:
                continue
            by_birth.append(
                DateOfBirthImmunity(
                    immunity_birth_date=birth_date,
                    birth_country=_text(dob, "birthCountry"),
                    exclusion_codes=frozenset(
                        code for ex in dob.findall("exclusion") if (code := _text(ex, "exclusionCode"))
                    ),
                )
            )
    contra = root.find("contraindications")
    antigen_ci = tuple(
        AntigenContraindication(
            observation_code=_text(c, "observationCode") or "",
            title=_text(c, "observationTitle") or "",
            text=_text(c, "contraindicationText") or "",
            begin_age=r.duration(c, "beginAge"),
            end_age=r.duration(c, "endAge"),
        )
        for c in contra.findall("vaccineGroup/contraindication")
    )
    vaccine_ci = tuple(
        VaccineContraindication(
            observation_code=_text(c, "observationCode") or "",
            title=_text(c, "observationTitle") or "",
            text=_text(c, "contraindicationText") or "",
            vaccines=tuple(
                ContraindicatedVaccine(
                    cvx=normalize_cvx(_text(v, "cvx") or ""),
                    vaccine_type=_text(v, "vaccineType") or "",
                    begin_age=r.duration(v, "beginAge"),
                    end_age=r.duration(v, "endAge"),
                )
                for v in c.findall("contraindicatedVaccine")
            ),
        )
        for c in contra.findall("vaccine/contraindication")
    )
    series = tuple(_series(r, s) for s in root.findall("series"))
    names = {s.antigen for s in series}
    if len(names) != 1:
        raise SupportingDataError(f"{source}: series name {len(names)} different antigens ({sorted(names)})")
    return Antigen(
        name=names.pop(),
        immunity=Immunity(frozenset(clinical), tuple(by_birth)),
        antigen_contraindications=antigen_ci,
        vaccine_contraindications=vaccine_ci,
        series=series,
    )


def parse_schedule_xml(content: bytes, source: str = "<schedule>") -> dict[str, Any]:
    """ScheduleSupportingData → the parts of :class:`SupportingData` that are not per antigen."""
    root = _parse_validated(content, "ScheduleSupportingData.xsd", source)
    r = _Reader(source)
    conflicts: dict[str, list[LiveVirusConflict]] = defaultdict(list)
    for c in root.findall("liveVirusConflicts/liveVirusConflict"):
        previous, current = c.find("previous"), c.find("current")
        conflict = LiveVirusConflict(
            previous_cvx=normalize_cvx(_text(previous, "cvx") or ""),
            previous_type=_text(previous, "vaccineType") or "",
            current_cvx=normalize_cvx(_text(current, "cvx") or ""),
            current_type=_text(current, "vaccineType") or "",
            begin_interval=r.duration(c, "conflictBeginInterval"),
            min_end_interval=r.duration(c, "minConflictEndInterval"),
            end_interval=r.duration(c, "conflictEndInterval"),
        )
        conflicts[conflict.current_cvx].append(conflict)
    full = {
        _text(g, "name") or "": r.flag(g, "administerFullVaccineGroup")
        for g in root.findall("vaccineGroups/vaccineGroup")
    }
    groups = {}
    for m in root.findall("vaccineGroupToAntigenMap/vaccineGroupMap"):
        name = _text(m, "name") or ""
        groups[name] = VaccineGroup(name, full.get(name, False), _texts(m, "antigen"))
    cvx_map: dict[str, tuple[CvxAssociation, ...]] = {}
    descriptions: dict[str, str] = {}
    for m in root.findall("cvxToAntigenMap/cvxMap"):
        cvx = normalize_cvx(_text(m, "cvx") or "")
        descriptions[cvx] = _text(m, "shortDescription") or ""
        cvx_map[cvx] = tuple(
            CvxAssociation(
                antigen=_text(a, "antigen") or "",
                begin_age=r.duration(a, "associationBeginAge"),
                end_age=r.duration(a, "associationEndAge"),
            )
            for a in m.findall("association")
        )
    observations = {}
    for o in root.findall("observations/observation"):
        code = _text(o, "observationCode") or ""
        coded = tuple(
            (_text(v, "codeSystem") or "", _text(v, "code") or "") for v in o.findall("codedValues/codedValue")
        )
        observations[code] = ObservationDefinition(code, _text(o, "observationTitle") or "", coded)
    return {
        "vaccine_groups": groups,
        "cvx_map": cvx_map,
        "cvx_descriptions": descriptions,
        "live_virus_conflicts": {k: tuple(v) for k, v in conflicts.items()},
        "observations": observations,
    }


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SupportingDataError(f"{path}: cannot be read: {exc}") from exc


def load_supporting_data(folder: str | Path) -> SupportingData:
    """Load every antigen file and the schedule file of ``folder`` into one immutable :class:`SupportingData`."""
    base = Path(folder)
    if not base.is_dir():
        raise SupportingDataError(f"{base}: not a folder of CDSi supporting data")
    schedule_path = base / "ScheduleSupportingData.xml"
    if not schedule_path.is_file():
        raise SupportingDataError(f"{base}: ScheduleSupportingData.xml is missing")
    antigen_paths = sorted(p for p in base.glob("AntigenSupportingData*.xml"))
    if not antigen_paths:
        raise SupportingDataError(f"{base}: no AntigenSupportingData*.xml file")
    schedule = parse_schedule_xml(_read(schedule_path), str(schedule_path))
    antigens: dict[str, Antigen] = {}
    for path in antigen_paths:
        antigen = parse_antigen_xml(_read(path), str(path))
        if antigen.name in antigens:
            raise SupportingDataError(f"{path}: antigen {antigen.name!r} is defined twice")
        antigens[antigen.name] = antigen
    for antigen in antigens.values():
        for series in antigen.series:
            if series.vaccine_group not in schedule["vaccine_groups"]:
                raise SupportingDataError(
                    f"antigen {antigen.name!r}, series {series.name!r}: unknown vaccine group {series.vaccine_group!r}"
                )
    return SupportingData(
        antigens=MappingProxyType(antigens),
        vaccine_groups=MappingProxyType(schedule["vaccine_groups"]),
        cvx_map=MappingProxyType(schedule["cvx_map"]),
        cvx_descriptions=MappingProxyType(schedule["cvx_descriptions"]),
        live_virus_conflicts=MappingProxyType(schedule["live_virus_conflicts"]),
        observations=MappingProxyType(schedule["observations"]),
    )
