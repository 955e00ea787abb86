"""The generation engine: one ``GenerationSpec`` in, its images out, with models and schedulers kept between jobs."""

from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from openhorde.worker.generation import images as imaging
from openhorde.worker.generation.adapters import AdapterResolver
from openhorde.worker.generation.devices import Placement, resolve_placement
from openhorde.worker.generation.passes import Plan, plan_job, run_plan
from openhorde.worker.generation.pipelines import LoadedModel, prepare_pipeline
from openhorde.worker.generation.prompts import encode_prompts, resolve_dynamic
from openhorde.worker.generation.safety import SafetyChecker, apply_safety
from openhorde.worker.generation.samplers import seed_scheduler_noise
from openhorde.worker.generation.spec import GeneratedImage, GenerationResult, GenerationSpec, Metadata, split_prompt
from openhorde.worker.generation.tiling import pipeline_convolutions, seamless_tiling

if TYPE_CHECKING:
    from openhorde.worker.controlnet.pipeline import ControlNetSupport
    from openhorde.worker.postprocess.chain import PostProcessors

ModelLoader = Callable[[str], Any]
SEED_MODULUS = 2**64


class GenerationFailed(Exception):
    """A job could not be generated; ``reason`` goes into the ``faulted`` submit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Capabilities:
    """What the worker can advertise in its pop request, given this engine's setup."""

    img2img: bool = True
    painting: bool = True
    lora: bool = False
    hypernetworks: bool = False
    """Hypernetworks (an OpenHorde extension), served like LoRAs through the adapter resolver."""
    textual_inversion: bool = False
    post_processing: bool = False
    post_processors: tuple[str, ...] = ()
    """The post-processors loaded (AI Horde names); the pop lists them so the horde sends only those."""
    controlnet: bool = False
    controlnet_baselines: tuple[str, ...] = ()
    """Baselines whose every ControlNet control type is served here; the worker advertises ControlNet for them."""
    can_censor: bool = False
    tiling: bool = True
    hires_fix: bool = True
    clip_skip: bool = True


