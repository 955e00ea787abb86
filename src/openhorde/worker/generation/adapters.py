"""LoRAs and textual inversions: load once per model, switch on for a job, switch off after it.

The engine does not download anything: a resolver (wired by the runner to the model store) maps a horde
LoRA/TI name to a local file. Whatever cannot be resolved or loaded is skipped with a ``gen_metadata`` note,
and the job still runs, as reGen does.
"""

from __future__ import annotations

import difflib
import logging
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from openhorde.worker.generation.spec import GenerationSpec, LoraSpec, Metadata, TextualInversionSpec

logger = logging.getLogger(__name__)

AdapterKind = Literal["lora", "ti", "hypernetwork"]
DEFAULT_MAX_LORAS = 8
"""Loaded LoRA adapters kept per model; the least recently used one is deleted beyond this."""
_DENOISERS = ("unet", "transformer")


@dataclass(frozen=True)
class AdapterFile:
    """A LoRA or TI on disk (a weights file, or a diffusers folder) and its trigger words."""

    path: Path
    triggers: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdapterLookup:
    """What a job asks a resolver for: a LoRA, TI or hypernetwork by name (or id), for the job's model."""

    kind: AdapterKind
    name: str
    model: str = ""
    """The horde model the job runs on (a resolver checks the adapter's baseline against it)."""
    is_version: bool = False
    """``name`` is a version id (CivitAI's ``modelVersionId``) rather than a model id or name."""


class AdapterUnusable(Exception):
    """A resolver found the adapter but it cannot serve this job; ``value`` is the ``gen_metadata`` value."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(reason)
        self.value = value


AdapterResolver = Callable[[AdapterLookup], AdapterFile | None]


@dataclass
class AdaptedPrompts:
    """A job's prompts after trigger words and TI tokens went in, and the notes for what was skipped."""

    positive: str
    negative: str
    metadata: list[Metadata] = field(default_factory=list)


def pick_triggers(triggers: Sequence[str], inject: str | None) -> list[str]:
    """The trigger words to prepend: ``"any"`` → the first, ``"all"`` → every one, other text → the closest match."""
    if not inject or not triggers:
        return []
    if inject == "any":
        return [triggers[0]]
    if inject == "all":
        return list(triggers)
    wanted = inject.lower()
    for trigger in triggers:
        if trigger.lower() == wanted:
            return [trigger]
    containing = [trigger for trigger in triggers if wanted in trigger.lower()]
    if containing:
        return containing[:1]
    lowered = {trigger.lower(): trigger for trigger in triggers}
    close = difflib.get_close_matches(wanted, list(lowered), n=1, cutoff=0.0)
    return [lowered[close[0]]] if close else []


def ti_token(name: str) -> str:
    """The tokenizer token a TI is loaded under (lower case: CLIP lower-cases prompts before matching)."""
    return "<ti-" + re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-") + ">"


