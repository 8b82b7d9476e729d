"""The filter language of run searches: MLflow's filter grammar (a subset), shared by the MLflow API
(:mod:`runlab.server.api.mlflow`, which filters in Python) and the studio's runs table
(:mod:`runlab.store.sql.queries`, which turns the conditions into SQL with bound parameters).

A filter is conditions joined by AND (``and`` too: keywords are case-insensitive), each
``<entity>.<key> <comparator> <value>`` or ``<attribute> <comparator> <value>``; keys are bare,
`backticked` or "double-quoted"; strings in single or double quotes (``''`` or ``""`` inside for the
quote itself); numbers (finite ones). LIKE and ILIKE patterns take ``%`` (any characters) and ``_`` (one),
and a backslash before either (or before itself) for the character itself, on every store. A NUL
character is refused anywhere (no name or value can hold one); at most :data:`MAX_CONDITIONS` conditions. Anything else is refused with a :class:`FilterError` that names the token
(its text and position) and what was expected there. Nothing of a filter string is ever SQL text.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Callable, Mapping

from runlab.core.errors import UserError
from runlab.core.names import shown

MAX_FILTER_LENGTH = 10_000
# Each condition is a subquery: PostgreSQL plans hundreds of them for minutes (50: about half a second).
MAX_CONDITIONS = 50

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:`[^`]+`|"(?:[^"]|"")+"|[A-Za-z0-9_][A-Za-z0-9_./:\-]*))?)
  | (?P<op>!=|<=|>=|=|<|>)
  | (?P<punct>[(),])
""", re.VERBOSE)
KEYWORDS = {"AND", "LIKE", "ILIKE", "IN", "NOT", "ASC", "DESC"}
MLFLOW_ENTITIES = {"metric": "metric", "metrics": "metric", "param": "param", "params": "param",
                   "parameter": "param", "parameters": "param", "tag": "tag", "tags": "tag",
                   "attribute": "attribute", "attributes": "attribute", "attr": "attribute", "run": "attribute"}
NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")


class FilterError(UserError):
    """A filter or order-by that cannot be parsed: ``position`` (0-based) and ``token`` say where, the
    message what was expected there."""


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, ident, op, punct, keyword
    text: str
    value: Any
    at: int


@dataclass(frozen=True)
class Field:
    entity: str  # metric, param, tag, attribute
    key: str


@dataclass(frozen=True)
class Grammar:
    """What a search may filter and sort on: attribute names, string or number; the entity prefixes
    it knows (``metrics.``, ``tags.``...)."""

    what: str
    string_attributes: frozenset[str]
    number_attributes: frozenset[str]
    entities: frozenset[str]
    aliases: Mapping[str, str]
    entity_names: Mapping[str, str] = dc_field(default_factory=lambda: dict(MLFLOW_ENTITIES))


def _error(message: str, token: Token | None, expected: str = "") -> FilterError:
    return FilterError(message, position=None if token is None else token.at,
                       token=None if token is None else token.text, expected=expected)


def unquote(text: str) -> str:
    quote = text[0]
    return text[1:-1].replace(quote * 2, quote) if quote in "'\"" else text[1:-1]


