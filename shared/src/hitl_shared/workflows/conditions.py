"""Risk-rule conditions: a tiny, safe expression language over an item's input and AI output.

Operators write conditions such as ``input.amount > 10000`` or
``output.label in ["refund", "legal"] and input.customer_tier == "vip"``. Nothing here is
ever handed to ``eval``: the text is tokenised and parsed into a small tree of
comparisons, and evaluation only reads values out of plain JSON data (dict keys and list
indexes; never attributes). A condition that compares values of different kinds is simply
false, so hostile or odd item data cannot raise at routing time.

Grammar::

    expr     := or
    or       := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | atom
    atom     := "(" expr ")" | operand [test]
    test     := ("==" | "!=" | ">" | ">=" | "<" | "<=" | "in" | "not in" | "contains") operand
              | "exists" | "missing"
    operand  := path | literal | list
    path     := ("input" | "output") ("." NAME | "[" (INT | STRING) "]")* | "confidence"
    literal  := NUMBER | STRING | true | false | null
    list     := "[" [literal ("," literal)*] "]"

A bare path (``input.urgent``) is true when the value is ``true``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 1000
MAX_DEPTH = 32
MAX_LIST = 200
MAX_PATH = 16

OPERATORS = ("==", "!=", ">", ">=", "<", "<=", "in", "not in", "contains", "exists", "missing")
# Structured rules spell operators as words, which YAML needs no quoting for.
OP_WORDS = {
    "eq": "==",
    "ne": "!=",
    "gt": ">",
    "ge": ">=",
    "gte": ">=",
    "lt": "<",
    "le": "<=",
    "lte": "<=",
    "in": "in",
    "not_in": "not in",
    "contains": "contains",
    "exists": "exists",
    "missing": "missing",
}
ROOTS = ("input", "output")


class ConditionError(ValueError):
    """The condition text is not valid; the message says where and why."""


_MISSING = object()


@dataclass(frozen=True)
class Path:
    root: str  # "input", "output" or "confidence"
    keys: tuple[str | int, ...]

    def text(self) -> str:
        out = self.root
        for k in self.keys:
            out += f"[{k}]" if isinstance(k, int) else f".{k}"
        return out

    def lookup(self, data: Mapping[str, Any]) -> Any:
        value: Any = data.get(self.root, _MISSING)
        for key in self.keys:
            if isinstance(key, int):
                if not isinstance(value, list) or not -len(value) <= key < len(value):
                    return _MISSING
                value = value[key]
            else:
                if not isinstance(value, dict) or key not in value:
                    return _MISSING
                value = value[key]
        return value


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Compare:
    left: Path | Literal
    op: str
    right: Path | Literal | None  # None for exists / missing


@dataclass(frozen=True)
class Truthy:
    operand: Path | Literal


@dataclass(frozen=True)
class Not:
    inner: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" / "or"
    parts: tuple[Node, ...]


Node = Compare | Truthy | Not | BoolOp

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|>=|<=|>|<)
  | (?P<punct>[()\[\],.])
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _unquote(raw: str, pos: int) -> str:
    body = raw[1:-1]
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in _ESCAPES:
                raise ConditionError(f"unknown escape \\{nxt} in the string at column {pos + 1}")
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _tokenise(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "\"'":
                raise ConditionError(f"the string starting at column {pos + 1} is not closed")
            raise ConditionError(f"unexpected character {ch!r} at column {pos + 1}")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    tokens.append(_Tok("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenise(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.i]

    def _where(self, tok: _Tok | None = None) -> str:
        tok = tok or self.tok
        return "at the end" if tok.kind == "end" else f"at column {tok.pos + 1}"

    def _fail(self, what: str) -> ConditionError:
        shown = "the end of the condition" if self.tok.kind == "end" else repr(self.tok.text)
        return ConditionError(f"expected {what} but found {shown} {self._where()}")

    def _word(self, *words: str) -> bool:
        return self.tok.kind == "name" and self.tok.text in words

    def _take(self) -> _Tok:
        tok = self.tok
        self.i += 1
        return tok

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(f"the condition nests deeper than {MAX_DEPTH} levels")

    def parse(self) -> Node:
        node = self.expr()
        if self.tok.kind != "end":
            raise self._fail("'and', 'or' or the end of the condition")
        return node

    def expr(self) -> Node:
        self._enter()
        try:
            return self._bool("or", self._and)
        finally:
            self.depth -= 1

    def _and(self) -> Node:
        return self._bool("and", self._not)

    def _bool(self, word: str, part: Any) -> Node:
        parts = [part()]
        while self._word(word):
            self._take()
            parts.append(part())
        return parts[0] if len(parts) == 1 else BoolOp(word, tuple(parts))

    def _not(self) -> Node:
        if self._word("not"):
            self._take()
            self._enter()
            try:
                return Not(self._not())
            finally:
                self.depth -= 1
        return self.atom()

    def atom(self) -> Node:
        if self.tok.text == "(":
            self._take()
            node = self.expr()
            if self.tok.text != ")":
                raise self._fail("')'")
            self._take()
            return node
        left = self.operand()
        if self.tok.kind == "op":
            op = self._take().text
            return Compare(left, op, self.operand())
        if self._word("in", "contains"):
            op = self._take().text
            return Compare(left, op, self.operand())
        if self._word("not") and self.tokens[self.i + 1].text == "in":
            self.i += 2
            return Compare(left, "not in", self.operand())
        if self._word("exists", "missing"):
            if not isinstance(left, Path):
                raise ConditionError(f"'{self.tok.text}' needs a field {self._where()}")
            return Compare(left, self._take().text, None)
        if isinstance(left, Literal):
            raise self._fail("an operator such as == or >")
        return Truthy(left)

    def operand(self) -> Path | Literal:
        tok = self.tok
        if tok.kind == "number":
            self._take()
            value = float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConditionError(f"the number at column {tok.pos + 1} is too large")
            return Literal(value)
        if tok.kind == "string":
            self._take()
            return Literal(_unquote(tok.text, tok.pos))
        if tok.text == "[":
            return Literal(self._list())
        if tok.kind == "name":
            if tok.text in ("true", "false", "null"):
                self._take()
                return Literal({"true": True, "false": False, "null": None}[tok.text])
            if tok.text == "confidence":
                self._take()
                return Path("confidence", ())
            if tok.text in ROOTS:
                return self._path()
            raise ConditionError(
                f"unknown name {tok.text!r} at column {tok.pos + 1}: fields start with "
                "'input.' or 'output.' (or use 'confidence'); text values need quotes"
            )
        raise self._fail("a field, a number, a quoted text or a [list]")

    def _path(self) -> Path:
        root = self._take().text
        keys: list[str | int] = []
        while self.tok.text in (".", "["):
            if len(keys) >= MAX_PATH:
                raise ConditionError(f"a field path may have at most {MAX_PATH} parts")
            if self._take().text == ".":
                if self.tok.kind not in ("name", "number") or self.tok.text.startswith("-"):
                    raise self._fail("a field name after '.'")
                keys.append(self._take().text)
            else:
                tok = self.tok
                if tok.kind == "number" and re.fullmatch(r"-?\d+", tok.text):
                    keys.append(int(self._take().text))
                elif tok.kind == "string":
                    keys.append(_unquote(self._take().text, tok.pos))
                else:
                    raise self._fail("a list index or a quoted key inside [ ]")
                if self.tok.text != "]":
                    raise self._fail("']'")
                self._take()
        return Path(root, tuple(keys))

    def _list(self) -> list[Any]:
        self._take()  # [
        values: list[Any] = []
        while self.tok.text != "]":
            if values:
                if self.tok.text != ",":
                    raise self._fail("',' or ']'")
                self._take()
            item = self.operand()
            if not isinstance(item, Literal) or isinstance(item.value, list):
                raise ConditionError(f"a list may hold only plain values {self._where()}")
            values.append(item.value)
            if len(values) > MAX_LIST:
                raise ConditionError(f"a list may hold at most {MAX_LIST} values")
        self._take()  # ]
        return values


def parse_condition(text: str) -> Node:
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("the condition is empty")
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"the condition is longer than {MAX_LENGTH} characters")
    return _Parser(text).parse()


def structured_condition(field: str, op: str, value: Any = None) -> Node:
    """The structured form of a rule: ``{field: input.amount, op: gt, value: 10000}``."""
    symbol = OP_WORDS.get(op, op)
    if symbol not in OPERATORS:
        raise ConditionError(
            f"unknown operator {op!r}; use one of {', '.join(sorted(set(OP_WORDS)))}"
        )
    if not isinstance(field, str) or not field or len(field) > MAX_LENGTH:
        raise ConditionError("field must be a path such as input.amount")
    parser = _Parser(field)
    left = parser.operand()
    if not isinstance(left, Path) or parser.tok.kind != "end":
        raise ConditionError(f"field {field!r} must be a path such as input.amount")
    if symbol in ("exists", "missing"):
        return Compare(left, symbol, None)
    if symbol in ("in", "not in") and not isinstance(value, list):
        raise ConditionError(f"operator {op!r} needs a list as its value")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConditionError("the value must be a finite number")
    _check_json(value, 0)
    return Compare(left, symbol, Literal(value))


def _check_json(value: Any, depth: int) -> None:
    if depth > 2:
        raise ConditionError("the value nests too deeply")
    if isinstance(value, list):
        if len(value) > MAX_LIST:
            raise ConditionError(f"a list may hold at most {MAX_LIST} values")
        for v in value:
            _check_json(v, depth + 1)
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise ConditionError("the value must be a number, a text, true/false, null or a list")


# Evaluation ---------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    return bool(a == b)


def _value(operand: Path | Literal, data: Mapping[str, Any]) -> Any:
    return operand.lookup(data) if isinstance(operand, Path) else operand.value


def _compare(node: Compare, data: Mapping[str, Any]) -> bool:
    left = _value(node.left, data)
    if node.op == "exists":
        return left is not _MISSING and left is not None
    if node.op == "missing":
        return left is _MISSING or left is None
    assert node.right is not None
    right = _value(node.right, data)
    if left is _MISSING or right is _MISSING:
        return False  # a comparison with an absent field is never true; test with `missing`
    op = node.op
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op in (">", ">=", "<", "<="):
        ordered = (_is_number(left) and _is_number(right)) or (
            isinstance(left, str) and isinstance(right, str)
        )
        if not ordered:
            return False
        if op == ">":
            return bool(left > right)
        if op == ">=":
            return bool(left >= right)
        if op == "<":
            return bool(left < right)
        return bool(left <= right)
    if op in ("in", "not in"):
        if isinstance(right, list):
            found = any(_equal(left, v) for v in right)
        elif isinstance(right, str) and isinstance(left, str):
            found = left.casefold() in right.casefold()
        else:
            return False
        return found if op == "in" else not found
    if op == "contains":
        if isinstance(left, str) and isinstance(right, str):
            # Case-insensitive: "Refund" in a ticket is the same risk as "refund".
            return right.casefold() in left.casefold()
        if isinstance(left, list):
            return any(_equal(v, right) for v in left)
        if isinstance(left, dict) and isinstance(right, str):
            return right in left
        return False
    raise ConditionError(f"unknown operator {op!r}")  # pragma: no cover - parser forbids it


def evaluate(node: Node, data: Mapping[str, Any]) -> bool:
    """``data`` holds ``input``, ``output`` and ``confidence``. Never raises on odd data."""
    if isinstance(node, Compare):
        return _compare(node, data)
    if isinstance(node, Truthy):
        return _value(node.operand, data) is True
    if isinstance(node, Not):
        return not evaluate(node.inner, data)
    if node.op == "and":
        return all(evaluate(p, data) for p in node.parts)
    return any(evaluate(p, data) for p in node.parts)


def describe(node: Node) -> str:
    """The condition as canonical text (for reasons and audit)."""
    if isinstance(node, Compare):
        left = node.left.text() if isinstance(node.left, Path) else repr(node.left.value)
        if node.right is None:
            return f"{left} {node.op}"
        right = node.right.text() if isinstance(node.right, Path) else _lit(node.right.value)
        return f"{left} {node.op} {right}"
    if isinstance(node, Truthy):
        return node.operand.text() if isinstance(node.operand, Path) else repr(node.operand.value)
    if isinstance(node, Not):
        return f"not ({describe(node.inner)})"
    return f" {node.op} ".join(f"({describe(p)})" for p in node.parts)


def _lit(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_lit(v) for v in value) + "]"
    return repr(value)
