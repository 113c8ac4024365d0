"""The risk-rule condition language: what it means, and what it refuses (hostile text)."""

from __future__ import annotations

import re

import pytest

from hitl_shared.workflows.conditions import (
    MAX_DEPTH,
    MAX_LENGTH,
    ConditionError,
    describe,
    evaluate,
    parse_condition,
    structured_condition,
)

ITEM = {
    "input": {
        "amount": 12500,
        "currency": "EUR",
        "customer_tier": "vip",
        "body": "I want a REFUND now",
        "tags": ["urgent", "billing"],
        "urgent": True,
        "nested": {"a": [1, {"b": "deep"}]},
        "nothing": None,
    },
    "output": {"label": "billing"},
    "confidence": 0.91,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("input.amount > 10000", True),
        ("input.amount >= 12500", True),
        ("input.amount < 12500", False),
        ("input.amount <= 12500.0", True),
        ("input.amount == 12500", True),
        ("input.amount != 12500", False),
        ('input.customer_tier == "vip"', True),
        ("input.customer_tier == 'standard'", False),
        ('input.customer_tier != "standard"', True),
        ('output.label in ["billing", "legal"]', True),
        ('output.label not in ["billing", "legal"]', False),
        ('input.body contains "refund"', True),  # case-insensitive
        ('input.tags contains "urgent"', True),
        ('input.tags contains "vip"', False),
        ("input.amount exists", True),
        ("input.missing_field missing", True),
        ("input.nothing missing", True),
        ("input.nothing exists", False),
        ("input.amount missing", False),
        ("input.urgent", True),
        ("not input.urgent", False),
        ("input.nested.a[1].b == 'deep'", True),
        ('input.nested.a[1]["b"] == "deep"', True),
        ("input.nested.a[5] exists", False),
        ("input.tags[-1] == 'billing'", True),
        ("confidence < 0.95", True),
        ('input.amount > 10000 and output.label == "billing"', True),
        ('input.amount > 99999 or output.label == "billing"', True),
        ("not (input.amount > 99999 or input.currency == 'USD')", True),
        ("input.amount > 10000 and not input.urgent", False),
        # Different kinds never compare: false, never an error.
        ('input.amount > "100"', False),
        ("input.customer_tier > 5", False),
        ("input.urgent == 1", False),
        ("input.missing_field > 1", False),
        ("input.missing_field != 1", False),  # absent fields only match `missing`
        ('input.amount contains "1"', False),
        ("input.body.deeper == 1", False),  # a path through a text is absent
        ("input.currency in 'EUR USD'", True),
    ],
)
def test_meaning(text: str, expected: bool) -> None:
    assert evaluate(parse_condition(text), ITEM) is expected


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("input.amount", "gt", 10000, True),
        ("input.amount", "lte", 100, False),
        ("input.customer_tier", "eq", "vip", True),
        ("output.label", "in", ["billing"], True),
        ("output.label", "not_in", ["billing"], False),
        ("input.body", "contains", "Refund", True),
        ("input.nope", "missing", None, True),
        ("input.amount", ">=", 12500, True),
    ],
)
def test_structured_form(field: str, op: str, value: object, expected: bool) -> None:
    assert evaluate(structured_condition(field, op, value), ITEM) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("input.amount >", "expected a field"),
        ("input.amount > > 1", "expected a field"),
        ("input.amount = 1", "unexpected character '='"),
        ("amount > 1", "unknown name 'amount'"),
        ("__import__('os').system('rm -rf /')", "unknown name '__import__'"),
        ("input.__class__.__mro__", None),  # parses; reads only dict keys: never an attribute
        ("eval('1')", "unknown name 'eval'"),
        ("input.a; drop table items", "unexpected character ';'"),
        ("lambda: 1", "unexpected character ':'"),
        ("lambda", "unknown name 'lambda'"),
        ('input.body == "unterminated', "not closed"),
        ("input.body == 'bad \\q escape'", "unknown escape"),
        ("(input.amount > 1", "expected ')'"),
        ("input.amount > 1)", "expected 'and', 'or' or the end"),
        ("1 > 0", None),
        ("1", "expected an operator"),
        ("input.x in [1, [2]]", "only plain values"),
        ("input.x in [input.y]", "only plain values"),
        ("input.x > 1e999", "too large"),
        ("input.[0]", "expected a field name"),
        ("input.a[x]", "expected a list index"),
        ("'text' exists", "needs a field"),
        ("input.a ** 2", "unexpected character '*'"),
        ("input.a > 1 and", "expected a field"),
        ("{}.keys()", "unexpected character '{'"),
        ("input.a > `whoami`", "unexpected character '`'"),
        ("input.a == \x00", "unexpected character"),
    ],
)
def test_refuses_hostile_or_broken_text(text: str, message: str | None) -> None:
    if message is None:
        node = parse_condition(text)
        # Python attributes are never reachable: a dunder is just a (missing) key.
        assert evaluate(node, ITEM) in (True, False)
        return
    with pytest.raises(ConditionError, match=re.escape(message)):
        parse_condition(text)


