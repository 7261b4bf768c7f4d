"""A small compiler for the FHIRPath subset used by the R4 search-parameter expressions.

``compile_expression(expr)`` parses once and returns a callable that evaluates the expression over FHIR JSON
(``dict``) and returns :class:`Node` items: the value *and* its FHIR type name, which index extraction needs
(a ``code`` is indexed differently from a ``CodeableConcept``, an ``Identifier`` or a ``Period``).

Supported: member navigation (arrays flattened, choice elements ``value[x]`` resolved through the element
tables — ``valueQuantity`` is a ``value`` of type ``Quantity``), a leading type name (``Observation.code``,
``Resource.meta.tag``), ``|``, ``as``/``is`` operators and ``as()``/``is()``/``ofType()`` functions,
``where()``, ``exists()``, ``empty()``, ``not()``, ``first()``, ``last()``, ``tail()``, ``count()``,
``extension(url)``, ``resolve()`` (only as far as the reference string tells: ``resolve() is Patient``
checks that the reference points to a Patient; ``#id`` resolves to the contained resource), ``hasValue()``,
``startsWith()``, ``[n]``, ``=``, ``!=``, ``and``, ``or``, ``xor``, ``implies``, string/number/boolean
literals, ``%resource``/``%rootResource``/``%context``, ``$this``.

Anything else raises :class:`UnsupportedExpression` inside the compiler and the expression is evaluated by
``fhirpathpy`` instead (logged once at debug level; see :func:`compile_stats`). Deliberate differences from
``fhirpathpy`` (which follow the FHIRPath/FHIR specs more closely): ``Resource.x`` / ``DomainResource.x``
match any resource, ``resolve()`` works as described above, and a System type name in ``as``/``is``
(``as(DateTime)``) also matches the FHIR primitive types mapped to it (``dateTime``, ``instant``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import cache, partial
from typing import Any, NamedTuple

from esante.fhir.definitions import Registry, get_registry
from esante.fhir.values import parse_reference

log = logging.getLogger(__name__)


class Node(NamedTuple):
    """One FHIRPath result item: the JSON value, its FHIR type and the element-table key used to navigate it
    (the type name for datatypes/resources, ``"Observation.component"`` style for backbone elements)."""

    value: Any
    type: str
    path: str


_new_node: Callable[[tuple[Any, str, str]], Node] = partial(tuple.__new__, Node)


def _node(value: Any, type_: str, path: str) -> Node:
    return _new_node((value, type_, path))


class UnsupportedExpression(Exception):
    """The expression uses FHIRPath this compiler does not implement (the caller falls back to fhirpathpy)."""


Step = Callable[[list[Node], "Context"], list[Node]]


class Context:
    __slots__ = ("root",)

    def __init__(self, root: Node) -> None:
        self.root = root


# --------------------------------------------------------------------------------------------- tokenizer

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.)*')
      | (?P<num>\d+(?:\.\d+)?)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)
      | (?P<var>%[A-Za-z_][A-Za-z0-9_]*|%`[^`]+`|\$this|\$index|\$total)
      | (?P<op>!=|!~|<=|>=|[=~<>|.()\[\],+\-*/&])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and i + 5 < len(text):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _tokenize(expr: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    text = expr.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise UnsupportedExpression(f"cannot tokenize at {text[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        raw = m.group(kind or "op")
        if kind == "str":
            tokens.append(("str", _unescape(raw[1:-1])))
        elif kind == "num":
            tokens.append(("num", float(raw) if "." in raw else int(raw)))
        elif kind == "ident":
            tokens.append(("ident", raw[1:-1] if raw.startswith("`") else raw))
        elif kind == "var":
            tokens.append(("var", raw.replace("`", "")))
        else:
            tokens.append(("op", raw))
    tokens.append(("eof", None))
    return tokens


# --------------------------------------------------------------------------------------------- parser

# AST: ("member", name) | ("fn", name, [args]) | ("lit", value, type) | ("var", name)
#      ("invoke", base, inv) | ("index", base, index) | ("bin", op, left, right)
#      ("type", op, expr, typename)
_BINARY_LEVELS: list[set[str]] = [
    {"implies"},
    {"or", "xor"},
    {"and"},
    {"in", "contains"},
    {"=", "~", "!=", "!~"},
    {"<", ">", "<=", ">="},
    {"|"},
    {"is", "as"},
    {"+", "-", "&"},
    {"*", "/", "div", "mod"},
]


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.pos]

    def take(self) -> tuple[str, Any]:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expect(self, op: str) -> None:
        kind, value = self.take()
        if value != op or kind not in ("op", "ident"):
            raise UnsupportedExpression(f"expected {op!r}, got {value!r}")

    def parse(self) -> tuple[Any, ...]:
        ast = self.expression(0)
        if self.peek()[0] != "eof":
            raise UnsupportedExpression(f"unexpected {self.peek()[1]!r}")
        return ast

    def _operator(self, level: int) -> str | None:
        kind, value = self.peek()
        if kind in ("op", "ident") and value in _BINARY_LEVELS[level]:
            return str(value)
        return None

    def expression(self, level: int) -> tuple[Any, ...]:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        left = self.expression(level + 1)
        while (op := self._operator(level)) is not None:
            self.take()
            if op in ("is", "as"):
                left = ("type", op, left, self.type_specifier())
            else:
                left = ("bin", op, left, self.expression(level + 1))
        return left

    def type_specifier(self) -> str:
        kind, name = self.take()
        if kind != "ident":
            raise UnsupportedExpression("type name expected")
        if self.peek() == ("op", ".") and self.tokens[self.pos + 1][0] == "ident" and name in ("FHIR", "System"):
            self.take()
            _, sub = self.take()
            return f"{name}.{sub}"
        return str(name)

    def unary(self) -> tuple[Any, ...]:
        kind, value = self.peek()
        if kind == "op" and value in ("+", "-"):
            self.take()
            operand = self.unary()
            if value == "-" and operand[0] == "lit" and isinstance(operand[1], int | float):
                return ("lit", -operand[1], operand[2])
            if value == "+":
                return operand
            raise UnsupportedExpression("unary minus")
        return self.postfix(self.term())

    def term(self) -> tuple[Any, ...]:
        kind, value = self.take()
        if kind == "str":
            return ("lit", value, "string")
        if kind == "num":
            return ("lit", value, "integer" if isinstance(value, int) else "decimal")
        if kind == "var":
            return ("var", value)
        if kind == "ident":
            if value in ("true", "false") and self.peek() != ("op", "("):
                return ("lit", value == "true", "boolean")
            return self.invocation(value)
        if kind == "op" and value == "(":
            inner = self.expression(0)
            self.expect(")")
            return inner
        raise UnsupportedExpression(f"unexpected token {value!r}")

    def invocation(self, name: str) -> tuple[Any, ...]:
        if self.peek() == ("op", "("):
            self.take()
            args: list[tuple[Any, ...]] = []
            if self.peek() != ("op", ")"):
                args.append(self.expression(0))
                while self.peek() == ("op", ","):
                    self.take()
                    args.append(self.expression(0))
            self.expect(")")
            return ("fn", name, args)
        return ("member", name)

    def postfix(self, base: tuple[Any, ...]) -> tuple[Any, ...]:
        if base[0] in ("member", "fn"):
            base = ("invoke", None, base)
        while True:
            tok = self.peek()
            if tok == ("op", "."):
                self.take()
                kind, name = self.take()
                if kind != "ident":
                    raise UnsupportedExpression("identifier expected after '.'")
                base = ("invoke", base, self.invocation(name))
            elif tok == ("op", "["):
                self.take()
                index = self.expression(0)
                self.expect("]")
                base = ("index", base, index)
            else:
                return base


# --------------------------------------------------------------------------------------------- types

_SUBTYPES: dict[str, frozenset[str]] = {
    "Quantity": frozenset({"Age", "Distance", "Duration", "Count", "SimpleQuantity", "MoneyQuantity"}),
    "string": frozenset({"code", "id", "markdown"}),
    "uri": frozenset({"url", "canonical", "oid", "uuid"}),
    "integer": frozenset({"positiveInt", "unsignedInt"}),
}
_SYSTEM_TYPES: dict[str, frozenset[str]] = {
    "String": frozenset({"string", "code", "id", "markdown", "uri", "url", "canonical", "oid", "uuid", "xhtml"}),
    "Boolean": frozenset({"boolean"}),
    "Integer": frozenset({"integer", "positiveInt", "unsignedInt"}),
    "Decimal": frozenset({"decimal"}),
    "Date": frozenset({"date"}),
    "DateTime": frozenset({"dateTime", "instant"}),
    "Time": frozenset({"time"}),
}


def type_matches(node: Node, type_name: str) -> bool:
    """FHIRPath ``is``: the node's type is ``type_name`` or one of its subtypes."""
    if type_name.startswith(("FHIR.", "System.")):
        type_name = type_name.split(".", 1)[1]
    actual = node.type
    if actual == type_name:
        return True
    if type_name in ("Resource", "DomainResource"):
        return isinstance(node.value, dict) and "resourceType" in node.value
    sub = _SUBTYPES.get(type_name)
    if sub is not None and actual in sub:
        return True
    system = _SYSTEM_TYPES.get(type_name)
    return system is not None and actual in system


