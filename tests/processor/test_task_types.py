"""Multi-label classify, score, extract and draft workflows through the real pipeline (local
provider, router, review forms, feedback), with the shipped demo workflows."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from hitl_processor.local_model.extractor import FieldExtractor
from hitl_processor.local_model.labelset import LabelSetClassifier
from hitl_router.routing import altered_answer
from hitl_shared.db.models import AIResult, FeedbackRecord, RoutingDecision
from hitl_shared.workflows.conditions import evaluate, parse_condition
from hitl_shared.workflows.config import WorkflowConfig
from hitl_shared.workflows.tasks import answer_key, changes, normalise, output_errors, same_answer
from tests.conftest import System
from tests.support import ADMIN_PASSWORD, ScriptedReviewer

INVOICE = (
    "Acme Supplies Ltd\nInvoice INV-20530\nDate: 2026-11-03\nDue date: 2026-12-03\n"
    "Subtotal: 880.00\nTax: 176.00\nTotal due: 1,056.00"
)


def client(system: System) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=system.client._transport, base_url="http://testserver", follow_redirects=False
    )


async def submit(system: System, workflow: str, data: dict[str, object]) -> str:
    r = await system.client.post(
        "/v1/items", json={"workflow": workflow, "input": data}, headers=system.api_headers
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def item(system: System, item_id: str) -> dict[str, object]:
    r = await system.client.get(f"/v1/items/{item_id}", headers=system.api_headers)
    assert r.status_code == 200
    return dict(r.json())


async def feedback(system: System) -> list[FeedbackRecord]:
    runtime = system.embedded.runtime  # type: ignore[attr-defined]
    async with runtime.sessionmaker() as s:
        return list((await s.execute(sa.select(FeedbackRecord))).scalars().all())


async def results(system: System) -> tuple[dict[str, AIResult], dict[str, RoutingDecision]]:
    """Every item's AI result and routing decision, by item id."""
    runtime = system.embedded.runtime  # type: ignore[attr-defined]
    async with runtime.sessionmaker() as s:
        ai = {str(r.item_id): r for r in (await s.execute(sa.select(AIResult))).scalars().all()}
        routing = {
            str(r.item_id): r for r in (await s.execute(sa.select(RoutingDecision))).scalars().all()
        }
    return ai, routing


async def test_extract_fields_validation_and_field_edit(system: System) -> None:
    good = await submit(system, "invoice-extraction", {"text": INVOICE})
    # Does not add up (99 + 19.80 != 128.80) and comes from a vendor nobody knows.
    bad = await submit(
        system,
        "invoice-extraction",
        {
            "text": "Quick Parts Inc\nInvoice QP-1188\nDate: November 5, 2026\n"
            "Subtotal: 99.00\nTax: 19.80\nTotal due: 128.80"
        },
    )
    await system.settle()
    ai, routing = await results(system)
    out = ai[good].output
    assert out["fields"]["invoice_number"] == "INV-20530"
    assert out["fields"]["invoice_date"] == "2026-11-03"
    assert out["fields"]["total"] == 1056.0
    assert out["failed_rules"] == []
    assert set(out["field_confidence"]) >= {"invoice_number", "vendor", "total"}
    assert ai[good].confidence == pytest.approx(min(out["field_confidence"].values()), abs=0.05)
    bad_out = ai[bad].output
    failed = {r["name"] for r in bad_out["failed_rules"]}
    assert failed == {"totals-add-up", "known-vendor"}
    assert "failed_validation" in ai[bad].flags
    assert bad_out["field_confidence"]["total"] <= 0.5
    assert routing[bad].level == "escalated"  # the unknown-vendor risk rule
    assert "Least sure" in routing[good].reason

    async with client(system) as http:
        rev = ScriptedReviewer(http)
        await rev.sign_in("admin", ADMIN_PASSWORD)
        task = await rev.start("invoice-extraction", "")
        assert task
        page = await http.get(f"/tasks/{task}")
        assert 'name="field.total"' in page.text and "field-row" in page.text
        item_id = re.search(r'data-item="([0-9a-f-]+)"', page.text).group(1)  # type: ignore[union-attr]
        fields = dict(ai[item_id].output["fields"])
        form = {f"field.{k}": str(v) for k, v in fields.items()}
        # A typo in a number is refused with what to fix, and nothing is recorded.
        r = await rev.decide(task, action="edit", **{**form, "field.total": "12,3x"})
        assert r.status_code == 422 and "total: enter a number" in r.text
        form["field.vendor"] = "Acme Supplies Limited"
        r = await rev.decide(task, action="edit", **form)
        assert r.status_code == 303
    await system.settle()
    done = await item(system, item_id)
    decision = done["decision"]
    assert isinstance(decision, dict) and decision["outcome"] == "edited"
    assert decision["output"]["fields"]["vendor"] == "Acme Supplies Limited"
    records = [f for f in await feedback(system) if str(f.item_id) == item_id]
    assert records[0].ai_correct is False
    assert records[0].changes == {
        "fields": {"vendor": {"from": fields["vendor"], "to": "Acme Supplies Limited"}}
    }