class AdapterManager:
    """The LoRAs and TIs of one loaded model (its pipelines share the modules the adapters live in)."""

    def __init__(
        self, pipe: Any, resolver: AdapterResolver | None, max_loras: int = DEFAULT_MAX_LORAS, model: str = ""
    ) -> None:
        self._pipe = pipe
        self._resolver = resolver
        self._model = model
        self._max_loras = max_loras
        self._loras: OrderedDict[str, str] = OrderedDict()  # horde name → adapter name, least recent first
        self._lora_triggers: dict[str, tuple[str, ...]] = {}
        self._tis: dict[str, str] = {}  # horde name → token
        self._counter = 0
        self._active = False

    def prepare(self, spec: GenerationSpec, positive: str, negative: str) -> AdaptedPrompts:
        """Activate the job's LoRAs at their strengths and put trigger words and TI tokens into the prompts."""
        result = AdaptedPrompts(positive, negative)
        self._apply_loras(spec.loras, result)
        for ti in spec.textual_inversions:
            self._apply_ti(ti, result)
        return result

    def finish(self) -> None:
        """Switch the job's LoRAs off so the next job sees the base model (they stay loaded for reuse)."""
        if self._active:
            self._pipe.disable_lora()
            self._active = False

    # LoRAs

    def _apply_loras(self, loras: Sequence[LoraSpec], result: AdaptedPrompts) -> None:
        names: list[str] = []
        weights: list[dict[str, float]] = []
        triggers: list[str] = []
        for lora in loras:
            adapter = self._lora_adapter(lora, result.metadata)
            if adapter is None or adapter in names:
                continue
            names.append(adapter)
            weights.append(self._component_weights(adapter, lora))
            triggers.extend(pick_triggers(self._lora_triggers.get(_lora_key(lora), ()), lora.inject_trigger))
        if triggers:
            result.positive = ", ".join([*triggers, result.positive]) if result.positive else ", ".join(triggers)
        self._evict_loras(keep=set(names))
        if not names:
            return
        self._pipe.enable_lora()
        self._active = True
        self._pipe.set_adapters(names, adapter_weights=weights)

    def _component_weights(self, adapter: str, lora: LoraSpec) -> dict[str, float]:
        """``model`` for the denoiser, ``clip`` for each text encoder; only parts the LoRA has (diffusers warns)."""
        parts = [component for component, names in self._pipe.get_list_adapters().items() if adapter in names]
        return {part: lora.model if part in _DENOISERS else lora.clip for part in parts}

    def _lora_adapter(self, lora: LoraSpec, metadata: list[Metadata]) -> str | None:
        """The adapter name of a loaded LoRA, loading it first if needed; None (with a note) when unavailable."""
        name = _lora_key(lora)
        adapter = self._loras.get(name)
        if adapter is not None:
            self._loras.move_to_end(name)
            return adapter
        found = self._resolve(AdapterLookup("lora", lora.name, self._model, lora.is_version))
        if not isinstance(found, AdapterFile):
            metadata.append(Metadata("lora", found, lora.name))
            return None
        self._counter += 1
        adapter = f"lora{self._counter}"
        try:
            with quiet_adapter_loading():
                self._load_lora(found.path, adapter)
        except Exception as error:  # a broken or foreign-architecture file must not fail the job
            logger.warning("LoRA %s could not be loaded: %s", name, error)
            self._forget_adapter(adapter)
            metadata.append(
                Metadata("lora", "baseline_mismatch" if _is_shape_error(error) else "parse_failed", lora.name)
            )
            return None
        self._loras[name] = adapter
        self._lora_triggers[name] = found.triggers
        return adapter

    def _load_lora(self, path: Path, adapter: str) -> None:
        """A diffusers LoRA folder, or one weights file (diffusers/peft or kohya keys; diffusers converts)."""
        if path.is_dir():
            self._pipe.load_lora_weights(str(path), adapter_name=adapter)
        else:
            self._pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=adapter)

    def _evict_loras(self, keep: set[str]) -> None:
        """Delete the least recently used adapters beyond the limit, never one the current job uses."""
        for name, adapter in list(self._loras.items()):
            if len(self._loras) <= self._max_loras:
                return
            if adapter not in keep:
                del self._loras[name]
                self._lora_triggers.pop(name, None)
                self._forget_adapter(adapter)

    def _forget_adapter(self, adapter: str) -> None:
        loaded = {name for names in self._pipe.get_list_adapters().values() for name in names}
        if adapter in loaded:
            self._pipe.delete_adapters(adapter)

    # Textual inversions

    def _apply_ti(self, ti: TextualInversionSpec, result: AdaptedPrompts) -> None:
        token = self._ti_token(ti.name, result.metadata)
        if token is None:
            return
        weighted = token if ti.strength == 1.0 else f"({token}:{ti.strength:g})"
        # ComfyUI-style references the user wrote themselves ("embedding:name") point at the loaded token.
        reference = re.compile(rf"embedding:{re.escape(ti.name)}\b", re.IGNORECASE)
        result.positive = reference.sub(token, result.positive)
        result.negative = reference.sub(token, result.negative)
        if ti.inject == "prompt":
            result.positive = f"{weighted} {result.positive}".strip()
        elif ti.inject == "negprompt":
            result.negative = f"{result.negative} {weighted}".strip()

    def _ti_token(self, name: str, metadata: list[Metadata]) -> str | None:
        token = self._tis.get(name)
        if token is not None:
            return token
        found = self._resolve(AdapterLookup("ti", name, self._model))
        if not isinstance(found, AdapterFile):
            metadata.append(Metadata("ti", found, name))
            return None
        token = ti_token(name)
        try:
            with quiet_adapter_loading():
                self._load_ti(found.path, token)
        except Exception as error:  # as for LoRAs: skip it, keep the job
            logger.warning("textual inversion %s could not be loaded: %s", name, error)
            metadata.append(Metadata("ti", "baseline_mismatch" if _is_shape_error(error) else "parse_failed", name))
            return None
        self._tis[name] = token
        return token

    def _load_ti(self, path: Path, token: str) -> None:
        """Load an embedding; SDXL files carry one tensor per text encoder (``clip_l``, ``clip_g``)."""
        if getattr(self._pipe, "text_encoder_2", None) is not None and path.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            if "clip_l" in tensors and "clip_g" in tensors:
                pipe = self._pipe
                pipe.load_textual_inversion(tensors["clip_l"], token=token)
                pipe.load_textual_inversion(
                    tensors["clip_g"], token=token, text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2
                )
                return
        self._pipe.load_textual_inversion(str(path), token=token)

    def resolve_file(self, kind: AdapterKind, name: str) -> Path | str:
        """The file of an adapter of another kind (hypernetworks), or why there is none (``gen_metadata`` value)."""
        found = self._resolve(AdapterLookup(kind, name, self._model))
        return found.path if isinstance(found, AdapterFile) else found

    def _resolve(self, lookup: AdapterLookup) -> AdapterFile | str:
        """The adapter's file, or the ``gen_metadata`` value saying why there is none (``download_failed``…)."""
        if self._resolver is None:
            return "download_failed"
        try:
            found = self._resolver(lookup)
        except AdapterUnusable as error:
            logger.warning("%s %s skipped: %s", lookup.kind, lookup.name, error)
            return error.value
        except Exception as error:  # the store failing to fetch is a missing adapter, not a failed job
            logger.warning("resolving %s %s failed: %s", lookup.kind, lookup.name, error)
            return "download_failed"
        return "download_failed" if found is None else found