class Engine:
    """Generates jobs with diffusers pipelines; one job at a time (calls are serialised by a lock).

    ``load_model`` turns a horde model name into a pipeline (the runner passes its model store's loader).
    Up to ``max_loaded_models`` pipelines stay loaded, least recently used evicted first; each keeps its
    derived img2img/inpaint pipelines, its schedulers and its LoRAs/TIs.
    """

    def __init__(
        self,
        load_model: ModelLoader,
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        safety_checker: SafetyChecker | None = None,
        resolve_adapter: AdapterResolver | None = None,
        nsfw_worker: bool = True,
        max_loaded_models: int = 1,
        post_processors: PostProcessors | None = None,
        controlnets: ControlNetSupport | None = None,
    ) -> None:
        self.placement: Placement = resolve_placement(device, dtype)
        # Noise is drawn where the model runs on CUDA: from a CPU generator, every step of an ancestral sampler
        # (k_euler_a is the horde's default) would copy its noise to the GPU and wait for the GPU to catch up,
        # leaving it idle while the next step is launched. Same seed and device still give the same image.
        self._noise_device = self.placement.device if self.placement.is_cuda else torch.device("cpu")
        self._load_model = load_model
        self._safety = safety_checker
        self._resolve_adapter = resolve_adapter
        self._nsfw_worker = nsfw_worker
        self._max_loaded = max(1, max_loaded_models)
        self._post_processors = post_processors
        self._controlnets = controlnets
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def shared_models(self) -> tuple[SafetyChecker | None, PostProcessors | None]:
        """The safety checker and post-processors, for alchemy beside generation to use instead of loading again."""
        return self._safety, self._post_processors

    def capabilities(self) -> Capabilities:
        """What the worker may ask the horde for: adapters only with a resolver, censoring only with a checker."""
        adapters = self._resolve_adapter is not None
        complete = self._controlnets.complete_baselines() if self._controlnets is not None else ()
        return Capabilities(
            controlnet=bool(complete),
            controlnet_baselines=complete,
            lora=adapters,
            hypernetworks=adapters,
            textual_inversion=adapters,
            can_censor=self._safety is not None,
            post_processing=bool(self.post_processor_names()),
            post_processors=tuple(self.post_processor_names()),
        )

    def post_processor_names(self) -> list[str]:
        """The post-processors loaded on this engine, by their AI Horde names."""
        return self._post_processors.names if self._post_processors is not None else []

    def loaded_models(self) -> list[str]:
        """Names of the models in memory, least recently used first."""
        return list(self._models)

    def preload(self, model: str) -> None:
        """Load a model ahead of its job (raises ``GenerationFailed`` if it cannot be loaded)."""
        with self._lock:
            self._model(model)

    def unload(self, model: str | None = None) -> None:
        """Drop one model, or all of them, and give their memory back."""
        with self._lock:
            for name in [model] if model is not None else list(self._models):
                self._models.pop(name, None)
            self._release_memory()

    def generate(self, spec: GenerationSpec) -> GenerationResult:
        """Run one job: ``spec.n`` images in one pipeline call, image i seeded ``spec.seed + i``."""
        started = time.perf_counter()
        missing = self._post_processors.missing(spec.post_processing) if self._post_processors else spec.post_processing
        if missing:
            raise GenerationFailed(f"post-processor(s) not loaded on this worker: {', '.join(missing)}")
        with self._lock:
            try:
                result = self._generate(self._model(spec.model), spec)
                self._post_process(result, spec)
            except GenerationFailed:
                raise
            except torch.cuda.OutOfMemoryError as error:
                self._release_memory()
                raise GenerationFailed(f"out of GPU memory: {error}") from error
            except Exception as error:
                raise GenerationFailed(f"{type(error).__name__}: {error}") from error
        result.seconds = time.perf_counter() - started
        return result

    def _post_process(self, result: GenerationResult, spec: GenerationSpec) -> None:
        """Run the job's post-processors over every image that passed the safety check (censored ones stay)."""
        if not spec.post_processing or self._post_processors is None:
            return
        for generated in result.images:
            if generated.state == "ok":
                generated.image = self._post_processors.apply(
                    generated.image, spec.post_processing, spec.post_processing_order, spec.facefixer_strength
                )
        if self.placement.is_cuda:
            torch.cuda.empty_cache()  # a 4× upscale's buffers are large; give them back before the next job

    # Models

    def _model(self, name: str) -> LoadedModel:
        model = self._models.get(name)
        if model is not None:
            self._models.move_to_end(name)
            return model
        while len(self._models) >= self._max_loaded:
            self._models.popitem(last=False)
            self._release_memory()
        try:
            pipe = prepare_pipeline(self._load_model(name), self.placement)
        except Exception as error:
            raise GenerationFailed(f"model {name!r} could not be loaded: {error}") from error
        model = self._models[name] = LoadedModel.create(name, pipe, self._resolve_adapter)
        self._freeze_heap()
        return model

    @staticmethod
    def _freeze_heap() -> None:
        """Move every object alive now out of the collector's sight.

        The libraries and the loaded models are about half a million Python objects that live as long as the
        process; a full collection that walks them takes 0.2 s on a CPU core, a pause in which the GPU gets
        no work. ``_release_memory`` unfreezes first, so an evicted model's objects can still be collected.
        """
        gc.collect()
        gc.freeze()

    def _release_memory(self) -> None:
        gc.unfreeze()
        self._freeze_heap()
        if self.placement.is_cuda:
            torch.cuda.empty_cache()

    # One job

    def _generate(self, model: LoadedModel, spec: GenerationSpec) -> GenerationResult:
        control = None  # a ControlNet job's plan: its control map as the image
        if spec.control_type is not None:
            if self._controlnets is None:
                raise GenerationFailed("ControlNet is not enabled on this worker")
            path, control_map = self._controlnets.job_inputs(model.name, spec)
            control = Plan("control", control_map, control_file=path)
        if control is not None and spec.return_control_map:
            assert control.image is not None  # the AI Horde's worker returns the annotator's map, not a generation
            return self._checked([control.image.copy() for _ in range(spec.n)], spec, [])
        positive, negative = _job_prompts(spec)
        adapted = model.adapters.prepare(spec, positive, negative)
        metadata = list(adapted.metadata)
        try:
            model.hypernetworks.apply(spec.hypernetworks, metadata)
            scheduler, note = model.schedulers.get(spec.sampler_name, spec.karras)
            if note is not None:
                metadata.append(note)
            seeds = [(spec.seed + index) % SEED_MODULUS for index in range(spec.n)]
            seed_scheduler_noise(scheduler, seeds)
            plan = control or plan_job(model, spec)
            metadata.extend(plan.metadata)
            guidance = spec.cfg_scale > 1 and not model.uses_cfg_free_unet
            convolutions = pipeline_convolutions(model.base) if spec.tiling else []
            with torch.inference_mode(), seamless_tiling(convolutions, spec.tiling):
                prompts = encode_prompts(model.base, adapted.positive, adapted.negative, spec.clip_skip, guidance)
                common = {
                    "guidance_scale": spec.cfg_scale,
                    "num_images_per_prompt": spec.n,
                    "generator": [torch.Generator(self._noise_device).manual_seed(seed) for seed in seeds],
                    **prompts.kwargs(),
                }
                outputs = run_plan(model, plan, spec, scheduler, common)
        finally:
            model.adapters.finish()
            model.hypernetworks.restore()
        if plan.keep is not None and plan.mask is not None:
            outputs = [imaging.composite(plan.keep, output, plan.mask) for output in outputs]
        return self._checked(outputs, spec, metadata)

    def _checked(self, outputs: list[Any], spec: GenerationSpec, metadata: list[Metadata]) -> GenerationResult:
        """The outputs as the job's images, through the safety checker when there is one."""
        generated = [GeneratedImage(output) for output in outputs]
        if self._safety is not None:
            censor = spec.use_nsfw_censor or not self._nsfw_worker
            apply_safety(generated, self._safety.check(outputs), censor, spec.width, spec.height)
        return GenerationResult(generated, metadata)


def _job_prompts(spec: GenerationSpec) -> tuple[str, str]:
    """Positive and negative text: ``###`` split, the spec's own negative added, ``{a|b}`` resolved by seed."""
    positive, negative = split_prompt(spec.prompt)
    negative = ", ".join(part for part in (negative, spec.negative_prompt.strip()) if part)
    return resolve_dynamic(positive, spec.seed), resolve_dynamic(negative, spec.seed)