async def test_score_review_and_the_local_model_learns(system: System) -> None:
    ids = [
        await submit(
            system,
            "cv-screening",
            {"role": "Support agent", "application": f"Applicant {i}: {text}"},
        )
        for i, text in enumerate(
            [
                "Six years running a help desk in Zendesk, fluent English and Spanish.",
                "Three years of account management with HubSpot, English fluent.",
                "Student of chemistry without work experience.",
                "Four years customer support with Freshdesk and Salesforce, English and Dutch.",
                "Cook in a restaurant for ten years.",
                "Help desk team lead for five years, Zendesk expert, English native.",
            ]
        )
    ]
    await system.settle()
    first = await item(system, ids[0])
    ai = first["ai"]
    assert isinstance(ai, dict)
    assert ai["output"]["score"] in (1, 2, 3, 4, 5)
    assert "similar reviewed items scored" in ai["output"]["rationale"]
    assert "(3 examples)" in ai["model"]

    async with client(system) as http:
        rev = ScriptedReviewer(http)
        await rev.sign_in("admin", ADMIN_PASSWORD)
        for _ in ids:
            task = await rev.start("cv-screening", "")
            assert task
            page = await http.get(f"/tasks/{task}")
            assert 'id="score-input"' in page.text
            r = await rev.decide(task, action="edit", score="9")
            assert r.status_code == 422 and "between 1 and 5" in r.text
            r = await rev.decide(task, action="edit", score="4", rationale="Solid experience")
            assert r.status_code == 303
    await system.settle()
    records = await feedback(system)
    assert len(records) == 6
    assert all(r.final_answer and r.final_answer["score"] == 4 for r in records)
    assert all(
        (r.changes or {}).get("score_delta", 0) == 4 - (r.ai_answer or {}).get("score", 4)
        for r in records
    )
    # Six more examples: the next item is scored by a retrained model that learnt them
    # (once the processor looks again; it re-checks every few seconds).
    system.embedded.runtime.state.pop("processor.local_models", None)  # type: ignore[attr-defined]
    later = await submit(
        system, "cv-screening", {"role": "Support agent", "application": "Five years Zendesk."}
    )
    await system.settle()
    retrained = (await item(system, later))["ai"]
    assert isinstance(retrained, dict)
    assert "(9 examples)" in retrained["model"]


async def test_draft_reuses_the_closest_approved_reply_and_records_the_edit(
    system: System,
) -> None:
    item_id = await submit(
        system,
        "reply-drafting",
        {"subject": "Password", "body": "I forgot my password and the reset email never came"},
    )
    await system.settle()
    ai = (await item(system, item_id))["ai"]
    assert isinstance(ai, dict)
    assert ai["output"]["text"].startswith("Hello, sorry for the trouble signing in")
    kinds = {s["kind"] for s in ai["output"]["sources"]}
    assert "approved_reply" in kinds and "knowledge" in kinds
    async with client(system) as http:
        rev = ScriptedReviewer(http)
        await rev.sign_in("admin", ADMIN_PASSWORD)
        task = await rev.start("reply-drafting", "")
        assert task
        page = await http.get(f"/tasks/{task}")
        assert 'id="draft-text"' in page.text and "Password reset" in page.text
        if 'data-level="manual"' in page.text:  # the AI's draft is shown as a hint
            assert 'id="ai-draft-hint"' in page.text
        r = await rev.decide(task, action="edit", text="  ")
        assert r.status_code == 422 and "must not be empty" in r.text
        text = ai["output"]["text"].replace("Hello,", "Hello Dana,")
        r = await rev.decide(task, action="edit", text=text)
        assert r.status_code == 303
    await system.settle()
    record = (await feedback(system))[0]
    assert record.ai_correct is False
    assert record.changes and record.changes["edit_distance"] == len(" Dana")
    assert record.changes["edit_kind"] == "reworded"


