"""The ``local`` provider's text classifier: learns from reviewed items, offline.

Features: the all-MiniLM-L6-v2 sentence embedding (fixed, see ``encoder.py``),
centred and weighted x2, next to TF-IDF word 1-2-grams and character 2-5-grams.
Head: multinomial logistic regression over the labels that have examples (L2,
sklearn's objective with C=30, minimised by a numpy L-BFGS that is ~2.5x faster
than sklearn's at this size). These choices were measured on BANKING77
(``benchmarks/local_model_banking77.py``); nothing in them is specific to it.

Confidence: cross-validation on the training examples gives out-of-fold scores
(repeated on other splits up to 500 examples); a label-prior pseudo-count ``a``, a
temperature ``T`` and a share ``lam`` of probability spread uniformly over the whole
label set are fitted to them (``a`` by the likelihood of the labels, then ``T`` and
``lam`` by the likelihood of the top answer being right; see ``_fit_confidence``)::

    z_c = logit_c + log((n_c + a) / n_c)          (n_c: examples of label c)
    p = (1 - lam) * softmax(z / T)  +  lam / len(label_set)

A logistic regression's intercepts reproduce the label counts of its training
examples. With a few examples per label those counts are mostly chance (a label
seen eight times next to one seen once), and the model then over-trusts its
frequent labels and under-trusts its rare ones. ``a`` replaces the counts by
their smoothed estimate ``(n_c + a) / (n + k a)``: large when the counts are
noise, near zero when the labels really are imbalanced and the counts say so
(measured on BANKING77 with 250 examples: accuracy 0.63 -> 0.68 and the over-
confidence of frequent labels gone). It is folded into the intercepts.

``lam`` keeps the top answer's confidence below 1 by how often the out-of-fold top
answer was wrong even at the highest scores (often a label absent from the fold); it
is large when data is scarce and never smaller than ``SHRINK_PRIOR / (n + SHRINK_PRIOR)``.
Labels without examples get ``lam / len(label_set)`` only, at most ``1 / len(label_set)``.
With fewer than two labels seen, or fewer than ``MIN_CV_EXAMPLES`` examples, no
cross-validation is possible and ``lam`` is at least 0.5.

Serialised form: a compressed ``.npz`` (no pickle) holding the head, the TF-IDF
vocabularies and idf weights; the encoder is loaded from the installed package.
"""

from __future__ import annotations

import io
import json
import logging
import math
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import KFold

from hitl_processor.local_model.encoder import ENCODER_NAME, get_encoder

log = logging.getLogger(__name__)

MODEL_NAME = "local-minilm-lr-v1"
FORMAT_MAGIC = b"HITL-TC1"
EMBEDDING_WEIGHT = 2.0  # embedding block vs. the (unit-norm) TF-IDF blocks
REGULARISATION_C = 30.0
MAX_ITER = 300
TOL = 1e-4  # on the largest gradient component, as sklearn's lbfgs
LBFGS_MEMORY = 10
SHRINK_PRIOR = 5.0  # lam >= SHRINK_PRIOR / (n + SHRINK_PRIOR): 0.5 at n=5, 0.005 at n=1000
MIN_CV_EXAMPLES = 4
CV_FOLDS_SMALL = 5  # n <= CV_FOLDS_SWITCH
CV_FOLDS_LARGE = 3  # n > CV_FOLDS_SWITCH: keeps training of 5,000 items well under a minute
CV_FOLDS_SWITCH = 2000
# While examples are few, the k-fold is repeated on other splits (CV_REPEAT_BUDGET // n
# times, at most CV_MAX_REPEATS): training is cheap then, and the fit gets more scores.
CV_REPEAT_BUDGET = 1000
CV_MAX_REPEATS = 4
TEMPERATURE_BOUNDS = (0.05, 20.0)
PSEUDOCOUNT_BOUNDS = (1e-3, 1e4)  # from "keep the counts" to "all labels equally likely"
_SEED = 20261125


