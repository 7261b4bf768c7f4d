"""Small hand-made schedules in the CDSi supporting-data XML format, for unit tests of each evaluation step.

They go through the real loader (XSD validation included), so every test also exercises the XML edge. Fake CVX
codes (9xx) keep them apart from the CDC's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from esante.cve.engine import SupportingData, load_supporting_data


def _el(tag: str, value: str | None = None) -> str:
    return f"<{tag}/>" if value is None or value == "" else f"<{tag}>{escape(value)}</{tag}>"


@dataclass
class Age:
    abs_min: str | None = None
    min: str | None = None
    earliest_rec: str | None = None
    latest_rec: str | None = None
    max: str | None = None

    def xml(self) -> str:
        return (
            "<age>"
            + _el("absMinAge", self.abs_min)
            + _el("minAge", self.min)
            + _el("earliestRecAge", self.earliest_rec)
            + _el("latestRecAge", self.latest_rec)
            + _el("maxAge", self.max)
            + "<effectiveDate/><cessationDate/></age>"
        )


@dataclass
class Interval:
    abs_min: str | None = None
    min: str | None = None
    earliest_rec: str | None = None
    latest_rec: str | None = None
    from_previous: bool = True
    from_target_dose: int | None = None
    from_most_recent: str | None = None
    from_observation: str | None = None
    priority: bool = False

    def xml(self) -> str:
        obs = (
            f"<fromRelevantObs><text>obs</text><code>{self.from_observation}</code></fromRelevantObs>"
            if self.from_observation
            else "<fromRelevantObs/>"
        )
        return (
            "<interval>"
            + _el("fromPrevious", "Y" if self.from_previous else "N")
            + _el("fromTargetDose", str(self.from_target_dose) if self.from_target_dose else None)
            + _el("fromMostRecent", self.from_most_recent)
            + obs
            + _el("absMinInt", self.abs_min)
            + _el("minInt", self.min)
            + _el("earliestRecInt", self.earliest_rec)
            + _el("latestRecInt", self.latest_rec)
            + _el("intervalPriority", "override" if self.priority else None)
            + "<effectiveDate/><cessationDate/></interval>"
        )


@dataclass
class Condition:
    kind: str  # "Age", "Interval", "Vaccine Count by Age", "Completed Series", ...
    begin_age: str | None = None
    end_age: str | None = None
    interval: str | None = None
    dose_count: int | None = None
    dose_type: str | None = None
    count_logic: str | None = None
    vaccine_types: str | None = None
    series_groups: str | None = None

    def xml(self) -> str:
        return (
            "<condition>"
            + _el("conditionID", "1")
            + _el("conditionType", self.kind)
            + "<startDate/><endDate/>"
            + _el("beginAge", self.begin_age)
            + _el("endAge", self.end_age)
            + _el("interval", self.interval)
            + _el("doseCount", None if self.dose_count is None else str(self.dose_count))
            + _el("doseType", self.dose_type)
            + _el("doseCountLogic", self.count_logic)
            + _el("vaccineTypes", self.vaccine_types)
            + _el("seriesGroups", self.series_groups)
            + "</condition>"
        )


@dataclass
class Skip:
    context: str
    conditions: list[Condition]
    logic: str = "AND"

    def xml(self) -> str:
        return (
            "<conditionalSkip>"
            + _el("context", self.context)
            + "<setLogic>n/a</setLogic><set><setID>1</setID><setDescription>test</setDescription>"
            + "<effectiveDate/><cessationDate/>"
            + _el("conditionLogic", self.logic)
            + "".join(c.xml() for c in self.conditions)
            + "</set></conditionalSkip>"
        )


@dataclass
class Dose:
    age: Age | None = None
    intervals: list[Interval] = field(default_factory=list)
    allowable_interval: str | None = None  # absolute minimum from the previous dose
    preferable: list[tuple[str, str | None, str | None, bool]] = field(
        default_factory=lambda: [("901", None, None, True)]
    )
    allowable: list[str] = field(default_factory=lambda: ["902"])
    inadvertent: list[str] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    recurring: bool = False
    season: tuple[str, str] | None = None

    def xml(self, number: int) -> str:
        parts = [_el("doseNumber", f"Dose {number}")]
        if self.age:
            parts.append(self.age.xml())
        parts += [i.xml() for i in self.intervals]
        if self.allowable_interval:
            parts.append(
                "<allowableInterval><fromPrevious>Y</fromPrevious><fromTargetDose/>"
                + _el("absMinInt", self.allowable_interval)
                + "<effectiveDate/><cessationDate/></allowableInterval>"
            )
        for cvx, begin, end, forecast in self.preferable:
            parts.append(
                "<preferableVaccine><vaccineType>test</vaccineType>"
                + _el("cvx", cvx)
                + _el("beginAge", begin)
                + _el("endAge", end)
                + "<tradeName/><mvx/><volume>0.5</volume>"
                + _el("forecastVaccineType", "Y" if forecast else "N")
                + "</preferableVaccine>"
            )
        for cvx in self.allowable:
            parts.append(
                "<allowableVaccine><vaccineType>test</vaccineType>"
                + _el("cvx", cvx)
                + "<beginAge/><endAge/></allowableVaccine>"
            )
        for cvx in self.inadvertent:
            parts.append(
                "<inadvertentVaccine><vaccineType>test</vaccineType>" + _el("cvx", cvx) + "</inadvertentVaccine>"
            )
        parts += [s.xml() for s in self.skips]
        parts.append(_el("recurringDose", "Yes" if self.recurring else "No"))
        if self.season:
            parts.append(
                "<seasonalRecommendation>"
                + _el("startDate", self.season[0])
                + _el("endDate", self.season[1])
                + "</seasonalRecommendation>"
            )
        return "<seriesDose>" + "".join(parts) + "</seriesDose>"


@dataclass
class Series:
    name: str
    doses: list[Dose]
    antigen: str = "Testitis"
    group: str = "1"
    series_type: str = "Standard"
    default: bool = True
    preference: int = 1
    priority: str = "A"
    genders: tuple[str, ...] = ()
    indications: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (code, begin, end)
    equivalent: str | None = None
    min_age_to_start: str | None = None
    max_age_to_start: str | None = None
    product_path: bool = False

    def xml(self, vaccine_group: str) -> str:
        genders = "".join(_el("requiredGender", g) for g in self.genders) or "<requiredGender/>"
        indications = (
            "".join(
                "<indication><observationCode><text>condition</text>"
                + _el("code", code)
                + "</observationCode><description>test</description>"
                + _el("beginAge", begin)
                + _el("endAge", end)
                + "<guidance/></indication>"
                for code, begin, end in self.indications
            )
            or "<indication/>"
        )
        return (
            "<series>"
            + _el("seriesName", self.name)
            + _el("targetDisease", self.antigen)
            + _el("vaccineGroup", vaccine_group)
            + "<seriesAdminGuidance/>"
            + _el("seriesType", self.series_type)
            + _el("equivalentSeriesGroups", self.equivalent)
            + genders
            + "<selectSeries>"
            + _el("defaultSeries", "Yes" if self.default else "No")
            + _el("productPath", "Yes" if self.product_path else "No")
            + _el("seriesGroupName", "group")
            + _el("seriesGroup", self.group)
            + _el("seriesPriority", self.priority)
            + _el("seriesPreference", str(self.preference))
            + _el("minAgeToStart", self.min_age_to_start)
            + _el("maxAgeToStart", self.max_age_to_start)
            + "</selectSeries>"
            + indications
            + "".join(d.xml(i + 1) for i, d in enumerate(self.doses))
            + "</series>"
        )


def antigen_xml(
    series: list[Series],
    vaccine_group: str = "Testitis",
    immunity_birth_date: str | None = None,
    immunity_codes: tuple[str, ...] = (),
    antigen_contraindications: tuple[str, ...] = (),
    vaccine_contraindications: dict[str, list[str]] | None = None,
) -> str:
    immunity = "<immunity>"
    for code in immunity_codes:
        immunity += (
            f"<clinicalHistory><guidelineCode>{code}</guidelineCode>"
            "<guidelineTitle>t</guidelineTitle></clinicalHistory>"
        )
    if immunity_birth_date:
        immunity += (
            f"<dateOfBirth><immunityBirthDate>{immunity_birth_date}</immunityBirthDate>"
            "<birthCountry>U.S.</birthCountry></dateOfBirth>"
        )
    immunity += "</immunity>"
    contra = "<contraindications><vaccineGroup>"
    for code in antigen_contraindications:
        contra += (
            f"<contraindication><observationCode>{code}</observationCode><observationTitle>t</observationTitle>"
            "<contraindicationText>t</contraindicationText><contraindicationGuidance/><beginAge/><endAge/></contraindication>"
        )
    contra += "</vaccineGroup><vaccine>"
    for code, cvxs in (vaccine_contraindications or {}).items():
        contra += (
            f"<contraindication><observationCode>{code}</observationCode><observationTitle>t</observationTitle>"
            "<contraindicationText>t</contraindicationText><contraindicationGuidance/>"
        )
        for cvx in cvxs:
            contra += (
                f"<contraindicatedVaccine><vaccineType>t</vaccineType><cvx>{cvx}</cvx>"
                "<beginAge/><endAge/></contraindicatedVaccine>"
            )
        contra += "</contraindication>"
    contra += "</vaccine></contraindications>"
    return (
        "<antigenSupportingData>"
        + immunity
        + contra
        + "".join(s.xml(vaccine_group) for s in series)
        + "</antigenSupportingData>"
    )


def schedule_xml(
    groups: dict[str, list[str]],
    cvx_map: dict[str, list[str]],
    conflicts: list[tuple[str, str, str, str, str]] = (),  # type: ignore[assignment]
    full_groups: tuple[str, ...] = (),
) -> str:
    xml = "<scheduleSupportingData><liveVirusConflicts>"
    for previous, current, begin, min_end, end in conflicts:
        xml += (
            f"<liveVirusConflict><previous><vaccineType>p</vaccineType><cvx>{previous}</cvx></previous>"
            f"<current><vaccineType>c</vaccineType><cvx>{current}</cvx></current>"
            f"<conflictBeginInterval>{begin}</conflictBeginInterval><minConflictEndInterval>{min_end}</minConflictEndInterval>"
            f"<conflictEndInterval>{end}</conflictEndInterval></liveVirusConflict>"
        )
    xml += "</liveVirusConflicts><vaccineGroups>"
    for name in groups:
        full = "Yes" if name in full_groups else "No"
        xml += (
            f"<vaccineGroup><name>{name}</name>"
            f"<administerFullVaccineGroup>{full}</administerFullVaccineGroup></vaccineGroup>"
        )
    xml += "</vaccineGroups><vaccineGroupToAntigenMap>"
    for name, antigens in groups.items():
        xml += (
            f"<vaccineGroupMap><name>{name}</name>"
            + "".join(f"<antigen>{a}</antigen>" for a in antigens)
            + "</vaccineGroupMap>"
        )
    xml += "</vaccineGroupToAntigenMap><cvxToAntigenMap>"
    for cvx, antigens in cvx_map.items():
        xml += f"<cvxMap><cvx>{cvx}</cvx><shortDescription>test {cvx}</shortDescription>"
        xml += "".join(
            f"<association><antigen>{a}</antigen><associationBeginAge/><associationEndAge/></association>"
            for a in antigens
        )
        xml += "</cvxMap>"
    xml += "</cvxToAntigenMap><observations/></scheduleSupportingData>"
    return xml


DEFAULT_CVX = {"901": ["Testitis"], "902": ["Testitis"], "903": ["Testitis"], "904": ["Other"]}


def build(
    folder: Path,
    antigens: dict[str, str],
    groups: dict[str, list[str]] | None = None,
    cvx_map: dict[str, list[str]] | None = None,
    conflicts: list[tuple[str, str, str, str, str]] | None = None,
) -> SupportingData:
    """Write the antigen files and the schedule file into ``folder`` and load them."""
    for name, xml in antigens.items():
        (folder / f"AntigenSupportingData- {name}.xml").write_text(xml, encoding="utf-8")
    schedule = schedule_xml(groups or {"Testitis": ["Testitis"]}, cvx_map or DEFAULT_CVX, conflicts or [])
    (folder / "ScheduleSupportingData.xml").write_text(schedule, encoding="utf-8")
    return load_supporting_data(folder)


def one_series(folder: Path, doses: list[Dose], **kwargs: object) -> SupportingData:
    """A schedule with one antigen (Testitis), one vaccine group and one standard series."""
    return build(folder, {"Testitis": antigen_xml([Series("Testitis series", doses)], **kwargs)})  # type: ignore[arg-type]
