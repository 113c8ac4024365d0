"""The local provider's classifier on a small synthetic multi-domain data set (no network)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hitl_processor.local_model import MODEL_NAME, TextClassifier
from hitl_processor.local_model.classifier import _fit_confidence

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


VAGUE = [
    "Any update on this?",
    "Following up on my earlier message",
    "Can someone get back to me please",
    "Still waiting for an answer",
    "Please call me back when you can",
    "Is anybody reading these?",
    "Hello, I wrote last week and heard nothing",
    "What is happening with my request",
]


def vague(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(FILLERS) + rng.choice(VAGUE) + rng.choice(ENDINGS) for _ in range(n)]


def test_a_real_label_imbalance_is_kept() -> None:
    """When vague follow-ups really are mostly about deliveries, the model says so: the
    smoothing of label counts must not flatten a prior the examples support."""
    rng = random.Random(4)
    vague_labels = [
        "delivery_status" if rng.random() < 0.8 else "refund_request" for _ in range(150)
    ]
    clear_texts, clear_labels = make(SEEN, 60, seed=8)
    model = TextClassifier.train(
        vague(150, seed=9) + clear_texts, vague_labels + clear_labels, LABELS
    )
    probs = model.predict_proba(vague(60, seed=10))
    delivery = probs[:, LABELS.index("delivery_status")]
    refund = probs[:, LABELS.index("refund_request")]
    assert model.prior_pseudocount < 1.0, model  # next to 120 and 30 examples: kept
    assert delivery.mean() > 0.6, (delivery.mean(), model)
    assert (delivery > refund).mean() >= 0.75


def test_the_label_prior_fit_tells_chance_counts_from_real_imbalance() -> None:
    """Out-of-fold scores of a model whose intercepts copied its label counts
    (``evidence + log n_c``): when the labels are really equally common and the counts are
    chance, the fit removes them; when the counts mirror a real imbalance, it keeps them."""
    rng = np.random.default_rng(5)
    k, n, folds, signal = 10, 600, 5, 1.5
    row_fold = np.arange(n) % folds

    def scores(prior: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice(k, size=n, p=prior)
        evidence = rng.normal(size=(n, k))
        evidence[np.arange(n), y] += signal
        return signal * evidence + np.log(counts)[row_fold], y

    uniform = np.full(k, 1.0 / k)
    chance_counts = rng.integers(1, 9, size=(folds, k)).astype(float)  # 1..8 per label
    logits, y = scores(uniform, chance_counts)
    _, _, pseudocount = _fit_confidence(logits, y, 0.001, chance_counts, row_fold)
    assert pseudocount > 20, pseudocount

    skewed = np.array([0.4, 0.2, 0.1, 0.1, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01])
    real_counts = np.tile(skewed * 480, (folds, 1))  # a fold model's 480 examples
    logits, y = scores(skewed, real_counts)
    _, _, pseudocount = _fit_confidence(logits, y, 0.001, real_counts, row_fold)
    assert pseudocount < 2, pseudocount
