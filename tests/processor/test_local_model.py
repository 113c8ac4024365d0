"""The local provider's classifier on a small synthetic multi-domain data set (no network)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hitl_processor.local_model import MODEL_NAME, TextClassifier

# Six labels from unrelated domains; "legal_notice" never gets training examples.
TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "refund_request": (
        [
            "I want my money back for {x}",
            "please refund the charge for {x}",
            "you billed me twice for {x}, refund it",
            "how do I get a refund on {x}?",
        ],
        [
            "my order",
            "the subscription",
            "the broken kettle",
            "last month's invoice",
            "the tickets",
        ],
    ),
    "delivery_status": (
        [
            "where is my parcel with {x}?",
            "the courier has not delivered {x} yet",
            "tracking for {x} has not moved in days",
            "when will {x} arrive?",
        ],
        ["the shoes", "my package", "the replacement part", "order 4411", "the sofa"],
    ),
    "password_reset": (
        [
            "I forgot my password for {x}",
            "cannot log in to {x}, reset my password",
            "the password reset link for {x} does not work",
            "locked out of {x} after too many attempts",
        ],
        ["the app", "my account", "the web portal", "online banking", "the admin console"],
    ),
    "symptom_report": (
        [
            "I have had a fever and {x} since yesterday",
            "my child has {x} and a high temperature",
            "should I see a doctor about {x}?",
            "{x} keeps getting worse at night",
        ],
        ["a sore throat", "a headache", "chest pain", "a rash", "stomach cramps"],
    ),
    "sports_result": (
        [
            "{x} won the match last night",
            "final score: {x} beat their rivals 3-1",
            "{x} lost the championship game in overtime",
            "a late goal gave {x} the victory",
        ],
        ["the home team", "Arsenal", "the Lakers", "the national side", "the underdogs"],
    ),
    "legal_notice": (
        [
            "notice of intent to sue regarding {x}",
            "our lawyers will contact you about {x}",
            "this is a formal legal complaint about {x}",
            "cease and desist concerning {x}",
        ],
        ["the contract", "the trademark", "unpaid wages", "the lease", "the patent"],
    ),
}
LABELS = list(TOPICS)
SEEN = [label for label in LABELS if label != "legal_notice"]
FILLERS = ["", "Hi, ", "Hello team, ", "Urgent: ", "Quick question - ", "Good morning. "]
ENDINGS = ["", " Thanks.", " Please help.", " Regards, Sam", "!", " Any update?"]


def make(labels: list[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, out = [], []
    for i in range(n):
        label = labels[i % len(labels)]
        templates, slots = TOPICS[label]
        text = rng.choice(templates).format(x=rng.choice(slots))
        texts.append(rng.choice(FILLERS) + text + rng.choice(ENDINGS))
        out.append(label)
    order = list(range(n))
    rng.shuffle(order)
    return [texts[i] for i in order], [out[i] for i in order]


@pytest.fixture(scope="module")
def test_set() -> tuple[list[str], np.ndarray]:
    texts, labels = make(SEEN, 100, seed=999)
    return texts, np.array([LABELS.index(label) for label in labels])


@pytest.fixture(scope="module")
def models() -> dict[int, TextClassifier]:
    """Models trained on growing prefixes of one stream of reviewed items."""
    texts, labels = make(SEEN, 150, seed=1)
    return {n: TextClassifier.train(texts[:n], labels[:n], LABELS) for n in (5, 20, 60, 150)}


def test_interface_and_shapes(models: dict[int, TextClassifier], test_set) -> None:
    texts, _ = test_set
    model = models[60]
    assert model.labels == LABELS
    assert model.n_examples == 60
    assert model.model_name == MODEL_NAME
    probs = model.predict_proba(texts)
    assert probs.shape == (len(texts), len(LABELS))
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert model.predict_proba([]).shape == (0, len(LABELS))


def test_confidence_rises_as_examples_arrive(models: dict[int, TextClassifier], test_set) -> None:
    texts, truth = test_set
    confidence, accuracy = [], []
    for n in sorted(models):
        probs = models[n].predict_proba(texts)
        confidence.append(float(probs.max(axis=1).mean()))
        accuracy.append(float((probs.argmax(axis=1) == truth).mean()))
    assert confidence == sorted(confidence), confidence
    assert confidence[-1] > confidence[0] + 0.3, confidence
    assert accuracy[-1] >= 0.9, accuracy
    # and the confidence is honest: not far above the accuracy it delivers
    for conf, acc in zip(confidence, accuracy, strict=True):
        assert conf <= acc + 0.15, (confidence, accuracy)


def test_label_without_examples_never_gets_high_probability(
    models: dict[int, TextClassifier],
) -> None:
    legal_texts, _ = make(["legal_notice"], 30, seed=7)
    column = LABELS.index("legal_notice")
    for model in models.values():
        probs = model.predict_proba(legal_texts)
        # at most the uniform share, whatever the text
        assert probs[:, column].max() <= 1.0 / len(LABELS) + 1e-9


def test_few_examples_give_low_confidence(models: dict[int, TextClassifier], test_set) -> None:
    texts, _ = test_set
    probs = models[5].predict_proba(texts)
    assert probs.max() < 0.6
    # a handful of examples of only some labels
    few_texts, few_labels = make(SEEN[:2], 4, seed=3)
    model = TextClassifier.train(few_texts, few_labels, LABELS)
    assert model.predict_proba(few_texts + texts).max() < 0.6


def test_no_examples_gives_uniform() -> None:
    model = TextClassifier.train([], [], ["a", "b", "c", "d"])
    np.testing.assert_allclose(model.predict_proba(["anything"]), [[0.25] * 4])
    restored = TextClassifier.from_bytes(model.to_bytes())
    np.testing.assert_allclose(restored.predict_proba(["x", "y"]), np.full((2, 4), 0.25))


def test_single_seen_label_is_not_certain() -> None:
    texts, labels = make(["refund_request"], 12, seed=5)
    model = TextClassifier.train(texts, labels, LABELS)
    probs = model.predict_proba(texts)
    assert probs.argmax(axis=1).tolist() == [0] * len(texts)
    assert probs.max() <= 0.65


def test_binary_label_set() -> None:
    texts, labels = make(["password_reset", "sports_result"], 40, seed=11)
    model = TextClassifier.train(texts, labels, ["password_reset", "sports_result"])
    test_texts, test_labels = make(["password_reset", "sports_result"], 20, seed=12)
    probs = model.predict_proba(test_texts)
    predicted = [model.labels[i] for i in probs.argmax(axis=1)]
    assert predicted == test_labels


def test_round_trip_gives_identical_predictions(
    models: dict[int, TextClassifier], test_set
) -> None:
    texts, _ = test_set
    for model in models.values():
        data = model.to_bytes()
        assert isinstance(data, bytes) and len(data) < 5_000_000
        restored = TextClassifier.from_bytes(data)
        assert restored.labels == model.labels
        assert restored.n_examples == model.n_examples
        assert restored.model_name == model.model_name
        # The stored model is exact (bytes below); the encoder's own arithmetic may differ in
        # the last bits from one call to the next (threaded reductions under load).
        np.testing.assert_allclose(
            restored.predict_proba(texts), model.predict_proba(texts), rtol=1e-6, atol=1e-9
        )
        assert restored.to_bytes() == data


def test_bad_input_is_rejected_or_skipped() -> None:
    with pytest.raises(ValueError):
        TextClassifier.train(["a"], ["x", "y"], ["x", "y"])
    with pytest.raises(ValueError):
        TextClassifier.train(["a"], ["x"], ["x", "x"])
    with pytest.raises(ValueError):
        TextClassifier.from_bytes(b"not a model")
    texts, labels = make(SEEN[:3], 30, seed=21)
    model = TextClassifier.train([*texts, "stray"], [*labels, "no_such_label"], SEEN[:3])
    assert model.n_examples == 30