async def test_multi_label_tags_review_and_the_local_model_learns(system: System) -> None:
    churn = await submit(
        system,
        "ticket-tags",
        {"subject": "Refund", "body": "Refund my payment please, I am cancelling my plan"},
    )
    bug = await submit(system, "ticket-tags", {"body": "The upload page shows an error 500"})
    await system.settle()
    ai, routing = await results(system)
    out = ai[churn].output
    assert set(out["labels"]) == {"refund-request", "churn-risk"}
    assert set(out["label_probability"]) == {
        "refund-request",
        "bug-report",
        "feature-request",
        "churn-risk",
        "praise",
    }
    # The answer's confidence: every label decision right (their product).
    product = 1.0
    for name, p in out["label_probability"].items():
        product *= p if name in out["labels"] else 1 - p
    assert ai[churn].raw_confidence == pytest.approx(product, rel=1e-3)
    # A risk rule reads the list with `contains` (here a stricter level won: few examples yet).
    assert routing[churn].level in ("full", "manual")
    when = parse_condition('output.labels contains "churn-risk"')
    assert evaluate(when, {"input": {}, "output": out, "confidence": 0.99})
    assert "bug-report" in ai[bug].output["labels"]

    async with client(system) as http:
        rev = ScriptedReviewer(http)
        await rev.sign_in("admin", ADMIN_PASSWORD)
        reviewed = {}
        while churn not in reviewed or bug not in reviewed:  # the demo items come first
            task = await rev.start("ticket-tags", "")
            assert task
            page = await http.get(f"/tasks/{task}")
            assert page.text.count('type="checkbox" name="label"') == 5
            item_id = re.search(r'data-item="([^"]+)"', page.text)
            assert item_id
            # Nothing ticked is not an answer: the form says what to do.
            r = await rev.client.post(
                f"/tasks/{task}/decide",
                data={"csrf_token": rev.csrf, "action": "edit", "active_ms": "3000"},
            )
            assert r.status_code == 422 and "choose at least one of the labels" in r.text
            r = await rev.client.post(
                f"/tasks/{task}/decide",
                data={
                    "csrf_token": rev.csrf,
                    "action": "edit",
                    "active_ms": "3000",
                    "label": ["bug-report", "churn-risk"],
                },
            )
            assert r.status_code == 303, r.text
            reviewed[item_id.group(1)] = task
    await system.settle()
    records = {str(r.item_id): r for r in await feedback(system) if str(r.item_id) in reviewed}
    assert len(records) == len(reviewed)
    for record in records.values():
        assert record.final_answer == {"labels": ["bug-report", "churn-risk"]}
        assert record.final_label == "bug-report + churn-risk"
    assert records[churn].ai_correct is False
    assert records[churn].changes == {
        "labels": {"added": ["bug-report"], "removed": ["refund-request"]}
    }
    view = await item(system, churn)
    decision = view["decision"]
    assert isinstance(decision, dict)
    assert decision["output"] == {"labels": ["bug-report", "churn-risk"]}
    assert decision["outcome"] == "edited"


def test_label_set_classifier_learns_tags_and_says_when_it_cannot_know() -> None:
    words = {
        "refund": ["refund my payment", "money back please", "credit the charge"],
        "bug": ["error 500 on save", "the page crashes", "upload is broken"],
        "praise": ["great work team", "love the product", "thanks so much"],
    }
    texts, sets = [], []
    for i in range(60):
        chosen = [t for j, t in enumerate(words) if (i >> j) & 1] or ["bug"]
        texts.append(" and ".join(words[t][i % 3] for t in chosen) + f" (ticket {i})")
        sets.append(chosen)
    labels = ["refund", "bug", "praise", "legal"]  # nobody has tagged "legal" yet
    model = LabelSetClassifier.from_bytes(LabelSetClassifier.train(texts, sets, labels).to_bytes())
    [verdict] = model.predict(["the page crashes and I want my money back please"])
    assert verdict.labels == ["refund", "bug"]
    # Never applied in 60 reviews: rare, not impossible.
    assert verdict.probabilities["legal"] == pytest.approx(0.5 / 61, abs=1e-3)
    right = [p if n in verdict.labels else 1 - p for n, p in verdict.probabilities.items()]
    assert verdict.confidence == pytest.approx(float(np.prod(right)), rel=1e-3)
    # Untrained: it says so with a low confidence instead of guessing.
    [blank] = LabelSetClassifier.train([], [], labels).predict(["anything"])
    assert len(blank.labels) == 1 and blank.confidence < 0.1


