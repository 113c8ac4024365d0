"""Workflow configuration: what the AI does, how confident it must be, what an item looks like."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$"


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    description: str = ""


class Thresholds(BaseModel):
    """On calibrated confidence: >= light → light review; >= full → full review; else manual."""

    model_config = ConfigDict(extra="forbid")
    light: float = Field(default=0.85, ge=0, le=1)
    full: float = Field(default=0.60, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.full > self.light:
            raise ValueError("thresholds.full must not be above thresholds.light")
        return self


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thresholds: Thresholds = Field(default_factory=Thresholds)


class ProviderConfig(BaseModel):
    """Which AI does the work. `openai` is any OpenAI-compatible endpoint (OpenAI, Azure,
    Ollama, vLLM); its key comes from the environment (HITL_OPENAI_API_KEY), never from here."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    name: Literal["local", "openai"] = "local"
    base_url: str | None = Field(default=None, description="e.g. http://localhost:11434/v1")
    model: str | None = None
    temperature: float = Field(default=0.0, ge=0, le=2)
    # Without token log-probabilities, confidence is the agreement between this many samples.
    samples: int = Field(default=5, ge=2, le=10)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    max_retries: int = Field(default=3, ge=0, le=10)
    # Hard limit on the wall time spent on one item, retries included.
    budget_seconds: float = Field(default=90.0, gt=0, le=1800)
    few_shot: int = Field(default=6, ge=0, le=50)
    # Prices per million tokens, to record the cost of each item.
    input_price_per_mtok: float = Field(default=0.0, ge=0)
    output_price_per_mtok: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _openai_needs_a_model(self) -> ProviderConfig:
        if self.name == "openai" and not self.model:
            raise ValueError("provider.model is required for the openai provider")
        return self


class FeedbackSettings(BaseModel):
    """How the feedback loop tunes this workflow."""

    model_config = ConfigDict(extra="forbid")
    # The operator's target: at most this share of wrong AI answers in the light band,
    # judged at the 95% lower confidence bound, never on a point estimate.
    target_light_error: float = Field(default=0.02, gt=0, lt=0.5)
    # Refit calibration and recommend thresholds after this many new human decisions.
    recalibrate_every: int = Field(default=50, ge=10)
    # Let the system apply its own threshold recommendations (each one a new, audited
    # workflow version). Off by default: an operator applies them with one action.
    auto_apply_thresholds: bool = False


class Example(BaseModel):
    """A labelled example written by the operator; the local model starts from these."""

    model_config = ConfigDict(extra="forbid")
    text: str
    label: str


class WorkflowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    task_type: Literal["classify"] = "classify"
    instructions: str = ""
    # JSON Schema every item's `input` must satisfy.
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    # Which input fields hold the text the AI and the reviewer read, in reading order.
    text_fields: list[str] = Field(min_length=1)
    labels: list[Label] = Field(min_length=2)
    examples: list[Example] = Field(default_factory=list)
    provider: ProviderConfig = Field(default_factory=ProviderConfig)
    routing: Routing = Field(default_factory=Routing)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    demo_items: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("input_schema")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(v)
        except SchemaError as e:
            raise ValueError(f"input_schema is not a valid JSON Schema: {e.message}") from e
        return v

    @model_validator(mode="after")
    def _labels_known(self) -> WorkflowConfig:
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise ValueError("labels must have distinct names")
        for i, ex in enumerate(self.examples):
            if ex.label not in names:
                raise ValueError(f"examples[{i}].label {ex.label!r} is not one of the labels")
        return self

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def public_config(self) -> dict[str, Any]:
        """What an item records and a version stores (demo items are not part of behaviour)."""
        return self.model_dump(mode="json", exclude={"demo_items"})


class WorkflowFileError(ValueError):
    pass


def load_workflow_file(path: Path) -> tuple[WorkflowConfig, str]:
    source = path.read_text()
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as e:
        raise WorkflowFileError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise WorkflowFileError(f"{path}: the top level must be a mapping of keys")
    try:
        return WorkflowConfig.model_validate(data), source
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in e.errors()
        )
        raise WorkflowFileError(f"{path}: {problems}") from e


DEMO_DIR = Path(__file__).resolve().parent / "demo"


def demo_workflow_files() -> list[Path]:
    return sorted(DEMO_DIR.glob("*.yaml"))