@dataclass
class _TfidfBlock:
    """Fixed-vocabulary TF-IDF (sublinear tf, l2 rows), rebuilt from plain arrays."""

    analyzer: str
    ngram_range: tuple[int, int]
    vocabulary: list[str]
    idf: np.ndarray
    _vectorizer: CountVectorizer | None = field(default=None, repr=False, compare=False)

    @classmethod
    def fit(
        cls, texts: Sequence[str], analyzer: str, ngram_range: tuple[int, int], min_df: int
    ) -> _TfidfBlock | None:
        vectorizer = CountVectorizer(
            analyzer=analyzer, ngram_range=ngram_range, min_df=min_df, lowercase=True
        )
        try:
            counts = vectorizer.fit_transform(texts)
        except ValueError:  # empty vocabulary (e.g. only blank texts)
            return None
        n = counts.shape[0]
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        vocabulary = [""] * len(vectorizer.vocabulary_)
        for term, index in vectorizer.vocabulary_.items():
            vocabulary[index] = term
        return cls(analyzer, ngram_range, vocabulary, idf.astype(np.float64))

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        if self._vectorizer is None:
            self._vectorizer = CountVectorizer(
                analyzer=self.analyzer,
                ngram_range=self.ngram_range,
                lowercase=True,
                vocabulary={term: i for i, term in enumerate(self.vocabulary)},
            )
        x = sp.csr_matrix(self._vectorizer.transform(texts), dtype=np.float64)
        x.data = 1.0 + np.log(x.data)
        x = sp.csr_matrix(x @ sp.diags(self.idf))
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        return sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ x)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _lbfgs(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """Minimise a smooth convex ``fun`` (value, gradient) by L-BFGS with Armijo backtracking.

    Plain numpy: for the ~10^6 weights of a TF-IDF head it is several times faster
    than scipy's L-BFGS-B, whose bound handling dominates at that size.
    """
    fx, g = fun(x)
    history: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(MAX_ITER):
        if np.abs(g).max() <= TOL:
            break
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(history):
            a = rho * float(s @ q)
            q -= a * y
            alphas.append(a)
        if history:
            s, y, _rho = history[-1]
            q *= float(s @ y) / float(y @ y)
        else:
            q /= max(float(np.linalg.norm(g)), 1e-12)
        for (s, y, rho), a in zip(history, reversed(alphas), strict=True):
            q += s * (a - rho * float(y @ q))
        direction = -q
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            history.clear()
            direction = -g / max(float(np.linalg.norm(g)), 1e-12)
            slope = float(g @ direction)
        step = 1.0
        for _ in range(40):
            x_new = x + step * direction
            f_new, g_new = fun(x_new)
            if f_new <= fx + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s, y = x_new - x, g_new - g
        sy = float(s @ y)
        if sy > 1e-12:
            history.append((s, y, 1.0 / sy))
            if len(history) > LBFGS_MEMORY:
                history.pop(0)
        stalled = fx - f_new <= 64 * np.finfo(float).eps * max(abs(fx), abs(f_new), 1.0)
        x, fx, g = x_new, f_new, g_new
        if stalled:
            break
    return x


def _fit_head(
    sparse: sp.csr_matrix, dense: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on [sparse | dense] with L2 (sklearn's objective).

    Returns (coef (classes, features), intercept (classes,)) for the sorted unique ``y``.
    """
    classes, rows = np.unique(y, return_inverse=True)
    n, k = len(rows), len(classes)
    n_sparse, n_dense = sparse.shape[1], dense.shape[1]
    size = (n_sparse + n_dense) * k
    onehot = np.zeros((n, k))
    onehot[np.arange(n), rows] = 1.0
    sparse_t = sparse.T.tocsr()
    alpha = 1.0 / (REGULARISATION_C * n)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[:size].reshape(n_sparse + n_dense, k)
        z = sparse @ w[:n_sparse] + dense @ w[n_sparse:] + theta[size:]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        total = e.sum(axis=1, keepdims=True)
        value = -float(((z - np.log(total)) * onehot).sum()) / n + 0.5 * alpha * float(
            (w * w).sum()
        )
        residual = (e / total - onehot) / n
        grad_w = np.vstack([sparse_t @ residual, dense.T @ residual]) + alpha * w
        return value, np.concatenate([grad_w.ravel(), residual.sum(axis=0)])

    theta = _lbfgs(loss, np.zeros(size + k))
    return theta[:size].reshape(n_sparse + n_dense, k).T, theta[size:]


class TextClassifier:
    """Calibrated text classifier for one label set; see the module docstring."""

    labels: list[str]
    n_examples: int
    model_name: str

    def __init__(
        self,
        labels: list[str],
        *,
        n_examples: int = 0,
        classes: np.ndarray | None = None,
        coef: np.ndarray | None = None,
        intercept: np.ndarray | None = None,
        emb_mean: np.ndarray | None = None,
        emb_scale: float = 1.0,
        tfidf: list[_TfidfBlock] | None = None,
        temperature: float = 1.0,
        shrink: float = 1.0,
        prior_pseudocount: float = 0.0,
        label_descriptions: dict[str, str] | None = None,
        model_name: str = MODEL_NAME,
    ) -> None:
        self.labels = list(labels)
        self.n_examples = n_examples
        self.model_name = model_name
        self.label_descriptions = dict(label_descriptions or {})
        self.temperature = float(temperature)
        self.shrink = float(shrink)
        # already folded into the intercepts; kept to show what the fit chose
        self.prior_pseudocount = float(prior_pseudocount)
        # indices (into labels) of the labels that had examples, in coef row order
        self._classes = np.zeros(0, np.int64) if classes is None else np.asarray(classes, np.int64)
        self._coef = coef
        self._intercept = intercept
        self._emb_mean = emb_mean
        self._emb_scale = float(emb_scale)
        self._tfidf = list(tfidf or [])

    # ------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        texts: list[str],
        labels: list[str],
        label_set: list[str],
        label_descriptions: dict[str, str] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> TextClassifier:
        """Fit on reviewed items. Examples whose label is not in ``label_set`` are skipped.

        ``label_descriptions`` are kept with the model (shown with it); they do not
        give a label without examples any probability. ``embeddings``: the texts' encodings,
        when the caller already has them (several models trained on the same texts).
        """
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        if not label_set:
            raise ValueError("label_set is empty")
        if len(set(label_set)) != len(label_set):
            raise ValueError("label_set has duplicates")
        index = {label: i for i, label in enumerate(label_set)}
        keep = [i for i, label in enumerate(labels) if label in index]
        if len(keep) < len(labels):
            log.warning(
                "skipping %d examples whose label is not in the label set", len(labels) - len(keep)
            )
        x_texts = [texts[i] if isinstance(texts[i], str) else "" for i in keep]
        y = np.array([index[labels[i]] for i in keep], dtype=np.int64)
        n, k = len(y), len(label_set)
        classes = np.unique(y)
        floor = SHRINK_PRIOR / (n + SHRINK_PRIOR)
        if len(classes) < 2:
            # nothing to discriminate: the one seen label (if any) vs. the rest
            return cls(
                list(label_set),
                n_examples=n,
                classes=classes,
                coef=np.zeros((len(classes), 0)),
                intercept=np.zeros(len(classes)),
                shrink=1.0 if n == 0 else max(floor, 0.5),
                label_descriptions=label_descriptions,
            )

        if embeddings is None:
            embeddings = get_encoder().encode(x_texts).astype(np.float64)
        else:
            embeddings = np.asarray(embeddings, dtype=np.float64)[keep]
        temperature, shrink, pseudocount = 1.0, max(floor, 0.5), 0.0
        if n >= MIN_CV_EXAMPLES:
            logits, rows, fold_counts, row_fold, unseen_rate = cls._out_of_fold(
                x_texts, embeddings, y, list(label_set)
            )
            temperature, shrink, pseudocount = _fit_confidence(
                logits, y[rows], floor, fold_counts, row_fold
            )
            # The folds' models saw fewer labels than the final one: part of ``shrink`` is
            # the chance that an answer is a label the fold never saw, which is higher than
            # for the final model. Good-Turing estimates the final model's chance (labels
            # seen once / n); the difference comes off, so the final model is not held
            # back by its folds' ignorance (measured: under-confident at the top with few
            # examples per label).
            good_turing = float((np.bincount(y, minlength=k) == 1).sum()) / n
            excess = unseen_rate - good_turing
            shrink = max(floor, shrink - max(0.0, excess))
        model = cls._fit_parts(x_texts, embeddings, y, list(label_set))
        if pseudocount > 0 and model._intercept is not None and len(model._intercept):
            counts = np.bincount(y, minlength=k)[model._classes]
            model._intercept = (model._intercept + _prior_adjustment(counts, pseudocount)).astype(
                np.float32
            )
        model.temperature, model.shrink = temperature, shrink
        model.prior_pseudocount = pseudocount
        model.label_descriptions = dict(label_descriptions or {})
        return model

    @classmethod
    def _out_of_fold(
        cls, texts: list[str], embeddings: np.ndarray, y: np.ndarray, label_set: list[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """Scores of every example by a model that did not see it (k-fold, repeated with
        other splits while examples are few, so the confidence fit rests on more scores).

        Returns (logits, example index of each row, label counts per fold model, fold of
        each row, share of rows whose label their fold model never saw).
        """
        n = len(y)
        folds = min(CV_FOLDS_SMALL if n <= CV_FOLDS_SWITCH else CV_FOLDS_LARGE, n)
        repeats = int(min(CV_MAX_REPEATS, max(1, CV_REPEAT_BUDGET // n)))
        logits: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        row_fold: list[np.ndarray] = []
        unseen = 0
        for repeat in range(repeats):
            splitter = KFold(n_splits=folds, shuffle=True, random_state=_SEED + repeat)
            for fit_rows, held_rows in splitter.split(texts):
                unseen += int(np.isin(y[held_rows], y[fit_rows], invert=True).sum())
                part = cls._fit_parts(
                    [texts[i] for i in fit_rows], embeddings[fit_rows], y[fit_rows], label_set
                )
                logits.append(part._logits([texts[i] for i in held_rows], embeddings[held_rows]))
                rows.append(held_rows)
                row_fold.append(np.full(len(held_rows), len(counts)))
                counts.append(np.bincount(y[fit_rows], minlength=len(label_set)))
        return (
            np.vstack(logits),
            np.concatenate(rows),
            np.stack(counts),
            np.concatenate(row_fold),
            unseen / (n * repeats),
        )

    @classmethod
    def _fit_parts(
        cls, texts: list[str], embeddings: np.ndarray, y: np.ndarray, label_set: list[str]
    ) -> TextClassifier:
        """Features + head on these rows (no confidence fitting)."""
        n = len(texts)
        mean = embeddings.mean(axis=0)
        centred = embeddings - mean
        scale = float(np.sqrt((centred**2).sum(axis=1).mean())) or 1.0
        blocks = [
            _TfidfBlock.fit(texts, "word", (1, 2), 1),
            _TfidfBlock.fit(texts, "char_wb", (2, 5), 2 if n >= 50 else 1),
        ]
        model = cls(
            label_set,
            n_examples=n,
            emb_mean=mean,
            emb_scale=scale,
            tfidf=[b for b in blocks if b is not None],
        )
        classes = np.unique(y)
        model._classes = classes
        if len(classes) < 2:  # a CV fold can hold a single label
            model._coef = np.zeros((1, 0))
            model._intercept = np.zeros(1)
            return model
        coef, intercept = _fit_head(*model._features(texts, embeddings), y)
        model._coef = coef.astype(np.float32)
        model._intercept = intercept.astype(np.float32)
        return model

    # ---------------------------------------------------------------- prediction

    def _features(
        self, texts: Sequence[str], embeddings: np.ndarray
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        """(TF-IDF blocks side by side, scaled centred embeddings)."""
        assert self._emb_mean is not None
        dense = (embeddings - self._emb_mean) * (EMBEDDING_WEIGHT / self._emb_scale)
        blocks = [block.transform(texts) for block in self._tfidf]
        if not blocks:
            return sp.csr_matrix((len(texts), 0)), dense
        return sp.csr_matrix(sp.hstack(blocks, format="csr")), dense

    def _logits(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        """(n, len(labels)) scores; -inf for labels the head does not know."""
        out = np.full((len(texts), len(self.labels)), -np.inf)
        if len(self._classes) == 0:
            return out
        if self._coef is None or self._intercept is None or self._coef.shape[1] == 0:
            out[:, self._classes] = 0.0
            return out
        sparse, dense = self._features(texts, embeddings)
        coef = self._coef.astype(np.float64)
        n_sparse = sparse.shape[1]
        out[:, self._classes] = np.asarray(
            sparse @ coef[:, :n_sparse].T
            + dense @ coef[:, n_sparse:].T
            + self._intercept.astype(np.float64)
        )
        return out

    def predict_proba(self, texts: list[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """(len(texts), len(labels)) probabilities; rows sum to 1. ``embeddings``: the texts'
        encodings, when the caller already has them."""
        k = len(self.labels)
        if not texts:
            return np.zeros((0, k))
        clean = [t if isinstance(t, str) else "" for t in texts]
        if len(self._classes) == 0:
            return np.full((len(clean), k), 1.0 / k)
        if self._coef is None or self._coef.shape[1] == 0:
            logits = self._logits(clean, np.zeros((len(clean), 0)))
        else:
            if embeddings is None:
                embeddings = get_encoder().encode(clean)
            logits = self._logits(clean, np.asarray(embeddings, dtype=np.float64))
        return _mix(logits, self.temperature, self.shrink)

    # ------------------------------------------------------------- serialisation

    def to_bytes(self) -> bytes:
        meta = {
            "format": 1,
            "model_name": self.model_name,
            "encoder": ENCODER_NAME,
            "labels": self.labels,
            "n_examples": self.n_examples,
            "temperature": self.temperature,
            "shrink": self.shrink,
            "prior_pseudocount": self.prior_pseudocount,
            "emb_scale": self._emb_scale,
            "label_descriptions": self.label_descriptions,
            "tfidf": [
                {
                    "analyzer": b.analyzer,
                    "ngram_range": list(b.ngram_range),
                    "vocabulary": b.vocabulary,
                }
                for b in self._tfidf
            ],
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            "classes": self._classes,
        }
        if self._coef is not None and self._intercept is not None:
            arrays["coef"] = self._coef
            arrays["intercept"] = self._intercept
        if self._emb_mean is not None:
            arrays["emb_mean"] = self._emb_mean
        for i, block in enumerate(self._tfidf):
            arrays[f"idf{i}"] = block.idf
        return FORMAT_MAGIC + _npz_bytes(arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> TextClassifier:
        arrays, meta = _npz_load(data, FORMAT_MAGIC, "TextClassifier")
        if meta.get("encoder") != ENCODER_NAME:
            raise ValueError(f"model was trained on encoder {meta.get('encoder')!r}")
        tfidf = [
            _TfidfBlock(
                b["analyzer"],
                (int(b["ngram_range"][0]), int(b["ngram_range"][1])),
                list(b["vocabulary"]),
                arrays[f"idf{i}"],
            )
            for i, b in enumerate(meta["tfidf"])
        ]
        return cls(
            list(meta["labels"]),
            n_examples=int(meta["n_examples"]),
            classes=arrays["classes"],
            coef=arrays.get("coef"),
            intercept=arrays.get("intercept"),
            emb_mean=arrays.get("emb_mean"),
            emb_scale=float(meta["emb_scale"]),
            tfidf=tfidf,
            temperature=float(meta["temperature"]),
            shrink=float(meta["shrink"]),
            prior_pseudocount=float(meta.get("prior_pseudocount", 0.0)),
            label_descriptions=dict(meta.get("label_descriptions") or {}),
            model_name=str(meta["model_name"]),
        )

    def __repr__(self) -> str:
        return (
            f"TextClassifier({self.model_name}, labels={len(self.labels)}, "
            f"n_examples={self.n_examples}, T={self.temperature:.2f}, "
            f"shrink={self.shrink:.3f}, prior_pseudocount={self.prior_pseudocount:.3g})"
        )


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed .npz with fixed timestamps, so equal models give equal bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _npz_load(data: bytes, magic: bytes, kind: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the JSON ``meta`` of a model written as ``magic + _npz_bytes(...)``."""
    if not data.startswith(magic):
        raise ValueError(f"not a serialised {kind}")
    with np.load(io.BytesIO(data[len(magic) :]), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    if meta.get("format") != 1:
        raise ValueError(f"unknown {kind} format {meta.get('format')!r}")
    return arrays, meta


def _mix(logits: np.ndarray, temperature: float, shrink: float) -> np.ndarray:
    """(1 - shrink) * softmax over the known labels + shrink * uniform over all labels."""
    k = logits.shape[1]
    known = np.isfinite(logits)
    scaled = np.where(known, logits / temperature, -np.inf)
    top = np.max(np.where(known, scaled, -np.inf), axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.where(known, np.exp(scaled - top), 0.0)
    total = e.sum(axis=1, keepdims=True)
    soft = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    # rows where no label is known get the uniform distribution only
    weight = np.where(total > 0, 1.0 - shrink, 0.0)
    probs = weight * soft + (1.0 - weight) / k
    return np.asarray(probs / probs.sum(axis=1, keepdims=True))


def _prior_adjustment(counts: np.ndarray, pseudocount: float) -> np.ndarray:
    """``log((n_c + a) / n_c)`` for the label counts ``n_c`` (0 where a label has none)."""
    counts = np.asarray(counts, dtype=np.float64)
    seen = counts > 0
    out = np.zeros_like(counts)
    out[seen] = np.log((counts[seen] + pseudocount) / counts[seen])
    return out


def _fit_confidence(
    logits: np.ndarray,
    y: np.ndarray,
    floor: float,
    fold_counts: np.ndarray,
    row_fold: np.ndarray,
) -> tuple[float, float, float]:
    """Temperature, shrink and label-prior pseudo-count, fitted on out-of-fold scores.

    The pseudo-count (with a provisional temperature and shrink) maximises the likelihood
    of the out-of-fold labels: the label prior is about the whole distribution. Temperature
    and shrink are then refitted to maximise the likelihood of whether each top answer was
    right, which is the confidence routing acts on. (Measured on BANKING77 at 250
    examples: the whole-distribution fit bends the top answer's confidence, over-confident
    at 0.5-0.8 and held below 0.95 where 97% are right; ECE 0.039 -> 0.035, and the same
    two parameters fitted on the evaluation set itself reach 0.022, the sampling floor.)

    ``fold_counts[f]``: label counts fold ``f``'s model was trained on; ``row_fold[i]``:
    the fold whose model scored row ``i``.
    """
    rows = np.arange(len(y))
    lo_t, hi_t = TEMPERATURE_BOUNDS
    lo_a, hi_a = PSEUDOCOUNT_BOUNDS
    floor = min(max(floor, 1e-6), 0.99)

    def unpack(params: np.ndarray) -> tuple[float, float, float]:
        shrink = floor + (0.999 - floor) / (1.0 + math.exp(-params[1]))
        return math.exp(params[0]), shrink, math.exp(params[2])

    def nll(params: np.ndarray) -> float:
        temperature, shrink, pseudocount = unpack(params)
        adjusted = logits + _prior_adjustment(fold_counts, pseudocount)[row_fold]
        p = _mix(adjusted, temperature, shrink)[rows, y]
        return float(-np.log(np.maximum(p, 1e-12)).mean())

    best: tuple[float, np.ndarray] | None = None
    for start_shrink in (-4.0, 0.0):
        result = minimize(
            nll,
            np.array([0.0, start_shrink, 0.0]),
            method="L-BFGS-B",
            bounds=[
                (math.log(lo_t), math.log(hi_t)),
                (-12.0, 12.0),
                (math.log(lo_a), math.log(hi_a)),
            ],
        )
        if best is None or result.fun < best[0]:
            best = (float(result.fun), result.x)
    assert best is not None
    pseudocount = unpack(best[1])[2]

    adjusted = logits + _prior_adjustment(fold_counts, pseudocount)[row_fold]
    right = adjusted.argmax(axis=1) == y  # the top answer, whatever T and shrink

    def top_nll(params: np.ndarray) -> float:
        temperature, shrink, _ = unpack(np.array([params[0], params[1], 0.0]))
        top = np.clip(_mix(adjusted, temperature, shrink).max(axis=1), 1e-12, 1 - 1e-12)
        return float(-np.where(right, np.log(top), np.log1p(-top)).mean())

    result = minimize(
        top_nll,
        best[1][:2],
        method="L-BFGS-B",
        bounds=[(math.log(lo_t), math.log(hi_t)), (-12.0, 12.0)],
    )
    temperature, shrink, _ = unpack(np.array([result.x[0], result.x[1], 0.0]))
    return temperature, shrink, pseudocount