def test_dunder_paths_read_keys_not_attributes() -> None:
    node = parse_condition("input.__class__ exists")
    assert evaluate(node, ITEM) is False
    assert evaluate(node, {"input": {"__class__": "x"}}) is True


def test_limits_stop_resource_exhaustion() -> None:
    with pytest.raises(ConditionError, match="longer than"):
        parse_condition("input.a == 1 or " * (MAX_LENGTH // 10) + "input.a == 1")
    deep = "(" * (MAX_DEPTH + 5) + "input.a" + ")" * (MAX_DEPTH + 5)
    with pytest.raises(ConditionError, match="nests deeper"):
        parse_condition(deep)
    nots = "not " * (MAX_DEPTH + 5) + "input.a"
    with pytest.raises(ConditionError, match="nests deeper"):
        parse_condition(nots)
    with pytest.raises(ConditionError, match="at most"):
        parse_condition("input.a in [" + ",".join(["1"] * 300) + "]")
    with pytest.raises(ConditionError, match="at most"):
        parse_condition("input" + ".a" * 40 + " exists")
    # Modest nesting is fine.
    ok = "(" * 10 + "input.a == 1" + ")" * 10
    assert evaluate(parse_condition(ok), {"input": {"a": 1}}) is True


def test_hostile_item_data_never_raises() -> None:
    node = parse_condition(
        'input.a > 1 or input.a contains "x" or input.a in [1, "x"] or input.a.b[3] == 1'
    )
    odd_values: list[object] = [
        None,
        True,
        float("nan"),
        float("inf"),
        "x" * 1_000_000,
        [[[[[]]]]],
        {"b": "not a list"},
        {"b": [1, 2, 3, {"c": 1}]},
        -(10**400),
        ["x"] * 10_000,
    ]
    for value in odd_values:
        assert evaluate(node, {"input": {"a": value}}) in (True, False)
    assert evaluate(node, {}) is False
    assert evaluate(node, {"input": "not a mapping"}) is False


def test_structured_form_refuses_bad_rules() -> None:
    with pytest.raises(ConditionError, match="unknown operator"):
        structured_condition("input.a", "matches", ".*")
    with pytest.raises(ConditionError, match="needs a list"):
        structured_condition("input.a", "in", "abc")
    with pytest.raises(ConditionError, match="must be a path"):
        structured_condition("input.a > 1", "eq", 1)
    with pytest.raises(ConditionError, match="must be a path"):
        structured_condition("'text'", "eq", 1)
    with pytest.raises(ConditionError, match="number, a text"):
        structured_condition("input.a", "eq", {"$gt": 1})


def test_describe_is_canonical_and_reparses() -> None:
    text = 'input.amount>10000 and (output.label in ["a","b"] or not input.vip)'
    node = parse_condition(text)
    shown = describe(node)
    assert "input.amount > 10000" in shown
    assert evaluate(parse_condition(shown), ITEM) == evaluate(node, ITEM)
