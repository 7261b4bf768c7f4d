"""Structural validation of FHIR R4 (4.0.1) resources on every write.

:func:`validate_resource` raises one :class:`~esante.fhir.errors.FhirError` (HTTP 400) carrying *every* issue
found (up to :data:`MAX_ISSUES`), each with a FHIRPath ``expression`` such as ``Patient.name[0].given[1]``.

How it works
------------
Two layers run on each resource:

1. A strict JSON walker (this module) driven by the metadata of the ``fhir.resources.R4B`` pydantic models
   (field names, cardinality, datatypes, ``element_required``, ``one_of_many`` choice groups and the
   ``enum_values`` of required code bindings). It checks JSON types exactly (no coercion: ``"true"`` is not
   a boolean, ``"1.5"`` is not a decimal, ``1.0`` is not an integer), unknown elements, empty
   arrays/objects/strings, ``null`` values, primitive formats with the R4 regular expressions (date,
   dateTime, instant, time, decimal,
   integer ranges, code, id, uri, oid, uuid, base64Binary, xhtml), required elements, one value per choice
   group, required code bindings (Patient.gender, Observation.status, ...), Reference.reference formats, and
   the ``resourceType`` of contained and Bundle entry resources.
2. The R4B pydantic model itself (``model_validate``), as a safety net: its errors are translated to FHIRPath
   (pydantic loc tuples, ``foo__ext`` fields -> ``_foo``) and added when the walker did not already report the
   same element.

R4 / R4B gaps knowingly accepted
--------------------------------
* Resource types that exist only in R4 (the MedicinalProduct* family, the Substance{NucleicAcid,Polymer,
  Protein,ReferenceInformation,SourceMaterial,Specification} family, EffectEvidenceSynthesis,
  RiskEvidenceSynthesis) and
  R4 types whose R4B model differs structurally (Evidence, EvidenceVariable, ...: see :data:`R4_ONLY_SHAPES`)
  are validated by a generic walker driven by the R4 StructureDefinitions from
  ``esante.fhir.definitions`` when that registry is installed; without it they only get the envelope checks
  (object, resourceType, id, Reference formats). R4B-only types (Citation, Ingredient, SubscriptionTopic, ...)
  are rejected as unknown: they are not R4.
* Elements added or renamed in R4B inside otherwise shared types (e.g. ``Bundle.issues``,
  ``Subscription`` topic elements) are accepted by the R4B model; the walker does not try to reject them.
* Bindings: only required bindings whose codes the R4B models enumerate are checked; value sets bound by
  URL only (e.g. all of ``ucum``, ``mimetypes``, ``languages``) are not expanded.
* Invariants (FHIRPath constraints such as ``ele-1``/``dom-3``) are not evaluated.

Measured cost (Python 3.11, this machine, best of 5 runs, warm caches): typical Patient (MHD ex-patient)
~240 µs, Observation (blood pressure, 2 components) ~330 µs, DocumentReference (MHD comprehensive, 2 contained
resources) ~800 µs, a 100-entry collection Bundle of those ~9 ms. The walker alone costs ~50 / 60 / 155 µs;
the rest is the pydantic model. The pydantic safety net is skipped for Bundle (see :data:`_NO_SAFETY_NET`):
with it the 100-entry Bundle took ~55 ms.
"""

from __future__ import annotations

import calendar
import re
import types
import typing
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from esante.fhir.definitions import get_registry
from esante.fhir.errors import FhirError, Issue

MAX_ISSUES = 100

#: run the R4B pydantic model after the walker (see the module docstring); off on the write path because the
#: walker covers what it checks and the model triples the cost. tests/fhir/test_validation.py runs both ways.
SAFETY_NET = False

#: types the pydantic safety net is skipped for: their nested resources are fully covered by the walker and
#: pydantic would multiply the cost of a 100-entry Bundle by ~6 (55 ms instead of ~9 ms).
_NO_SAFETY_NET = frozenset({"Bundle"})