def test_multi_label_answers_compare_change_and_canary() -> None:
    config = WorkflowConfig.model_validate(
        {
            "name": "tags-wf",
            "text_fields": ["t"],
            "multi_label": True,
            "labels": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        }
    )
    assert same_answer(config, {"labels": ["b", "a"]}, {"labels": ["a", "b"]})
    assert not same_answer(config, {"labels": ["a"]}, {"labels": ["a", "b"]})
    assert changes(config, {"labels": ["a", "c"]}, {"labels": ["a", "b"]}) == {
        "labels": {"added": ["b"], "removed": ["c"]}
    }
    assert answer_key(config, {"labels": ["c", "a"]}) == "a + c"
    assert output_errors(config, {"labels": ["a", "z"]}) == ["z is not among the labels: a, b, c"]
    assert output_errors(config, {"labels": []})
    for pick in (0.0, 0.4, 0.9):
        wrong = altered_answer(config, {"labels": ["a"]}, [], pick)
        assert wrong and wrong["labels"] and not same_answer(config, wrong, {"labels": ["a"]})


def test_extractor_learns_where_a_field_is_from_reviews() -> None:
    schema = {
        "type": "object",
        "properties": {"total": {"type": "number"}, "reference": {"type": "string"}},
    }

    def doc(i: int) -> str:
        return f"Order {100 + i}\nShipping: {5 + i}.00\nReference: R-{i}\nGrand sum {200 + i}.50"

    untrained = FieldExtractor.train(schema, [])
    values, conf = untrained.extract(doc(99))
    assert conf["total"] < 0.2  # no reviews yet: it says so
    examples = [(doc(i), {"total": 200 + i + 0.5, "reference": f"R-{i}"}) for i in range(12)]
    model = FieldExtractor.from_bytes(FieldExtractor.train(schema, examples).to_bytes())
    values, conf = model.extract(doc(40))
    assert values == {"total": 240.5, "reference": "R-40"}
    assert conf["total"] > 0.5


def test_answers_compare_as_a_person_would() -> None:
    assert normalise("1,056.00") == normalise(1056) == 1056.0
    assert normalise(" Acme  Ltd ") == normalise("acme ltd")
    score = WorkflowConfig.model_validate(
        {"name": "s-wf", "task_type": "score", "text_fields": ["t"], "scale": {"tolerance": 5}}
    )
    assert same_answer(score, {"score": 70}, {"score": 74})
    assert not same_answer(score, {"score": 70}, {"score": 80})
    assert changes(score, {"score": 70}, {"score": 80}) == {"score_delta": 10.0}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"task_type": "score"}, "needs a `scale`"),
        ({"task_type": "extract"}, "needs an `output_schema`"),
        ({"task_type": "classify"}, "at least two"),
        (
            {
                "task_type": "extract",
                "output_schema": {"type": "object", "properties": {"a": {"type": "number"}}},
                "validations": [{"name": "v", "sum_of": ["a"], "equals": "b", "reason": "x"}],
            },
            "unknown field(s) b",
        ),
        (
            {"task_type": "draft", "labels": [{"name": "a"}, {"name": "b"}]},
            "`labels` belong to classify",
        ),
        (
            {"task_type": "score", "scale": {"min": 1, "max": 5}, "examples": [{"text": "x"}]},
            "needs an `output`",
        ),
        ({"task_type": "score", "multi_label": True}, "`multi_label` belongs to classify"),
        (
            {
                "multi_label": True,
                "labels": [{"name": "a"}, {"name": "b"}],
                "examples": [{"text": "x"}],
            },
            "needs `labels` (a list)",
        ),
        (
            {
                "labels": [{"name": "a"}, {"name": "b"}],
                "examples": [{"text": "x", "labels": ["a"]}],
            },
            "`labels` is for multi-label workflows",
        ),
        (
            {
                "multi_label": True,
                "labels": [{"name": "a"}, {"name": "b"}],
                "routing": {"batch": {"labels": ["a"]}},
            },
            "single-label classify",
        ),
    ],
)
def test_task_configuration_errors_say_what_to_fix(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        WorkflowConfig.model_validate({"name": "t-wf", "text_fields": ["t"], **data})