def guess_type(value: Any) -> str:
    """Best-effort FHIR type of a bare JSON value (used for fhirpathpy results and unknown elements)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if not isinstance(value, dict):
        return ""
    if "resourceType" in value:
        return str(value["resourceType"])
    keys = value.keys()
    if "coding" in keys:
        return "CodeableConcept"
    if "reference" in keys or ("identifier" in keys and "value" not in keys) or ("type" in keys and "display" in keys):
        return "Reference"
    if "family" in keys or "given" in keys:
        return "HumanName"
    if "line" in keys or "city" in keys or "postalCode" in keys or "country" in keys:
        return "Address"
    if "low" in keys or "high" in keys:
        return "Range"
    if "start" in keys or "end" in keys:
        return "Period"
    if "event" in keys or "repeat" in keys:
        return "Timing"
    if "value" in keys and "system" in keys and ("use" in keys or "rank" in keys):
        return "ContactPoint"
    if "value" in keys and ("unit" in keys or "code" in keys or "comparator" in keys):
        return "Quantity"
    if "value" in keys and "currency" in keys:
        return "Money"
    if "value" in keys and ("system" in keys or "assigner" in keys or "type" in keys):
        return "Identifier"
    if "code" in keys or "system" in keys:
        return "Coding"
    if "text" in keys and len(keys) == 1:
        return "CodeableConcept"
    if "value" in keys:
        return "Quantity"
    return ""


_Candidate = tuple[str, str, str]  # (json key, FHIR type, navigation path); type "Resource" = dynamic


def _member_candidates(registry: Registry, path: str, name: str) -> tuple[_Candidate, ...]:
    if not path:
        return ((name, "", ""),)
    root = path.split(".", 1)[0]
    info = registry.element(path, name)
    if info is not None:
        if info.ref is not None:
            return ((name, "BackboneElement", f"{root}.{info.ref}"),)
        type_ = info.types[0] if info.types else "Element"
        if type_ in ("BackboneElement", "Element"):
            return ((name, type_, f"{root}.{info.path}"),)
        return ((name, type_, type_),)
    info = registry.element(path, name + "[x]")
    if info is not None:
        return tuple((name + t[0].upper() + t[1:], t, t) for t in info.types)
    return ((name, "", ""),)


# --------------------------------------------------------------------------------------------- compiler


def _truth(nodes: list[Node]) -> bool | None:
    """FHIRPath singleton evaluation as a boolean: empty → None, a boolean → itself, anything else → True."""
    if not nodes:
        return None
    if len(nodes) == 1:
        value = nodes[0].value
        return value if isinstance(value, bool) else True
    return True


def _bool_nodes(value: bool | None) -> list[Node]:
    return [] if value is None else [_node(value, "boolean", "boolean")]


class _Compiler:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def compile(self, ast: tuple[Any, ...]) -> Step:
        kind = ast[0]
        handler = getattr(self, f"_c_{kind}", None)
        if handler is None:
            raise UnsupportedExpression(kind)
        step: Step = handler(ast)
        return step

    def _c_lit(self, ast: tuple[Any, ...]) -> Step:
        result = [_node(ast[1], ast[2], ast[2])]
        return lambda focus, ctx: result

    def _c_var(self, ast: tuple[Any, ...]) -> Step:
        name = ast[1]
        if name in ("%resource", "%rootResource", "%context"):
            return lambda focus, ctx: [ctx.root]
        if name == "$this":
            return lambda focus, ctx: focus
        raise UnsupportedExpression(f"variable {name}")

    def _c_invoke(self, ast: tuple[Any, ...]) -> Step:
        base_ast, inv = ast[1], ast[2]
        step = self._member(inv[1], is_root=base_ast is None) if inv[0] == "member" else self._function(inv[1], inv[2])
        if base_ast is None:
            return step
        base = self.compile(base_ast)
        return lambda focus, ctx: step(base(focus, ctx), ctx)

    def _c_index(self, ast: tuple[Any, ...]) -> Step:
        base = self.compile(ast[1])
        if ast[2][0] != "lit" or not isinstance(ast[2][1], int):
            raise UnsupportedExpression("non-literal indexer")
        index: int = ast[2][1]

        def step(focus: list[Node], ctx: Context) -> list[Node]:
            nodes = base(focus, ctx)
            return [nodes[index]] if 0 <= index < len(nodes) else []

        return step

    def _c_type(self, ast: tuple[Any, ...]) -> Step:
        _, op, expr_ast, type_name = ast
        return self._type_op(op, self.compile(expr_ast), type_name)

    def _type_op(self, op: str, inner: Step, type_name: str) -> Step:
        if op == "as":
            return lambda focus, ctx: [n for n in inner(focus, ctx) if type_matches(n, type_name)]

        def is_step(focus: list[Node], ctx: Context) -> list[Node]:
            nodes = inner(focus, ctx)
            if len(nodes) != 1:
                return []
            return _bool_nodes(type_matches(nodes[0], type_name))

        return is_step

    def _c_bin(self, ast: tuple[Any, ...]) -> Step:
        _, op, left_ast, right_ast = ast
        left, right = self.compile(left_ast), self.compile(right_ast)
        if op == "|":
            return lambda focus, ctx: left(focus, ctx) + right(focus, ctx)
        if op in ("=", "!="):
            negate = op == "!="

            def eq_step(focus: list[Node], ctx: Context) -> list[Node]:
                a, b = left(focus, ctx), right(focus, ctx)
                if not a or not b:
                    return []
                if len(a) != len(b):
                    return _bool_nodes(negate)
                same = all(
                    x.value == y.value and isinstance(x.value, bool) == isinstance(y.value, bool)
                    for x, y in zip(a, b, strict=True)
                )
                return _bool_nodes(same != negate)

            return eq_step
        if op in ("and", "or", "xor", "implies"):

            def logic_step(focus: list[Node], ctx: Context) -> list[Node]:
                a, b = _truth(left(focus, ctx)), _truth(right(focus, ctx))
                if op == "and":
                    if a is False or b is False:
                        return _bool_nodes(False)
                    return _bool_nodes(None if a is None or b is None else True)
                if op == "or":
                    if a is True or b is True:
                        return _bool_nodes(True)
                    return _bool_nodes(None if a is None or b is None else False)
                if op == "xor":
                    return _bool_nodes(None if a is None or b is None else a != b)
                if a is False or b is True:
                    return _bool_nodes(True)
                return _bool_nodes(None if a is None or b is None else False)

            return logic_step
        raise UnsupportedExpression(f"operator {op}")

    # -- navigation

    def _member(self, name: str, *, is_root: bool) -> Step:
        if is_root and name[:1].isupper():
            # a leading type name filters the focus (Observation.code, Resource.meta.tag)
            def type_filter(focus: list[Node], ctx: Context) -> list[Node]:
                return [n for n in focus if type_matches(n, name)]

            return type_filter
        registry = self.registry
        cache: dict[str, tuple[_Candidate, ...]] = {}

        def member_step(focus: list[Node], ctx: Context) -> list[Node]:
            out: list[Node] = []
            append = out.append
            for n in focus:
                value = n.value
                if type(value) is not dict:
                    continue
                candidates = cache.get(n.path)
                if candidates is None:
                    candidates = cache[n.path] = _member_candidates(registry, n.path, name)
                for key, type_, path in candidates:
                    item = value.get(key)
                    if item is None:
                        continue
                    items = item if type(item) is list else (item,)
                    for x in items:
                        if x is None:
                            continue
                        if type_ == "Resource" or not type_:
                            if type(x) is dict and "resourceType" in x:
                                rtype = x["resourceType"]
                                append(_new_node((x, rtype, rtype)))
                            elif not type_:
                                append(_new_node((x, guess_type(x), "")))
                            continue
                        append(_new_node((x, type_, path)))
            return out

        return member_step

    # -- functions

    def _function(self, name: str, args: list[tuple[Any, ...]]) -> Step:
        nargs = len(args)
        if name in ("as", "ofType", "is") and nargs == 1:
            type_ast = args[0]
            if (
                type_ast[0] == "invoke"
                and type_ast[2][0] == "member"
                and type_ast[1] in (None, ("invoke", None, ("member", "FHIR")))
            ):
                type_name = type_ast[2][1]
            else:
                raise UnsupportedExpression(f"{name}() argument")
            identity: Step = lambda focus, ctx: focus  # noqa: E731
            return self._type_op("is" if name == "is" else "as", identity, type_name)
        if name == "where" and nargs == 1:
            criteria = self.compile(args[0])
            return lambda focus, ctx: [n for n in focus if _truth(criteria([n], ctx))]
        if name == "exists" and nargs <= 1:
            if nargs == 0:
                return lambda focus, ctx: _bool_nodes(bool(focus))
            crit = self.compile(args[0])
            return lambda focus, ctx: _bool_nodes(any(_truth(crit([n], ctx)) for n in focus))
        if name == "empty" and nargs == 0:
            return lambda focus, ctx: _bool_nodes(not focus)
        if name == "not" and nargs == 0:

            def not_step(focus: list[Node], ctx: Context) -> list[Node]:
                truth = _truth(focus)
                return _bool_nodes(None if truth is None else not truth)

            return not_step
        if name == "first" and nargs == 0:
            return lambda focus, ctx: focus[:1]
        if name == "last" and nargs == 0:
            return lambda focus, ctx: focus[-1:]
        if name == "tail" and nargs == 0:
            return lambda focus, ctx: focus[1:]
        if name == "count" and nargs == 0:
            return lambda focus, ctx: [_node(len(focus), "integer", "integer")]
        if name == "hasValue" and nargs == 0:
            return lambda focus, ctx: _bool_nodes(len(focus) == 1 and not isinstance(focus[0].value, dict | list))
        if name == "extension" and nargs == 1 and args[0][0] == "lit" and isinstance(args[0][1], str):
            url = args[0][1]

            def extension_step(focus: list[Node], ctx: Context) -> list[Node]:
                out = []
                for n in focus:
                    if type(n.value) is dict:
                        for ext in n.value.get("extension") or ():
                            if type(ext) is dict and ext.get("url") == url:
                                out.append(_new_node((ext, "Extension", "Extension")))
                return out

            return extension_step
        if name == "resolve" and nargs == 0:
            return _resolve
        if name == "startsWith" and nargs == 1 and args[0][0] == "lit" and isinstance(args[0][1], str):
            prefix = args[0][1]
            return lambda focus, ctx: (
                _bool_nodes(focus[0].value.startswith(prefix))
                if len(focus) == 1 and isinstance(focus[0].value, str)
                else []
            )
        raise UnsupportedExpression(f"function {name}/{nargs}")


def _resolve(focus: list[Node], ctx: Context) -> list[Node]:
    """``resolve()`` without a server: the type/id the reference string tells, or the contained resource."""
    out = []
    for n in focus:
        value = n.value
        if isinstance(value, dict):
            ref = value.get("reference")
        elif isinstance(value, str) and n.type in ("canonical", "uri", "url"):
            ref = value
        else:
            continue
        if not isinstance(ref, str):
            continue
        if ref.startswith("#"):
            root = ctx.root.value
            for res in root.get("contained") or () if isinstance(root, dict) else ():
                if isinstance(res, dict) and res.get("id") == ref[1:] and "resourceType" in res:
                    out.append(_new_node((res, res["resourceType"], res["resourceType"])))
            continue
        rtype, rid, _, _ = parse_reference(ref)
        if rtype is not None:
            out.append(_new_node(({"resourceType": rtype, "id": rid}, rtype, rtype)))
    return out


# --------------------------------------------------------------------------------------------- public API


class CompiledExpression:
    """A compiled (or fhirpathpy fallback) expression.

    ``expr(resource)`` evaluates on a resource; ``expr.evaluate(focus, root)`` on given nodes (composite
    components are evaluated relative to the base element, with ``%resource`` = ``root``).
    """

    __slots__ = ("_fallback", "_step", "compiled", "expression")

    def __init__(self, expression: str, step: Step | None, fallback: Any = None) -> None:
        self.expression = expression
        self._step = step
        self._fallback = fallback
        self.compiled = step is not None

    def __call__(self, resource: dict[str, Any]) -> list[Node]:
        rtype = resource.get("resourceType", "") if isinstance(resource, dict) else ""
        root = _new_node((resource, rtype, rtype))
        return self.evaluate([root], root)

    def evaluate(self, focus: list[Node], root: Node | dict[str, Any]) -> list[Node]:
        if not isinstance(root, Node):
            rtype = root.get("resourceType", "")
            root = _new_node((root, rtype, rtype))
        if self._step is not None:
            return self._step(focus, Context(root))
        results: list[Node] = []
        for n in focus:
            for value in self._fallback([n.value], {"resource": root.value, "rootResource": root.value}):
                if isinstance(value, dict | str | int | float | bool):
                    results.append(_new_node((value, guess_type(value), "")))
                else:
                    results.append(_new_node((str(value), "string", "")))
        return results

    def __repr__(self) -> str:
        mode = "compiled" if self.compiled else "fhirpathpy"
        return f"CompiledExpression({self.expression!r}, {mode})"


_STATS = {"compiled": 0, "fallback": 0}
_FALLBACKS: list[str] = []

_RESOLVE_IS_RE = re.compile(r"where\(resolve\(\) is (\w+)\)")


def fhirpathpy_expression(expression: str, resource_type: str | None = None) -> str:
    """Rewrite an expression into one fhirpathpy evaluates like this module: ``where(resolve() is T)`` becomes
    a test on the reference string, ``Resource.`` roots become the concrete type, ``as(DateTime)`` →
    ``as(dateTime)``."""
    expression = _RESOLVE_IS_RE.sub(
        lambda m: f"where(reference.startsWith('{m[1]}/') or reference.contains('/{m[1]}/'))", expression
    )
    expression = expression.replace("as(DateTime)", "as(dateTime)")
    if resource_type:
        expression = re.sub(r"(?<![\w.])(?:Resource|DomainResource)\.", f"{resource_type}.", expression)
    return expression


def _fhirpathpy_compile(expression: str) -> Any:
    import fhirpathpy
    from fhirpathpy.models import models

    return fhirpathpy.compile(fhirpathpy_expression(expression), model=models["r4"])


@cache
def compile_expression(expression: str) -> CompiledExpression:
    """Compile ``expression`` once (cached); falls back to fhirpathpy when outside the supported subset."""
    try:
        step = _Compiler(get_registry()).compile(_Parser(_tokenize(expression)).parse())
    except UnsupportedExpression as exc:
        _STATS["fallback"] += 1
        _FALLBACKS.append(expression)
        log.debug("FHIRPath %r not compiled (%s): using fhirpathpy", expression, exc)
        return CompiledExpression(expression, None, _fhirpathpy_compile(expression))
    _STATS["compiled"] += 1
    return CompiledExpression(expression, step)


@cache
def compile_with_fhirpathpy(expression: str) -> CompiledExpression:
    """The expression evaluated by fhirpathpy only (reference implementation for tests and benchmarks)."""
    return CompiledExpression(expression, None, _fhirpathpy_compile(expression))


def compile_stats() -> dict[str, Any]:
    """How many distinct expressions were compiled / handed to fhirpathpy so far (and which)."""
    return {
        "compiled": _STATS["compiled"],
        "fallback": _STATS["fallback"],
        "fallback_expressions": list(_FALLBACKS),
    }
