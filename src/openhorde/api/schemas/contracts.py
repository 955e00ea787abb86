"""Bodies of ``/status/sampler_constraints`` and ``/status/style_contract`` (the AI Horde's shapes)."""

from __future__ import annotations

from pydantic import ConfigDict

from openhorde.api.schemas.common import ResponseModel


class WorkProfile(ResponseModel):
    """``fixed_rate`` work gives ``marginal_work_units_per_trajectory_step``; ``adaptive`` work gives
    ``estimated_work_units_per_request`` (the other field is left out)."""

    model_config = ConfigDict(extra="allow")

    kind: str


class SamplerDetails(ResponseModel):
    name: str
    work_profile: WorkProfile
    measured_cost_ratio_sd15: float | None
    measured_cost_ratio_sdxl: float | None
    presentation_tier: str
    solver_type_choices: list[str]
    accepted_settings: dict[str, object]
    applies_cfg_pp: bool


class HardConstraints(ResponseModel):
    rejected_sampler_scheduler_pairings: list[dict[str, str]] = []
    scheduler_baseline_applicability: dict[str, list[str]] = {}


class Advisories(ResponseModel):
    cfg_pp_advised_max_cfg_scale: float | None = None


class WorkAccounting(ResponseModel):
    authoritative_field: str = "work_profile"
    authoritative_note: str
    measured_cost_ratio_provenance: str | None = None
    measured_cost_ratio_source: str | None = None
    measured_cost_ratio_note: str | None = None
    measured_cost_ratio_sdxl_note: str | None = None
    measured_cost_ratio_sd15_note: str | None = None


class PresentationTiers(ResponseModel):
    note: str
    recommended: list[str]


class SamplerConstraints(ResponseModel):
    schema_version: str
    execution_contracts: dict[str, object] = {}
    samplers: dict[str, SamplerDetails]
    hard_constraints: HardConstraints = HardConstraints()
    recommendations: list[dict[str, object]] = []
    advisories: Advisories = Advisories()
    work_accounting: WorkAccounting
    presentation_tiers: PresentationTiers


class ProtectedPattern(ResponseModel):
    pattern: str
    description: str


class CeilingRange(ResponseModel):
    minimum: int | None
    maximum: int | None


class StyleTypeContract(ResponseModel):
    placeholders: list[str]
    declared_fields_are_placeholders: bool
    protected_patterns: list[ProtectedPattern]
    brace_handling: str
    overridable_parameters: list[str]
    ceiling_parameters: dict[str, CeilingRange]
    context_fit_modes: list[str] | None
    style_create_rate_limits: list[str]
    style_modify_rate_limits: list[str]


class StyleContract(ResponseModel):
    schema_version: int
    text: StyleTypeContract
    image: StyleTypeContract
