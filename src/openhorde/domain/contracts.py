"""What the horde publishes about how it runs requests: ``/status/sampler_constraints`` and ``/status/style_contract``.

Both documents keep the AI Horde's shape, filled with what this horde does, so a client reading them renders only
the controls that work here:

* samplers: the 14 names a request may use, each with its work per step as pricing counts it (second-order
  samplers evaluate the model twice a step; ``k_dpm_adaptive`` picks its own steps and is priced as 40). No
  sampler here takes tuning settings (``sampler_eta``...), schedulers or solver types, and none has measured
  cost ratios, so those parts are empty.
* styles: a style's prompt template fills ``{p}`` and ``{np}`` and leaves every other brace as written; a style
  sets its params whole (there are no per-parameter policies to override or cap), and style writes are held to
  the default rate limit. Text styles are not served by this image horde.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from openhorde.domain.kudos.pricing import ADAPTIVE_SAMPLER_STEPS, SECOND_ORDER_SAMPLERS

SAMPLERS = (
    "k_lms",
    "k_heun",
    "k_euler",
    "k_euler_a",
    "k_dpm_2",
    "k_dpm_2_a",
    "k_dpm_fast",
    "k_dpm_adaptive",
    "k_dpmpp_2s_a",
    "k_dpmpp_2m",
    "dpmsolver",
    "k_dpmpp_sde",
    "DDIM",
    "lcm",
)
"""Every sampler a request may name (the wire schema's ``Sampler``; a test keeps the two equal)."""
ADAPTIVE_SAMPLERS = frozenset({"k_dpm_adaptive"})
RECOMMENDED_SAMPLERS = ("k_euler", "k_euler_a", "k_dpmpp_2m", "k_dpmpp_sde", "DDIM")
"""Shown first by clients that follow the tiers; the tier restricts nothing."""
SAMPLER_SCHEMA_VERSION = "1.0"
STYLE_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class WorkProfile:
    """How much work a sampler does: per step (``fixed_rate``) or an estimate per request (``adaptive``)."""

    kind: str
    marginal_work_units_per_trajectory_step: int | None = None
    estimated_work_units_per_request: int | None = None
    finite_ceiling_contract_versions: list[str] | None = None


@dataclass(frozen=True)
class SamplerConstraint:
    """One sampler as published."""

    name: str
    work_profile: WorkProfile
    presentation_tier: str
    measured_cost_ratio_sd15: float | None = None
    measured_cost_ratio_sdxl: float | None = None
    solver_type_choices: list[str] = field(default_factory=list)
    accepted_settings: dict[str, object] = field(default_factory=dict)
    applies_cfg_pp: bool = False


@dataclass(frozen=True)
class SamplerConstraints:
    """The ``/status/sampler_constraints`` document."""

    schema_version: str
    samplers: dict[str, SamplerConstraint]
    recommended: list[str]


def _work_profile(name: str) -> WorkProfile:
    if name in ADAPTIVE_SAMPLERS:
        return WorkProfile("adaptive", estimated_work_units_per_request=ADAPTIVE_SAMPLER_STEPS)
    return WorkProfile("fixed_rate", marginal_work_units_per_trajectory_step=2 if name in SECOND_ORDER_SAMPLERS else 1)


def sampler_constraints() -> SamplerConstraints:
    """Every sampler with the work it does and its presentation tier."""
    samplers = {
        name: SamplerConstraint(
            name=name,
            work_profile=_work_profile(name),
            presentation_tier="recommended" if name in RECOMMENDED_SAMPLERS else "advanced",
        )
        for name in SAMPLERS
    }
    return SamplerConstraints(SAMPLER_SCHEMA_VERSION, samplers, list(RECOMMENDED_SAMPLERS))


@dataclass(frozen=True)
class StyleTypeContract:
    """What a style of one type (image or text) may do."""

    placeholders: list[str]
    brace_handling: str
    style_create_rate_limits: list[str]
    style_modify_rate_limits: list[str]
    context_fit_modes: list[str] | None
    declared_fields_are_placeholders: bool = False
    protected_patterns: list[dict[str, str]] = field(default_factory=list)
    overridable_parameters: list[str] = field(default_factory=list)
    ceiling_parameters: dict[str, dict[str, int | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class StyleContract:
    """The ``/status/style_contract`` document."""

    schema_version: int
    text: StyleTypeContract
    image: StyleTypeContract


def style_contract(write_limits: str) -> StyleContract:
    """The style contract; ``write_limits`` is the rate limit style writes are held to (``"90/minute"``, or ``""``
    when rate limits are off)."""
    limits = [part.strip() for part in write_limits.split(",") if part.strip()]
    image = StyleTypeContract(
        placeholders=["p", "np"],
        brace_handling="Every brace is literal except '{p}' (the request's prompt) and '{np}' (its negative part, "
        "after '###'), so a wildcard or a workflow string in braces reaches the worker as written.",
        style_create_rate_limits=limits,
        style_modify_rate_limits=limits,
        context_fit_modes=None,
    )
    text = StyleTypeContract(
        placeholders=["p"],
        brace_handling="This horde generates images only: it serves no text styles.",
        style_create_rate_limits=limits,
        style_modify_rate_limits=limits,
        context_fit_modes=[],
    )
    return StyleContract(STYLE_SCHEMA_VERSION, text=text, image=image)


WORK_ACCOUNTING_NOTE = (
    "Model evaluations per trajectory step: a second-order sampler does two, and an adaptive one is counted as "
    "its estimate per request. Prices and a request's step count use the same figures."
)
TIERS_NOTE = "The tier restricts nothing: every sampler listed is accepted by every model."
