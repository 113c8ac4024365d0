"""Workflow configuration: what the AI does, how confident it must be, what an item looks like."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from hitl_shared.workflows.conditions import (
    ConditionError,
    Node,
    evaluate,
    parse_condition,
    structured_condition,
)

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


RuleLevel = Literal["full", "manual", "escalated"]


class RiskRule(BaseModel):
    """A declarative risk condition that forces a stricter review level, whatever the
    confidence. Either ``when`` (an expression, see ``conditions``) or the structured
    ``field`` / ``op`` / ``value``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
    when: str | None = None
    field: str | None = None
    op: str | None = None
    value: Any = None
    level: RuleLevel = "full"
    reason: str = Field(min_length=1, max_length=500)
    _condition: Node | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _compile(self) -> RiskRule:
        if (self.when is None) == (self.field is None):
            raise ValueError("give either `when` (an expression) or `field` with `op` and `value`")
        try:
            if self.when is not None:
                if self.op is not None or self.value is not None:
                    raise ValueError("`op` and `value` belong to the structured form (`field`)")
                self._condition = parse_condition(self.when)
            else:
                if self.op is None:
                    raise ValueError("`field` needs an `op` (eq, ne, gt, ge, lt, le, in, ...)")
                self._condition = structured_condition(self.field or "", self.op, self.value)
        except ConditionError as e:
            raise ValueError(f"invalid condition: {e}") from e
        return self

    @property
    def condition(self) -> Node:
        assert self._condition is not None
        return self._condition

    def matches(self, data: dict[str, Any]) -> bool:
        return evaluate(self.condition, data)


class AutoApprove(BaseModel):
    """Completion without a human. Off unless an operator turns it on for a low-risk workflow;
    an audit sample still goes to a human (``audit.auto``)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    min_confidence: float = Field(default=0.98, gt=0, le=1)


class AuditSampling(BaseModel):
    """Share of items that could skip a careful look but get a full review anyway, so
    feedback measures the real error rate of each band. Drawn per item from a hash of its id:
    the same item always gets the same verdict."""

    model_config = ConfigDict(extra="forbid")
    auto: float = Field(default=0.05, ge=0, le=1)
    light: float = Field(default=0.0, ge=0, le=1)


class BatchSettings(BaseModel):
    """Low-confidence negative outcomes (declines) that a human approves as a group."""

    model_config = ConfigDict(extra="forbid")
    labels: list[str] = Field(min_length=1)
    below_confidence: float = Field(default=0.6, gt=0, le=1)
    # How many items one batch page shows at most.
    size: int = Field(default=50, ge=2, le=500)


class CanarySettings(BaseModel):
    """Known-wrong answers placed in the light queue to measure whether reviewers read."""

    model_config = ConfigDict(extra="forbid")
    # Canaries per routed item (0.02: about one for every fifty items).
    rate: float = Field(default=0.0, ge=0, le=0.5)


_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def _duration(value: Any) -> Any:
    """Accepts "90m", "4h", "1d 12h", seconds as a number, or ISO 8601 ("PT4H")."""
    if isinstance(value, str) and not value.upper().startswith("P"):
        m = _DURATION.match(value)
        if not m or not any(m.groups()):
            raise ValueError(f"{value!r} is not a duration such as 30m, 4h or 1d")
        d, h, mi, se = (int(g or 0) for g in m.groups())
        return timedelta(days=d, hours=h, minutes=mi, seconds=se)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class SLA(BaseModel):
    """How long an item may wait at each level before it is overdue and escalates."""

    model_config = ConfigDict(extra="forbid")
    light: Duration = timedelta(hours=4)
    full: Duration = timedelta(hours=8)
    manual: Duration = timedelta(hours=24)
    batch: Duration = timedelta(hours=24)
    escalated: Duration = timedelta(hours=4)

    @model_validator(mode="after")
    def _positive(self) -> SLA:
        for name in ("light", "full", "manual", "batch", "escalated"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"sla.{name} must be longer than zero")
        return self

    def for_level(self, level: str) -> timedelta | None:
        value = getattr(self, level, None) if level in SLA_LEVELS else None
        return value if isinstance(value, timedelta) else None


SLA_LEVELS = ("light", "full", "manual", "batch", "escalated")


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    # Risk rules override confidence; the strictest matching rule wins.
    rules: list[RiskRule] = Field(default_factory=list, max_length=200)
    auto_approve: AutoApprove = Field(default_factory=AutoApprove)
    audit: AuditSampling = Field(default_factory=AuditSampling)
    batch: BatchSettings | None = None
    canaries: CanarySettings = Field(default_factory=CanarySettings)
    sla: SLA = Field(default_factory=SLA)
    # Shadow mode: every item gets a full review; the level the policy would have chosen is
    # recorded, so operators see what loosening the thresholds would do.
    shadow: bool = False

    @model_validator(mode="after")
    def _distinct_rule_names(self) -> Routing:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"routing.rules names must be distinct: {', '.join(dupes)}")
        return self


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
        if self.routing.batch is not None:
            unknown = [n for n in self.routing.batch.labels if n not in names]
            if unknown:
                raise ValueError(
                    f"routing.batch.labels: {', '.join(map(repr, unknown))} "
                    "not among the workflow's labels"
                )
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
            f"{key_path(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in e.errors()
        )
        raise WorkflowFileError(f"{path}: {problems}") from e


def key_path(loc: tuple[int | str, ...]) -> str:
    """('routing', 'rules', 0, 'when') → routing.rules[0].when, as the YAML reads."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


DEMO_DIR = Path(__file__).resolve().parent / "demo"


def demo_workflow_files() -> list[Path]:
    return sorted(DEMO_DIR.glob("*.yaml"))
