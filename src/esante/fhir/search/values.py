"""Value-level helpers of the search parser: escapes, prefixes and the per-type index predicates.

Each builder turns one (already OR-split) search value into a :class:`Pred` on one index row (``{x}``), with
the user's text only ever in the bound parameters.
"""

from __future__ import annotations

import time

from esante.db.engine import Dialect
from esante.fhir.search.compile import Pred, and_preds, or_preds
from esante.fhir.values import MAX_MICROS, MIN_MICROS, normalize_string, number_range, parse_date_range

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
ONE_DAY = 86_400_000_000
_ESCAPER = Dialect("postgresql")  # LIKE escaping is identical on both engines
ESCAPE = " ESCAPE '\\'"


class ValueError400(ValueError):
    """A malformed search value (turned into a 400 naming the parameter by the parser)."""


def split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash; escapes are kept (see :func:`unescape`)."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    r"""Undo the search escapes ``\,`` ``\$`` ``\|`` ``\\``; other backslashes stay as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in ",$|\\":
            out.append(text[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def like_prefix(text: str) -> str:
    return _ESCAPER.like_escape(text) + "%"


def like_contains(text: str) -> str:
    return "%" + _ESCAPER.like_escape(text) + "%"


def split_prefix(value: str) -> tuple[str, str]:
    """``("ge", "2020")`` from ``"ge2020"``; ``("eq", value)`` when no prefix is written."""
    if len(value) >= 2 and value[:2].isalpha():
        prefix = value[:2]
        if prefix not in PREFIXES:
            raise ValueError400(f"unknown prefix {prefix!r} in {value!r}")
        return prefix, value[2:]
    return "eq", value


# ------------------------------------------------------------------------------------------------- strings


def string_pred(value: str, modifier: str | None) -> Pred:
    text = unescape(value)
    if modifier == "exact":
        return Pred("{x}.value_exact = ?", (text,))
    norm = normalize_string(text)
    if modifier == "contains":
        return Pred("{x}.value_norm LIKE ?" + ESCAPE, (like_contains(norm),))
    if not norm:
        return Pred("{x}.value_norm LIKE ?" + ESCAPE, (like_prefix(norm),))
    # value_norm is compared in code-point order on both engines (COLLATE "C" on PostgreSQL, BINARY on SQLite),
    # so [prefix, next-prefix) bounds the index range scan on both sides; LIKE keeps the exact semantics.
    upper = norm[:-1] + chr(ord(norm[-1]) + 1)
    return Pred(
        "{x}.value_norm >= ? AND {x}.value_norm < ? AND {x}.value_norm LIKE ?" + ESCAPE,
        (norm, upper, like_prefix(norm)),
    )


# -------------------------------------------------------------------------------------------------- tokens


def system_code_pred(
    value: str, system_col: str = "system", code_col: str = "code", allow_system_only: bool = True
) -> Pred:
    """``code`` | ``system|code`` | ``|code`` | ``system|`` on a (system, code) pair of columns."""
    parts = split_escaped(value, "|")
    if len(parts) == 1:
        return Pred(f"{{x}}.{code_col} = ?", (unescape(parts[0]),))
    if len(parts) != 2:
        raise ValueError400(f"expected [system|]code, got {value!r}")
    system, code = unescape(parts[0]), unescape(parts[1])
    if not system and not code:
        raise ValueError400(f"empty system and code in {value!r}")
    if not system:
        return Pred(f"{{x}}.{system_col} IS NULL AND {{x}}.{code_col} = ?", (code,))
    if not code:
        if not allow_system_only:
            raise ValueError400(f"missing code in {value!r}")
        return Pred(f"{{x}}.{system_col} = ?", (system,))
    return Pred(f"{{x}}.{code_col} = ? AND {{x}}.{system_col} = ?", (code, system))


def token_text_pred(value: str) -> Pred:
    norm = normalize_string(unescape(value))
    return Pred("{x}.text_norm >= ? AND {x}.text_norm LIKE ?" + ESCAPE, (norm, like_prefix(norm)))


def of_type_pred(value: str) -> Pred:
    parts = split_escaped(value, "|")
    if len(parts) != 3 or not all(parts[1:]):
        raise ValueError400(f":of-type expects type-system|type-code|value, got {value!r}")
    system, type_code, ident = (unescape(p) for p in parts)
    code = f"{type_code}|{ident}"
    if not system:
        return Pred("{x}.system IS NULL AND {x}.code = ?", (code,))
    return Pred("{x}.code = ? AND {x}.system = ?", (code, system))


def parent_paths(uri: str) -> list[str]:
    """``http://a/b/c`` → [``http://a/b/c``, ``http://a/b``, ``http://a``] (never the bare scheme)."""
    out = [uri]
    scheme, sep, rest = uri.partition("://")
    head = f"{scheme}{sep}" if sep else ""
    body = rest if sep else uri
    segments = body.rstrip("/").split("/")
    for n in range(len(segments) - 1, 0, -1):
        candidate = head + "/".join(segments[:n])
        if candidate not in out:
            out.append(candidate)
    return out


def hierarchy_pred(value: str, modifier: str, column: str) -> Pred:
    """``:below`` (the value and every path under it) / ``:above`` (the value and its parent paths)."""
    text = unescape(value)
    if modifier == "below":
        base = text.rstrip("/")
        return Pred(f"{{x}}.{column} = ? OR {{x}}.{column} LIKE ?" + ESCAPE, (text, _ESCAPER.like_escape(base) + "/%"))
    paths = parent_paths(text)
    return Pred(f"{{x}}.{column} IN ({', '.join('?' * len(paths))})", tuple(paths))


def token_hierarchy_pred(value: str, modifier: str) -> Pred:
    parts = split_escaped(value, "|")
    if len(parts) == 1:
        return hierarchy_pred(parts[0], modifier, "code")
    if len(parts) != 2 or not parts[1]:
        raise ValueError400(f"expected [system|]code, got {value!r}")
    code_pred = hierarchy_pred(parts[1], modifier, "code")
    system = unescape(parts[0])
    system_pred = Pred("{x}.system = ?", (system,)) if system else Pred("{x}.system IS NULL")
    return and_preds(code_pred, system_pred)


# ------------------------------------------------------------------------------------------ dates, numbers


def date_range_pred(prefix: str, slo: int, shi: int, lo: str, hi: str, now: int | None = None) -> Pred:
    """Range semantics of the date prefixes; target ``[lo, hi]`` vs search ``[slo, shi]`` (inclusive).

    * eq: the target lies within the search range (``lo >= slo and hi <= shi``); ne: not eq;
    * gt: ``hi > shi``; lt: ``lo < slo``; ge: gt or eq; le: lt or eq;
    * sa (starts after): ``lo > shi``; eb (ends before): ``hi < slo``;
    * ap: the target overlaps the search range widened on both sides by ``w`` = max(one day, 10 % of the
      distance between now and the search range (0 when now lies inside it)).
    """
    eq = Pred(f"{lo} >= ? AND {hi} <= ?", (slo, shi))
    if prefix == "eq":
        return eq
    if prefix == "ne":
        return Pred(f"{lo} < ? OR {hi} > ?", (slo, shi))
    if prefix == "gt":
        return Pred(f"{hi} > ?", (shi,))
    if prefix == "lt":
        return Pred(f"{lo} < ?", (slo,))
    if prefix == "ge":
        return or_preds([Pred(f"{hi} > ?", (shi,)), eq])
    if prefix == "le":
        return or_preds([Pred(f"{lo} < ?", (slo,)), eq])
    if prefix == "sa":
        return Pred(f"{lo} > ?", (shi,))
    if prefix == "eb":
        return Pred(f"{hi} < ?", (slo,))
    alo, ahi = approximate_range(slo, shi, now)
    return Pred(f"{lo} <= ? AND {hi} >= ?", (ahi, alo))


def approximate_range(slo: int, shi: int, now: int | None = None) -> tuple[int, int]:
    """The search range widened for ``ap`` (see :func:`date_range_pred`)."""
    if now is None:
        now = time.time_ns() // 1000
    distance = 0 if slo <= now <= shi else min(abs(now - slo), abs(now - shi))
    width = max(ONE_DAY, distance // 10)
    return max(MIN_MICROS, slo - width), min(MAX_MICROS, shi + width)


def date_pred(value: str, lo: str = "{x}.lo", hi: str = "{x}.hi") -> Pred:
    prefix, text = split_prefix(unescape(value))
    try:
        slo, shi = parse_date_range(text)
    except ValueError as exc:
        raise ValueError400(str(exc)) from None
    return date_range_pred(prefix, slo, shi, lo, hi)


def number_value_pred(prefix: str, text: str, column: str = "{x}.value") -> Pred:
    """Number prefixes on a stored point value. ``eq``/``ne`` use the search value's implicit precision
    range [lo, hi) ("100" → [99.5, 100.5)); ``ap`` is within 10 % of the value (at least that range)."""
    try:
        value, lo, hi = number_range(text)
    except ValueError as exc:
        raise ValueError400(str(exc)) from None
    if prefix == "eq":
        return Pred(f"{column} >= ? AND {column} < ?", (lo, hi))
    if prefix == "ne":
        return Pred(f"{column} < ? OR {column} >= ?", (lo, hi))
    if prefix in ("gt", "sa"):
        return Pred(f"{column} > ?", (value,))
    if prefix in ("lt", "eb"):
        return Pred(f"{column} < ?", (value,))
    if prefix == "ge":
        return Pred(f"{column} >= ?", (value,))
    if prefix == "le":
        return Pred(f"{column} <= ?", (value,))
    delta = max(abs(value) * 0.1, (hi - lo) / 2)
    return Pred(f"{column} >= ? AND {column} <= ?", (value - delta, value + delta))


def number_pred(value: str) -> Pred:
    prefix, text = split_prefix(unescape(value))
    return number_value_pred(prefix, text)


def quantity_pred(value: str) -> Pred:
    """``[prefix]number[|system|code]``: without a system the code matches the code or the unit."""
    parts = split_escaped(value, "|")
    if len(parts) not in (1, 3):
        raise ValueError400(f"expected [prefix]number[|system|code], got {value!r}")
    prefix, text = split_prefix(unescape(parts[0]))
    number = number_value_pred(prefix, text)
    if len(parts) == 1:
        return number
    system, code = unescape(parts[1]), unescape(parts[2])
    if system and code:
        return and_preds(number, Pred("{x}.code = ? AND {x}.system = ?", (code, system)))
    if code:
        return and_preds(number, Pred("{x}.code = ? OR {x}.unit = ?", (code, code)))
    if system:
        return and_preds(number, Pred("{x}.system = ?", (system,)))
    return number


def uri_pred(value: str, modifier: str | None) -> Pred:
    if modifier in ("above", "below"):
        return hierarchy_pred(value, modifier, "value")
    return Pred("{x}.value = ?", (unescape(value),))