def tokenize(text: str, what: str = "filter") -> list[Token]:
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"Invalid {what}: {len(text):,} characters, more than {MAX_FILTER_LENGTH:,}",
                          position=MAX_FILTER_LENGTH, token=None, expected="a shorter filter")
    tokens: list[Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            hint = ""
            if text[at] == "." and tokens and tokens[-1].kind == "ident" and tokens[-1].at + len(tokens[-1].text) == at:
                hint = (f" (a key with characters other than letters, digits, '_', '.', ':', '-' and '/' goes in "
                        f"backticks: {tokens[-1].text}.`key`)")
            raise FilterError(f"Invalid {what} {shown(text)}: unexpected {text[at]!r} at position {at}{hint}",
                              position=at, token=text[at], expected="a name, a comparator, a quoted string or a number")
        kind = match.lastgroup or ""
        word = match.group()
        if "\x00" in word:  # no name or value holds one (PostgreSQL refuses it in any text)
            raise FilterError(f"Invalid {what} {shown(text)}: {shown(word)} at position {at} holds a NUL character "
                              "(\\x00), which no name or value can hold: remove it", position=at, token=word,
                              expected="text without NUL characters")
        if kind == "string":
            tokens.append(Token(kind, word, unquote(word), at))
        elif kind == "number":
            number = float(word)
            if not math.isfinite(number):
                raise FilterError(f"Invalid {what} {shown(text)}: {word} at position {at} is not a finite number "
                                  f"(numbers are at most {sys.float_info.max:.4g} either way)", position=at,
                                  token=word, expected="a finite number")
            tokens.append(Token(kind, word, number, at))
        elif kind == "ident" and "." not in word and word.upper() in KEYWORDS:
            tokens.append(Token("keyword", word, word.upper(), at))
        elif kind != "space":
            tokens.append(Token(kind, word, word, at))
        at = match.end()
    return tokens


def parse_field(token: Token, grammar: Grammar, what: str = "filter") -> Field:
    if token.kind != "ident":
        raise _error(f"Invalid {what}: expected a name such as metrics.loss or tags.stage at position {token.at}, "
                     f"got {shown(token.text)}", token, "a name")
    prefix, dot, key = token.text.partition(".")
    if dot:
        entity = grammar.entity_names.get(prefix.lower())
        if entity is None or entity not in grammar.entities:
            kinds = ", ".join(sorted({k for k, v in grammar.entity_names.items()
                                      if v in grammar.entities and k.endswith("s")}))
            raise _error(f"Invalid {what}: {shown(prefix)} at position {token.at} is not something {grammar.what} "
                         f"can be searched by (use {kinds})", token, kinds)
        key = unquote(key) if key[:1] in "`\"" else key
    else:
        entity, key = "attribute", prefix
    if entity == "attribute":
        key = grammar.aliases.get(key, key)
        if key not in grammar.string_attributes | grammar.number_attributes:
            names = ", ".join(sorted(grammar.string_attributes | grammar.number_attributes))
            raise _error(f"Invalid {what}: {shown(key)} at position {token.at} is not an attribute of "
                         f"{grammar.what} (use {names})", token, names)
    return Field(entity, key)


def is_number_field(field: Field, grammar: Grammar) -> bool:
    return field.entity == "metric" or (field.entity == "attribute" and field.key in grammar.number_attributes)


LIKE_ESCAPE = "\\"


def like_pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a LIKE pattern (a backslash not before ``%``, ``_`` or another backslash),
    or None."""
    at = 0
    while at < len(pattern):
        if pattern[at] == LIKE_ESCAPE:
            if at + 1 >= len(pattern) or pattern[at + 1] not in "%_\\":
                return (f"a backslash escapes only %, _ or a backslash (\\%, \\_, \\\\); got '{pattern[at:at + 2]}' "
                        f"at character {at} of the pattern")
            at += 1
        at += 1
    return None


def _like_parts(pattern: str) -> list[list[str | None]]:
    """The pattern split at its unescaped ``%``: each part a list of characters, None for ``_``."""
    parts: list[list[str | None]] = [[]]
    at = 0
    while at < len(pattern):
        c = pattern[at]
        if c == LIKE_ESCAPE and at + 1 < len(pattern):
            parts[-1].append(pattern[at + 1])
            at += 2
            continue
        if c == "%":
            parts.append([])
        else:
            parts[-1].append(None if c == "_" else c)
        at += 1
    return parts


def like(value: str, pattern: str, *, ignore_case: bool) -> bool:
    """SQL's LIKE (``%`` any characters, ``_`` one, a backslash before either, or before itself, for
    the character itself), matched without regular expressions: a pattern from a request never costs
    more than its length times the value's. The SQL stores match the same way (``ESCAPE '\\'``)."""
    if ignore_case:
        value, pattern = value.lower(), pattern.lower()

    def fits(segment: list[str | None], at: int) -> bool:
        return at + len(segment) <= len(value) and all(c is None or value[at + i] == c for i, c in enumerate(segment))

    parts = _like_parts(pattern)
    if len(parts) == 1:
        return len(value) == len(parts[0]) and fits(parts[0], 0)
    first, *middle, last = parts
    if not fits(first, 0):
        return False
    at = len(first)
    for segment in middle:
        while at + len(segment) <= len(value) and not fits(segment, at):
            at += 1
        if at + len(segment) > len(value):
            return False
        at += len(segment)
    end = len(value) - len(last)
    return end >= at and fits(last, end)


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Condition:
    field: Field
    op: str  # = != < <= > >= LIKE ILIKE IN NOT IN
    value: Any  # a float, a str, or a tuple of str for IN
    at: int = 0  # where the condition starts in the filter

    def matches(self, row: Any) -> bool:
        """Whether ``row`` (anything with ``value(field)``) meets the condition."""
        actual = row.value(self.field)
        if actual is None:
            return False  # as MLflow: a run without the metric, param or tag matches no comparison
        if self.op in ("IN", "NOT IN"):
            return (actual in self.value) == (self.op == "IN")
        if self.op == "LIKE":
            return like(str(actual), self.value, ignore_case=False)
        if self.op == "ILIKE":
            return like(str(actual), self.value, ignore_case=True)
        return bool(COMPARE[self.op](actual, self.value))