#: Every resource type of FHIR R4 4.0.1, from the package's R4 definitions (one list for the whole platform).
R4_RESOURCE_TYPES: frozenset[str] = frozenset(get_registry().resource_types)

#: R4 types that R4B does not have, or whose R4B model differs too much to validate R4 content with it.
R4_ONLY_SHAPES: frozenset[str] = frozenset(
    [
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
        "EffectEvidenceSynthesis",
        "RiskEvidenceSynthesis",
        "Evidence",
        "EvidenceVariable",
    ]
)

_ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_MONTH = r"(0[1-9]|1[0-2])"
_DAY = r"(0[1-9]|[1-2][0-9]|3[0-1])"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_TZ = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_DATE_RE = re.compile(rf"{_YEAR}(-{_MONTH}(-{_DAY})?)?")
_DATETIME_RE = re.compile(rf"{_YEAR}(-{_MONTH}(-{_DAY}(T{_TIME}{_TZ})?)?)?")
_INSTANT_RE = re.compile(rf"{_YEAR}-{_MONTH}-{_DAY}T{_TIME}{_TZ}")
_TIME_RE = re.compile(_TIME)
_CODE_RE = re.compile(r"[^\s]+( [^\s]+)*", re.ASCII)  # ASCII: FHIR's regexes are Java's, \s is ASCII there
_URI_RE = re.compile(r"\S+", re.ASCII)
_OID_RE = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_UUID_RE = re.compile(r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_BASE64_RE = re.compile(r"(\s*([0-9a-zA-Z+/=]){4}\s*)+")
_STRING_RE = re.compile(r"[ \r\n\t\S]+", re.ASCII)
_REF_RELATIVE_RE = re.compile(r"([A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?")
_REF_ABSOLUTE_RE = re.compile(r"https?://\S+", re.ASCII)
_REF_CONDITIONAL_RE = re.compile(r"([A-Za-z]+)\?\S*")
_INT32 = (-(2**31), 2**31 - 1)

#: primitive kind -> JSON Python types allowed
_NUMBER_KINDS = {"decimal"}
_INT_KINDS = {"integer": _INT32[0], "unsignedInt": 0, "positiveInt": 1}


# ------------------------------------------------------------------------------------------------
# Field specs compiled from the R4B model metadata
# ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class FieldSpec:
    """One JSON property of a model: cardinality, kind and, for complex kinds, the child model class."""

    name: str
    is_list: bool
    kind: str  # "primitive" | "complex" | "resource" | "ext"
    primitive: str | None = None  # FHIR primitive type for kind == "primitive"
    child: Any = None  # model class for complex / ext
    required: bool = False
    enum: frozenset[str] | None = None
    choice: str | None = None  # one_of_many group
    choice_required: bool = False
    is_reference: bool = False


@dataclass(slots=True)
class ModelSpec:
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    choices: dict[str, tuple[tuple[str, ...], bool]] = field(default_factory=dict)


_MARKER_TO_PRIMITIVE = {
    "String": "string",
    "Code": "code",
    "Uri": "uri",
    "Url": "url",
    "Canonical": "canonical",
    "Markdown": "markdown",
    "Id": "id",
    "DateTime": "dateTime",
    "Instant": "instant",
    "Date": "date",
    "Time": "time",
    "Integer": "integer",
    "Integer64": "integer64",
    "UnsignedInt": "unsignedInt",
    "PositiveInt": "positiveInt",
    "Decimal": "decimal",
    "Base64Binary": "base64Binary",
    "Oid": "oid",
    "UuidVersion": "uuid",
    "Uuid": "uuid",
    "Xhtml": "xhtml",
    "Boolean": "boolean",
}


def _unwrap(annotation: Any) -> tuple[bool, Any]:
    """(is_list, inner annotation) with Optional / Union[..., None] stripped."""
    is_list = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
            continue
        if origin in (list, typing.List):  # noqa: UP006
            is_list = True
            annotation = typing.get_args(annotation)[0]
            continue
        return is_list, annotation


#: required bindings not enforced: R5 made ImplementationGuide.definition.parameter.code extensible and the IG
#: publisher emits codes outside the R4 value set (every published IG resource would fail otherwise);
#: CapabilityStatement.format binds to mime types (+ xml/json/ttl): the model's enumeration lists the
#: value set's placeholder codes, not the mime types.
_RELAXED_BINDINGS = {("ImplementationGuideDefinitionParameter", "code"), ("CapabilityStatement", "format")}


_OBSERVATION_STATUS = frozenset(
    {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
)
_ENCOUNTER_STATUS = frozenset(
    {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled", "entered-in-error", "unknown"}
)
#: the complete R4 value sets of the required bindings whose model code list is abbreviated with "+"
#: (hl7.org/fhir/R4: observation-status, diagnostic-report-status, task-status, encounter-status, …)
_COMPLETE_CODES: dict[tuple[str, str], frozenset[str]] = {
    ("Observation", "status"): _OBSERVATION_STATUS,
    ("DetectedIssue", "status"): _OBSERVATION_STATUS,
    ("RiskAssessment", "status"): _OBSERVATION_STATUS,
    ("DiagnosticReport", "status"): frozenset(
        {
            "registered",
            "partial",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "appended",
            "cancelled",
            "entered-in-error",
            "unknown",
        }
    ),
    ("Task", "status"): frozenset(
        {
            "draft",
            "requested",
            "received",
            "accepted",
            "rejected",
            "ready",
            "cancelled",
            "in-progress",
            "on-hold",
            "failed",
            "completed",
            "entered-in-error",
        }
    ),
    ("Encounter", "status"): _ENCOUNTER_STATUS,
    ("EncounterStatusHistory", "status"): _ENCOUNTER_STATUS,
    ("DeviceUseStatement", "status"): frozenset(
        {"active", "completed", "entered-in-error", "intended", "stopped", "on-hold"}
    ),
    ("SupplyRequest", "status"): frozenset(
        {"draft", "active", "suspended", "cancelled", "completed", "entered-in-error", "unknown"}
    ),
    ("DeviceUdiCarrier", "entryType"): frozenset({"barcode", "rfid", "manual", "card", "self-reported", "unknown"}),
    ("QuestionnaireItem", "type"): frozenset(
        {
            "group",
            "display",
            "boolean",
            "decimal",
            "integer",
            "date",
            "dateTime",
            "time",
            "string",
            "text",
            "url",
            "choice",
            "open-choice",
            "attachment",
            "reference",
            "quantity",
        }
    ),
    ("StructureMapGroupRuleTarget", "transform"): frozenset(
        {
            "create",
            "copy",
            "truncate",
            "escape",
            "cast",
            "append",
            "translate",
            "reference",
            "dateOp",
            "uuid",
            "pointer",
            "evaluate",
            "cc",
            "c",
            "qty",
            "id",
            "cp",
        }
    ),
}


def _field_spec(owner: str, name: str, finfo: Any) -> FieldSpec | None:
    extra = finfo.json_schema_extra or {}
    is_list, inner = _unwrap(finfo.annotation)
    enum = frozenset(extra["enum_values"]) if extra.get("enum_values") else None
    if (owner, name) in _RELAXED_BINDINGS:
        enum = None
    elif enum is not None and "+" in enum:
        # the models end an abbreviated code list with "+" (Task.status lists four of its twelve codes): the
        # complete R4 value set is used instead (checking against the abbreviation refused completed, corrected…)
        enum = _COMPLETE_CODES.get((owner, name))
    spec = FieldSpec(
        name=name,
        is_list=is_list,
        kind="primitive",
        required=bool(extra.get("element_required")) or finfo.is_required(),
        enum=enum,
        choice=extra.get("one_of_many"),
        choice_required=bool(extra.get("one_of_many_required")),
    )
    if inner is bool:
        spec.primitive = "boolean"
        return spec
    if typing.get_origin(inner) is typing.Annotated:
        for marker in getattr(inner, "__metadata__", ()):
            prim = _MARKER_TO_PRIMITIVE.get(type(marker).__name__)
            if prim:
                spec.primitive = prim
                return spec
        spec.primitive = "string"
        return spec
    if hasattr(inner, "get_model_klass"):
        tname = inner.__name__
        if tname == "ResourceType":
            spec.kind = "resource"
            return spec
        spec.child = inner.get_model_klass()
        spec.kind = "ext" if tname == "FHIRPrimitiveExtensionType" else "complex"
        spec.is_reference = tname == "ReferenceType"
        return spec
    if inner is str:
        spec.primitive = "string"
        return spec
    return None


@cache
def model_spec(model: Any) -> ModelSpec:
    """The compiled JSON spec of one R4B model class (cached)."""
    spec = ModelSpec()
    required: list[str] = []
    choices: dict[str, tuple[list[str], bool]] = {}
    for pyname, finfo in model.model_fields.items():
        if pyname == "fhir_comments":
            continue
        alias = finfo.alias or pyname
        fspec = _field_spec(model.__name__, alias, finfo)
        if fspec is None:
            continue
        spec.fields[alias] = fspec
        if fspec.required:
            required.append(alias)
        if fspec.choice:
            members, req = choices.setdefault(fspec.choice, ([], False))
            members.append(alias)
            choices[fspec.choice] = (members, req or fspec.choice_required)
    spec.required = tuple(required)
    spec.choices = {k: (tuple(v[0]), v[1]) for k, v in choices.items()}
    return spec


@cache
def resource_model(resource_type: str) -> Any:
    """The R4B model class used for an R4 resource type, or None when R4B cannot validate it."""
    if resource_type not in R4_RESOURCE_TYPES or resource_type in R4_ONLY_SHAPES:
        return None
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (ValueError, KeyError):  # pragma: no cover - every R4 type outside R4_ONLY_SHAPES exists in R4B
        return None


def element_is_list(resource_type: str, names: list[str]) -> bool | None:
    """Whether the element reached by ``names`` (JSON property names from the resource root) repeats.

    None when the path cannot be resolved (unknown type or element). Used by FHIRPath Patch.
    """
    model = resource_model(resource_type)
    if model is None or not names:
        return None
    fspec: FieldSpec | None = None
    for position, name in enumerate(names):
        fspec = model_spec(model).fields.get(name)
        if fspec is None:
            return None
        if position < len(names) - 1:
            if fspec.kind not in ("complex", "ext"):
                return None
            model = fspec.child
    return fspec.is_list if fspec else None


# ------------------------------------------------------------------------------------------------
# The walker
# ------------------------------------------------------------------------------------------------


class _Collector:
    __slots__ = ("conditional", "issues", "paths")

    def __init__(self, conditional: bool) -> None:
        self.issues: list[Issue] = []
        self.paths: list[str] = []
        self.conditional = conditional

    def add(self, code: str, expression: str, diagnostics: str) -> None:
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(Issue(code=code, diagnostics=diagnostics, expression=(expression,)))
            self.paths.append(expression)

    @property
    def full(self) -> bool:
        return len(self.issues) >= MAX_ISSUES


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _valid_full_date(text: str) -> bool:
    """Calendar check of the YYYY-MM-DD prefix (the regex allows 2021-02-31)."""
    if len(text) < 10:
        return True
    try:
        year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    except ValueError:
        return False
    return day <= calendar.monthrange(year, month)[1]


def _check_primitive(kind: str, value: Any, path: str, out: _Collector) -> None:
    if kind == "boolean":
        if not isinstance(value, bool):
            out.add("structure", path, f"{path}: expected a JSON boolean, got {_json_kind(value)}")
        return
    if kind in _INT_KINDS or kind == "integer64":
        if isinstance(value, bool) or not isinstance(value, int):
            out.add("structure", path, f"{path}: expected a JSON integer ({kind}), got {_json_kind(value)}")
            return
        low = _INT_KINDS.get(kind, -(2**63))
        high = _INT32[1] if kind != "integer64" else 2**63 - 1
        if not low <= value <= high:
            out.add("value", path, f"{path}: {value} is out of range for {kind} [{low}, {high}]")
        return
    if kind in _NUMBER_KINDS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.add("structure", path, f"{path}: expected a JSON number (decimal), got {_json_kind(value)}")
        elif isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            out.add("value", path, f"{path}: decimal must be finite")
        return
    if not isinstance(value, str):
        out.add("structure", path, f"{path}: expected a JSON string ({kind}), got {_json_kind(value)}")
        return
    ok = True
    if kind == "date":
        ok = _DATE_RE.fullmatch(value) is not None and _valid_full_date(value)
    elif kind == "dateTime":
        ok = _DATETIME_RE.fullmatch(value) is not None and _valid_full_date(value)
    elif kind == "instant":
        ok = _INSTANT_RE.fullmatch(value) is not None and _valid_full_date(value)
    elif kind == "time":
        ok = _TIME_RE.fullmatch(value) is not None
    elif kind == "code":
        ok = _CODE_RE.fullmatch(value) is not None
    elif kind == "id":
        ok = _ID_RE.fullmatch(value) is not None
    elif kind in ("uri", "url", "canonical"):
        ok = _URI_RE.fullmatch(value) is not None
    elif kind == "oid":
        ok = _OID_RE.fullmatch(value) is not None
    elif kind == "uuid":
        ok = _UUID_RE.fullmatch(value) is not None
    elif kind == "base64Binary":
        ok = _BASE64_RE.fullmatch(value) is not None
    elif kind == "xhtml":
        ok = value.lstrip().startswith("<div") and value.rstrip().endswith(">")
    else:  # string, markdown
        ok = _STRING_RE.fullmatch(value) is not None
    if not ok:
        shown = value if len(value) <= 60 else value[:57] + "..."
        out.add("value", path, f"{path}: {shown!r} is not a valid {kind}")


def check_reference(value: str, path: str, out: _Collector) -> None:
    """Reference.reference: Type/id[/_history/v], absolute http(s) URL, urn:uuid:, urn:oid: or #fragment."""
    match = _REF_RELATIVE_RE.fullmatch(value)
    if match:
        if match.group(1) not in R4_RESOURCE_TYPES:
            out.add("value", path, f"{path}: reference {value!r} names unknown resource type {match.group(1)!r}")
        return
    if value.startswith("#"):
        if len(value) == 1 or _ID_RE.fullmatch(value[1:]):
            return
    elif value.startswith("urn:uuid:"):
        if _UUID_RE.fullmatch(value):
            return
    elif value.startswith("urn:oid:"):
        if _OID_RE.fullmatch(value):
            return
    elif _REF_ABSOLUTE_RE.fullmatch(value):
        return
    elif out.conditional:
        cond = _REF_CONDITIONAL_RE.fullmatch(value)
        if cond and cond.group(1) in R4_RESOURCE_TYPES:
            return
    out.add(
        "value",
        path,
        f"{path}: invalid reference {value!r} (expected Type/id, Type/id/_history/vid, an absolute "
        "http(s) URL, urn:uuid:, urn:oid: or #fragment)",
    )


def _walk_model(
    model: Any, node: Any, path: str, out: _Collector, is_reference: bool = False, is_resource: bool = False
) -> None:
    if not isinstance(node, dict):
        out.add("structure", path, f"{path}: expected a JSON object, got {_json_kind(node)}")
        return
    if not node:
        out.add("structure", path, f"{path}: empty objects are not allowed")
        return
    spec = model_spec(model)
    fields = spec.fields
    for key, value in node.items():
        if out.full:
            return
        fspec = fields.get(key)
        sub = f"{path}.{key}"
        if fspec is None:
            if key == "resourceType" and is_resource:
                continue
            out.add("structure", sub, f"{sub}: unknown element {key!r}")
            continue
        if key.startswith("_"):
            base = fields.get(key[1:])
            if base is None or base.kind != "primitive":
                out.add("structure", sub, f"{sub}: unknown element {key!r}")
                continue
        if value is None:
            out.add("structure", sub, f"{sub}: null is not allowed (omit the element instead)")
            continue
        if fspec.is_list:
            if not isinstance(value, list):
                out.add("structure", sub, f"{sub}: expected a JSON array, got {_json_kind(value)}")
                continue
            if not value:
                out.add("structure", sub, f"{sub}: empty arrays are not allowed")
                continue
            allow_null = fspec.kind == "ext" or (fspec.kind == "primitive" and f"_{key}" in node)
            for index, item in enumerate(value):
                item_path = f"{sub}[{index}]"
                if item is None:
                    if not allow_null:
                        out.add("structure", item_path, f"{item_path}: null is not allowed here")
                    continue
                _walk_value(fspec, item, item_path, out)
        else:
            if isinstance(value, list):
                out.add("structure", sub, f"{sub}: expected a single value, got a JSON array")
                continue
            _walk_value(fspec, value, sub, out)
    if is_reference:
        ref = node.get("reference")
        if isinstance(ref, str) and ref:
            check_reference(ref, f"{path}.reference", out)
    for name in spec.required:
        if name not in node and f"_{name}" not in node:
            out.add("required", f"{path}.{name}", f"{path}.{name}: required element is missing (min=1)")
    for group, (members, required) in spec.choices.items():
        present = list(dict.fromkeys(k.removeprefix("_") for k in node if k.removeprefix("_") in members))
        if len(present) > 1:
            out.add(
                "structure",
                f"{path}.{present[1]}",
                f"{path}: only one of {group}[x] is allowed, found {', '.join(present)}",
            )
        elif required and not present:
            out.add("required", f"{path}.{group}[x]", f"{path}.{group}[x]: required element is missing (min=1)")


def _walk_value(fspec: FieldSpec, value: Any, path: str, out: _Collector) -> None:
    kind = fspec.kind
    if kind == "primitive":
        _check_primitive(fspec.primitive or "string", value, path, out)
        if fspec.enum is not None and isinstance(value, str) and value not in fspec.enum:
            allowed = ", ".join(sorted(fspec.enum)) if len(fspec.enum) <= 12 else f"{len(fspec.enum)} codes"
            out.add("value", path, f"{path}: code {value!r} is not in the required value set ({allowed})")
    elif kind == "resource":
        _walk_resource(value, path, out)
    else:
        _walk_model(fspec.child, value, path, out, fspec.is_reference)


def _walk_resource(node: Any, path: str, out: _Collector) -> None:
    """A resource nested at ``path`` (contained, Bundle.entry.resource, Parameters.parameter.resource)."""
    if not isinstance(node, dict):
        out.add("structure", path, f"{path}: expected a resource (JSON object), got {_json_kind(node)}")
        return
    rtype = node.get("resourceType")
    if not isinstance(rtype, str):
        out.add("required", f"{path}.resourceType", f"{path}: resourceType is missing")
        return
    if rtype not in R4_RESOURCE_TYPES:
        out.add("value", f"{path}.resourceType", f"{path}: unknown resource type {rtype!r}")
        return
    _check_id(node, path, out)
    model = resource_model(rtype)
    if model is None:
        _walk_generic(rtype, node, path, out)
    else:
        _walk_model(model, node, path, out, is_resource=True)


def _check_id(node: dict[str, Any], path: str, out: _Collector) -> None:
    rid = node.get("id")
    if rid is not None and (not isinstance(rid, str) or not _ID_RE.fullmatch(rid)):
        out.add("value", f"{path}.id", f"{path}.id: {rid!r} is not a valid id ([A-Za-z0-9-.]{{1,64}})")


def _walk_generic(rtype: str, node: Any, path: str, out: _Collector) -> None:
    """R4-only types: walk driven by the R4 element tables of the definitions registry (datatypes inside them
    are checked with the R4B datatype models); without the registry, ids, nulls and references only."""
    registry = _registry()
    table = getattr(registry, "_raw_elements", {}).get(rtype) if registry is not None else None
    if not table:
        _walk_untyped(node, path, out)
        return
    _walk_r4_backbone(registry, table, rtype, "", node, path, out, is_resource=True)


def _walk_r4_backbone(
    registry: Any,
    table: dict[str, Any],
    rtype: str,
    prefix: str,
    node: Any,
    path: str,
    out: _Collector,
    is_resource: bool = False,
) -> None:
    if not isinstance(node, dict):
        out.add("structure", path, f"{path}: expected a JSON object, got {_json_kind(node)}")
        return
    for key, value in node.items():
        if out.full:
            return
        sub = f"{path}.{key}"
        if key == "resourceType" and is_resource:
            continue
        name = key[1:] if key.startswith("_") else key
        element = registry.element(rtype, prefix + name)
        type_code = None
        if element is not None:
            type_code = element.types[0] if len(element.types) == 1 else None
        else:
            for cut in range(1, len(name)):
                if name[cut].isupper():
                    choice = registry.element(rtype, f"{prefix}{name[:cut]}[x]")
                    if choice is not None:
                        suffix = name[cut:]
                        for candidate in choice.types:
                            if candidate[:1].upper() + candidate[1:] == suffix:
                                element, type_code = choice, candidate
                    break
        if element is None or type_code is None:
            out.add("structure", sub, f"{sub}: unknown element {key!r}")
            continue
        primitive = type_code in registry.primitive_types
        if key.startswith("_"):
            if not primitive:
                out.add("structure", sub, f"{sub}: unknown element {key!r}")
                continue
            type_code = "_ext"
        if value is None:
            out.add("structure", sub, f"{sub}: null is not allowed (omit the element instead)")
            continue
        if element.is_array:
            if not isinstance(value, list):
                out.add("structure", sub, f"{sub}: expected a JSON array, got {_json_kind(value)}")
                continue
            if not value:
                out.add("structure", sub, f"{sub}: empty arrays are not allowed")
                continue
            items = [(f"{sub}[{i}]", item) for i, item in enumerate(value)]
        elif isinstance(value, list):
            out.add("structure", sub, f"{sub}: expected a single value, got a JSON array")
            continue
        else:
            items = [(sub, value)]
        for item_path, item in items:
            if item is None:
                continue
            if type_code == "_ext":
                _walk_model(_datatype_model("Element"), item, item_path, out)
            elif primitive:
                _check_primitive(type_code, item, item_path, out)
            elif type_code in ("BackboneElement", "Element") or element.ref:
                child_prefix = (element.ref or element.path) + "."
                _walk_r4_backbone(registry, table, rtype, child_prefix, item, item_path, out)
            elif type_code == "Resource":
                _walk_resource(item, item_path, out)
            else:
                model = _datatype_model(type_code)
                if model is None:
                    _walk_untyped(item, item_path, out)
                else:
                    _walk_model(model, item, item_path, out, type_code == "Reference")
    for element_path, info in table.items():
        if info.get("min", 0) < 1 or not element_path.startswith(prefix):
            continue
        rest = element_path[len(prefix) :]
        if "." in rest:
            continue
        base = rest.removesuffix("[x]")
        present = any(k == base or k == f"_{base}" or (rest != base and k.startswith(base)) for k in node)
        if not present:
            out.add("required", f"{path}.{rest}", f"{path}.{rest}: required element is missing (min=1)")


@cache
def _datatype_model(type_code: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(type_code)
    except (ValueError, KeyError):
        return None


def _walk_untyped(node: Any, path: str, out: _Collector) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}"
            if value is None:
                out.add("structure", sub, f"{sub}: null is not allowed (omit the element instead)")
            elif key == "reference" and isinstance(value, str):
                check_reference(value, sub, out)
            elif isinstance(value, dict | list):
                if not value:
                    out.add("structure", sub, f"{sub}: empty objects and arrays are not allowed")
                elif isinstance(value, dict) and "resourceType" in value:
                    _walk_resource(value, sub, out)
                else:
                    _walk_untyped(value, sub, out)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            item_path = f"{path}[{index}]"
            if isinstance(item, dict) and "resourceType" in item:
                _walk_resource(item, item_path, out)
            else:
                _walk_untyped(item, item_path, out)


@lru_cache(maxsize=1)
def _registry() -> Any:
    try:
        from esante.fhir import definitions  # type: ignore[attr-defined,unused-ignore]

        return definitions.get_registry()
    except Exception:  # registry not built / not installed: fall back to the envelope checks
        return None


# ------------------------------------------------------------------------------------------------
# pydantic safety net
# ------------------------------------------------------------------------------------------------


def _loc_to_path(root: str, loc: tuple[Any, ...]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str):
            if part == "resource_type":
                part = "resourceType"
            elif part.endswith("__ext"):
                part = "_" + part[: -len("__ext")]
            path += f".{part}"
    return path


def _pydantic_issues(model: Any, resource: dict[str, Any], root: str, out: _Collector) -> None:
    from pydantic import ValidationError

    try:
        model.model_validate(resource)
    except ValidationError as exc:
        reported = list(out.paths)
        for err in exc.errors():
            expression = _loc_to_path(root, tuple(err.get("loc", ())))
            if any(
                expression == seen
                or expression.startswith((seen + ".", seen + "["))
                or seen.startswith((expression + ".", expression + "["))
                for seen in reported
            ):
                continue
            etype = str(err.get("type", ""))
            code = "required" if "missing" in etype else "structure" if "extra" in etype else "value"
            message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            out.add(code, expression, f"{expression}: {message}")
            reported.append(expression)
    except Exception:  # the walker has already reported what made the model crash (e.g. unknown contained type)
        if not out.issues:  # pragma: no cover - defensive
            out.add("invalid", root, f"{root}: resource could not be validated")


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------


def validate_resource(resource: Any, *, expected_type: str | None = None, conditional_references: bool = False) -> None:
    """Validate one resource (a parsed JSON object) against FHIR R4; raise FhirError(400) listing every issue.

    ``conditional_references`` additionally accepts ``Type?query`` references (inside transaction Bundles,
    before the server resolves them).
    """
    if not isinstance(resource, dict):
        raise FhirError(
            400,
            [
                Issue(
                    code="structure",
                    diagnostics=f"a resource must be a JSON object, got {_json_kind(resource)}",
                )
            ],
        )
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise FhirError(
            400,
            [
                Issue(
                    code="required",
                    diagnostics="resourceType is missing",
                    expression=("resourceType",),
                )
            ],
        )
    if rtype not in R4_RESOURCE_TYPES:
        raise FhirError(
            400,
            [
                Issue(
                    code="value",
                    diagnostics=f"unknown resource type {rtype!r} (not a FHIR R4 resource)",
                    expression=("resourceType",),
                )
            ],
        )
    if expected_type is not None and rtype != expected_type:
        raise FhirError(
            400,
            [
                Issue(
                    code="invalid",
                    diagnostics=f"resourceType {rtype!r} does not match the expected type {expected_type!r}",
                    expression=(f"{rtype}.resourceType",),
                )
            ],
        )
    out = _Collector(conditional_references)
    _check_id(resource, rtype, out)
    model = resource_model(rtype)
    if model is None:
        _walk_generic(rtype, resource, rtype, out)
    else:
        _walk_model(model, resource, rtype, out, is_resource=True)
        if SAFETY_NET and not out.full and rtype not in _NO_SAFETY_NET:
            _pydantic_issues(model, resource, rtype, out)
    if out.issues:
        raise FhirError(400, out.issues)
