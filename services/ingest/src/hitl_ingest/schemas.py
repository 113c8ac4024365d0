"""The public ingest API's request shapes. Integrations depend on these: keep them stable."""

from __future__ import annotations

from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(min_length=1, max_length=100, description="Name of the workflow")
    input: dict[str, Any] = Field(
        description="The work item, shaped by the workflow's input_schema"
    )
    external_id: str | None = Field(default=None, max_length=255)
    callback_url: AnyHttpUrl | None = Field(
        default=None, description="Receives the final decision as a signed webhook"
    )
    priority: int = Field(default=0, ge=-100, le=100)


class WorkflowView(BaseModel):
    name: str
    description: str
    task_type: str
    version: int
    input_schema: dict[str, Any]
    labels: list[dict[str, str]]
    # classify: several labels per item; the decision's output is {"labels": [...]}.
    multi_label: bool = False