def parse_filter(text: str, grammar: Grammar) -> list[Condition]:
    """The filter as conditions that all must hold; :class:`FilterError` (naming the token, its
    position and what was expected) otherwise."""
    tokens = tokenize(text, "filter")
    conditions: list[Condition] = []
    at = 0
    head = f"Invalid filter {shown(text)}"

    def take(expected: str) -> Token:
        nonlocal at
        if at >= len(tokens):
            raise FilterError(f"{head}: it ends too early at position {len(text)}: expected {expected}",
                              position=len(text), token=None, expected=expected)
        token = tokens[at]
        at += 1
        return token

    while at < len(tokens):
        if conditions:
            joiner = take("AND")
            if joiner.value != "AND":
                raise _error(f"{head}: conditions are joined by AND only, got {shown(joiner.text)} at position "
                             f"{joiner.at}", joiner, "AND")
        name = take("a name such as metrics.loss")
        if len(conditions) >= MAX_CONDITIONS:
            raise _error(f"{head}: a filter has at most {MAX_CONDITIONS} conditions; the one at position {name.at} "
                         f"is the {len(conditions) + 1}th (use IN (...) for many values of one key)", name,
                         f"at most {MAX_CONDITIONS} conditions")
        field = parse_field(name, grammar)
        number = is_number_field(field, grammar)
        allowed = NUMBER_OPS if number else STRING_OPS
        op_token = take(f"a comparator ({', '.join(allowed)})")
        op = op_token.value if op_token.kind in ("op", "keyword") else None
        if op == "NOT":
            after = take("IN")
            if after.value != "IN":
                raise _error(f"{head}: NOT is only allowed before IN, got {shown(after.text)} at position "
                             f"{after.at}", after, "IN")
            op = "NOT IN"
        if op not in allowed:
            raise _error(f"{head}: {shown(op_token.text)} at position {op_token.at} is not a comparator for "
                         f"{field.entity} {field.key!r} (use {', '.join(allowed)})", op_token, ", ".join(allowed))
        if op in ("IN", "NOT IN"):
            opening = take("(")
            if opening.text != "(":
                raise _error(f"{head}: IN takes a list of strings in parentheses, got {shown(opening.text)} at "
                             f"position {opening.at}", opening, "(")
            values = []
            while True:
                item = take("a quoted string")
                if item.kind != "string":
                    raise _error(f"{head}: IN takes quoted strings, got {shown(item.text)} at position {item.at}",
                                 item, "a quoted string")
                values.append(item.value)
                end = take("',' or ')'")
                if end.text == ")":
                    break
                if end.text != ",":
                    raise _error(f"{head}: expected ',' or ')' at position {end.at}, got {shown(end.text)}",
                                 end, "',' or ')'")
            conditions.append(Condition(field, op, tuple(values), name.at))
            continue
        value = take("a number" if number else "a quoted string")
        if number and value.kind != "number":
            raise _error(f"{head}: {field.entity} {field.key!r} is compared with a number, got "
                         f"{shown(value.text)} at position {value.at}", value, "a number")
        if not number and value.kind != "string":
            raise _error(f"{head}: {field.entity} {field.key!r} is compared with a quoted string, got "
                         f"{shown(value.text)} at position {value.at}", value, "a quoted string")
        if op in ("LIKE", "ILIKE") and (why := like_pattern_error(value.value)) is not None:
            raise _error(f"{head}: the pattern {shown(value.text)} at position {value.at} is not a LIKE pattern: "
                         f"{why}", value, "a LIKE pattern")
        conditions.append(Condition(field, op, value.value, name.at))
    return conditions


@dataclass(frozen=True)
class Order:
    field: Field
    descending: bool


def parse_order_by(text: str, grammar: Grammar) -> Order:
    what = "order_by"
    tokens = tokenize(text, what)
    if not tokens or len(tokens) > 2 or (len(tokens) == 2 and tokens[1].value not in ("ASC", "DESC")):
        bad = tokens[2] if len(tokens) > 2 else (tokens[1] if len(tokens) == 2 else None)
        raise _error(f"Invalid order_by {shown(text)}: use a name and ASC or DESC, such as 'metrics.loss ASC'",
                     bad, "a name and ASC or DESC")
    return Order(parse_field(tokens[0], grammar, what), len(tokens) == 2 and tokens[1].value == "DESC")


__all__ = ["COMPARE", "Condition", "Field", "FilterError", "Grammar", "LIKE_ESCAPE", "MAX_CONDITIONS", "MAX_FILTER_LENGTH", "Order",
           "Token", "is_number_field", "like", "like_pattern_error", "parse_field", "parse_filter", "parse_order_by", "tokenize"]
