"""Offline text classifier of the ``local`` provider (learns from reviewed items)."""

from hitl_processor.local_model.classifier import MODEL_NAME, TextClassifier
from hitl_processor.local_model.encoder import (
    ENCODER_NAME,
    EncoderUnavailable,
    SentenceEncoder,
    get_encoder,
)

__all__ = [
    "ENCODER_NAME",
    "MODEL_NAME",
    "EncoderUnavailable",
    "SentenceEncoder",
    "TextClassifier",
    "get_encoder",
]