def _lora_key(lora: LoraSpec) -> str:
    """How loaded LoRAs are remembered: a version id and a model id of the same digits are different LoRAs."""
    return f"version:{lora.name}" if lora.is_version else lora.name


@contextmanager
def quiet_adapter_loading() -> Iterator[None]:
    """Silence the libraries' expected chatter while adapter weights load (restored afterwards).

    transformers prints a progress bar and a "MISSING keys" report listing every base weight of the text
    encoder (the file holds only LoRA tensors; the base weights are untouched); diffusers notes LoRAs without
    text-encoder keys; peft warns that a model already has adapters, which is what a LoRA cache means;
    transformers explains how it initialises the rows a textual inversion adds before they are overwritten.
    Logging levels are process-wide, so this runs only around loads, which the engine serialises.
    """
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = (transformers_logging.get_verbosity(), diffusers_logging.get_verbosity())
    progress = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    diffusers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute", category=UserWarning)
            yield
    finally:
        transformers_logging.set_verbosity(levels[0])
        diffusers_logging.set_verbosity(levels[1])
        if progress:
            transformers_logging.enable_progress_bar()


def _is_shape_error(error: Exception) -> bool:
    """Loading a file made for another model family fails on tensor sizes."""
    text = str(error).lower()
    return "size mismatch" in text or "shape" in text
