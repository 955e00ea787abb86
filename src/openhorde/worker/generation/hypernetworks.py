"""AUTOMATIC1111 hypernetworks: small MLPs that reshape what each UNet attention layer reads its keys and values from.

A hypernetwork file (``.pt``) is a dict keyed by context width (768 for SD 1's cross-attention, 320/640/1280 for
its self-attention layers) holding two state dicts each, one MLP for the key's context and one for the value's,
plus the layout every MLP shares (``layer_structure``, ``activation_func``, ``is_layer_norm``, dropout). As in
A1111, a layer whose context has a width the file covers reads ``context + strength × mlp(context)`` for its key
and value, in place of ``context``; several hypernetworks apply one after the other.

The files are read with ``torch.load(weights_only=True)``: a file that needs arbitrary unpickling is refused rather
than run, since these come from catalogue URLs. The MLPs run through an attention processor that the manager puts
on the UNet for one job and takes off after it, so a cached pipeline is plain again for the next job.
"""

from __future__ import annotations

import inspect
import logging
import pickle
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from openhorde.worker.generation.spec import HypernetworkSpec, Metadata

logger = logging.getLogger(__name__)

DEFAULT_LAYER_STRUCTURE = (1.0, 2.0, 1.0)
"""A1111's default when a file states none: width → 2 × width → width."""
DEFAULT_MAX_HYPERNETWORKS = 8
"""Parsed hypernetworks kept per model (they are a few MB each); the least recently used is dropped beyond this."""
LEGACY_DROPOUT = 0.3
"""The dropout A1111 put between hidden layers of files that say only ``use_dropout`` (no structure)."""

_NAMED_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "elu": nn.ELU,
    "swish": nn.Hardswish,  # sic: A1111 maps "swish" to Hardswish, and files trained with it expect that
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
# A1111 also accepts any class of torch.nn.modules.activation by its lower-cased name.
_ACTIVATIONS: dict[str, type[nn.Module]] = {
    **{
        name.lower(): cast(type[nn.Module], cls)
        for name, cls in inspect.getmembers(nn.modules.activation, inspect.isclass)
        if cls.__module__ == "torch.nn.modules.activation"
    },
    **_NAMED_ACTIVATIONS,
}
# Files from before A1111 named its layers: two linears, no activation.
_OLD_KEYS = {
    "linear1.weight": "linear.0.weight",
    "linear1.bias": "linear.0.bias",
    "linear2.weight": "linear.1.weight",
    "linear2.bias": "linear.1.bias",
}


class HypernetworkError(ValueError):
    """A file is not a hypernetwork this module can read (the message says why)."""


class HypernetworkModule(nn.Module):
    """One MLP of a hypernetwork, laid out as A1111's so its ``linear.N.*`` state-dict keys load as they are."""

    def __init__(self, width: int, layout: Layout) -> None:
        super().__init__()
        parts: list[nn.Module] = []
        structure = layout.structure
        for index in range(len(structure) - 1):
            out_width = int(width * structure[index + 1])
            parts.append(nn.Linear(int(width * structure[index]), out_width))
            last = index >= len(structure) - 2
            if layout.activation not in (None, "linear") and not (last and not layout.activate_output):
                parts.append(_activation(layout.activation))
            if layout.layer_norm:
                parts.append(nn.LayerNorm(out_width))
            if layout.dropout[index + 1] > 0:
                # Inactive at inference; it is here because it shifts the index of every later layer's keys.
                parts.append(nn.Dropout(p=layout.dropout[index + 1]))
        self.linear = nn.Sequential(*parts)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """The change to add to ``context`` at strength 1."""
        return self.linear(context)


@dataclass(frozen=True)
class Layout:
    """What every MLP of one file shares."""

    structure: tuple[float, ...]
    activation: str | None
    layer_norm: bool
    activate_output: bool
    dropout: tuple[float, ...]


@dataclass(frozen=True)
class Hypernetwork:
    """A loaded hypernetwork: per context width, the MLP for the key's context and the one for the value's."""

    name: str
    layers: Mapping[int, tuple[HypernetworkModule, HypernetworkModule]]

    def to(self, device: torch.device) -> Hypernetwork:
        """The same hypernetwork with its MLPs on ``device`` (they stay float32: A1111 runs them in float too)."""
        for pair in self.layers.values():
            for module in pair:
                module.to(device)
        return self


def load_hypernetwork(path: Path) -> Hypernetwork:
    """Read an A1111 ``.pt`` hypernetwork; raises ``HypernetworkError`` for anything else."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        raise HypernetworkError(f"{path.name}: not a plain-weights hypernetwork file ({error})") from error
    if not isinstance(state, Mapping):
        raise HypernetworkError(f"{path.name}: holds a {type(state).__name__}, not a hypernetwork's dict")
    return parse_hypernetwork(state, path.stem)


def parse_hypernetwork(state: Mapping[Any, Any], default_name: str = "hypernetwork") -> Hypernetwork:
    """Build the MLPs of an A1111 hypernetwork dict (as ``torch.load`` gives it) and load their weights."""
    layout = _layout(state)
    layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]] = {}
    for width, pair in state.items():
        if not isinstance(width, int) or isinstance(width, bool):
            continue  # metadata: name, layer_structure, step, sd_checkpoint...
        if not isinstance(pair, Sequence) or len(pair) < 2:
            raise HypernetworkError(f"layer {width}: expected the key's and the value's state dicts")
        key_mlp, value_mlp = (_module(width, layout, weights, f"layer {width}") for weights in pair[:2])
        layers[width] = (key_mlp, value_mlp)
    if not layers:
        raise HypernetworkError("no layers (no integer context-width keys)")
    name = state.get("name")
    return Hypernetwork(name if isinstance(name, str) and name else default_name, layers)


def _layout(state: Mapping[Any, Any]) -> Layout:
    try:
        structure = tuple(float(value) for value in state.get("layer_structure") or DEFAULT_LAYER_STRUCTURE)
    except (TypeError, ValueError) as error:
        raise HypernetworkError(f"layer_structure is not a list of numbers: {error}") from error
    if len(structure) < 2 or structure[0] != 1 or structure[-1] != 1:
        raise HypernetworkError(f"layer_structure {list(structure)} must start and end with 1")
    activation = state.get("activation_func")
    if activation is not None and (not isinstance(activation, str) or activation.lower() not in _ACTIVATIONS):
        raise HypernetworkError(f"unknown activation_func {activation!r}")
    return Layout(
        structure=structure,
        activation=activation.lower() if isinstance(activation, str) else None,
        layer_norm=bool(state.get("is_layer_norm", False)),
        activate_output=bool(state.get("activate_output", True)),
        dropout=_dropout(state, len(structure)),
    )


def _dropout(state: Mapping[Any, Any], layers: int) -> tuple[float, ...]:
    """The dropout after each layer, as A1111 derives it for files that predate ``dropout_structure``."""
    given = state.get("dropout_structure")
    if given:
        if len(given) != layers:
            raise HypernetworkError(f"dropout_structure {list(given)} does not match the layer structure")
        return tuple(float(value) for value in given)
    if not state.get("use_dropout", False):
        return (0.0,) * layers
    last = LEGACY_DROPOUT if state.get("last_layer_dropout", False) else 0.0
    return (0.0, *([LEGACY_DROPOUT] * (layers - 3)), last, 0.0)[:layers]


def _activation(name: str) -> nn.Module:
    try:
        activation: nn.Module = _ACTIVATIONS[name]()
    except TypeError as error:  # a torch activation that needs arguments (A1111 could not build it either)
        raise HypernetworkError(f"activation_func {name!r} needs arguments") from error
    return activation


def _module(width: int, layout: Layout, weights: Any, where: str) -> HypernetworkModule:
    if not isinstance(weights, Mapping):
        raise HypernetworkError(f"{where}: expected a state dict, not {type(weights).__name__}")
    module = HypernetworkModule(width, layout)
    renamed = {_OLD_KEYS.get(str(key), str(key)): value for key, value in weights.items()}
    try:
        module.load_state_dict(renamed)
    except RuntimeError as error:  # missing/unexpected keys or sizes: another layout than the metadata says
        raise HypernetworkError(f"{where}: weights do not fit the stated layout: {error}") from error
    return module.eval().requires_grad_(False)


# Applying


class HypernetworkAttnProcessor:
    """diffusers' ``AttnProcessor2_0`` with the key and the value computed from their own reshaped contexts.

    A layer whose context width no active hypernetwork covers runs its original processor unchanged.
    """

    def __init__(self, original: Any, active: Sequence[tuple[Hypernetwork, float]]) -> None:
        self.original = original
        self.active = list(active)

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        """The attention layer's output (the steps and their order are ``AttnProcessor2_0``'s)."""
        width = (encoder_hidden_states if encoder_hidden_states is not None else hidden_states).shape[-1]
        pairs = [(hn.layers[width], strength) for hn, strength in self.active if width in hn.layers]
        if not pairs or hidden_states.ndim != 3:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        context_k, context_v = shape_contexts(encoder_hidden_states, pairs)
        key, value = attn.to_k(context_k), attn.to_v(context_v)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states.to(query.dtype)))
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def shape_contexts(
    context: torch.Tensor, pairs: Sequence[tuple[tuple[HypernetworkModule, HypernetworkModule], float]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The key's and the value's context: each hypernetwork in turn adds ``strength × mlp(context)`` (A1111)."""
    context_k = context_v = context.float()
    for (key_mlp, value_mlp), strength in pairs:
        context_k = context_k + key_mlp(context_k) * strength
        context_v = context_v + value_mlp(context_v) * strength
    return context_k.to(context.dtype), context_v.to(context.dtype)


def with_hypernetworks(processors: Mapping[str, Any], active: Sequence[tuple[Hypernetwork, float]]) -> dict[str, Any]:
    """The UNet's processors with each diffusers default one wrapped; custom processors (IP-adapters...) kept."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    return {
        name: HypernetworkAttnProcessor(processor, active)
        if type(processor) in (AttnProcessor, AttnProcessor2_0)
        else processor
        for name, processor in processors.items()
    }


HypernetworkResolver = Callable[[str], Path | str]
"""A hypernetwork's name → its file, or the ``gen_metadata`` value saying why there is none."""


class HypernetworkManager:
    """The hypernetworks of one loaded model: parsed once, put on the UNet for a job, taken off after it."""

    def __init__(self, pipe: Any, resolve: HypernetworkResolver, max_loaded: int = DEFAULT_MAX_HYPERNETWORKS) -> None:
        self._pipe = pipe
        self._resolve = resolve
        self._max_loaded = max_loaded
        self._loaded: OrderedDict[str, Hypernetwork] = OrderedDict()
        self._saved: dict[str, Any] | None = None

    def apply(self, specs: Sequence[HypernetworkSpec], metadata: list[Metadata]) -> None:
        """Wrap the UNet's attention processors with the job's hypernetworks (what cannot be had gets a note)."""
        active: list[tuple[Hypernetwork, float]] = []
        for spec in specs:
            hypernetwork = self._hypernetwork(spec.name, metadata)
            if hypernetwork is not None:
                active.append((hypernetwork, spec.strength))
        if not active:
            return
        unet = self._pipe.unet
        self._saved = dict(unet.attn_processors)
        unet.set_attn_processor(with_hypernetworks(self._saved, active))  # diffusers pops from the dict it gets

    def restore(self) -> None:
        """Put the UNet's own processors back, so the next job sees the plain model."""
        if self._saved is not None:
            self._pipe.unet.set_attn_processor(dict(self._saved))
            self._saved = None

    def _hypernetwork(self, name: str, metadata: list[Metadata]) -> Hypernetwork | None:
        loaded = self._loaded.get(name)
        if loaded is not None:
            self._loaded.move_to_end(name)
            return loaded
        found = self._resolve(name)
        if isinstance(found, str):
            metadata.append(Metadata("hypernetwork", found, name))
            return None
        try:
            hypernetwork = load_hypernetwork(found)
        except HypernetworkError as error:
            logger.warning("hypernetwork %s could not be loaded: %s", name, error)
            metadata.append(Metadata("hypernetwork", "parse_failed", name))
            return None
        # A file for another model family has no MLP for this UNet's text context (SD 1: 768, SD 2: 1024).
        if not _text_context_widths(self._pipe.unet) & set(hypernetwork.layers):
            logger.warning("hypernetwork %s has no layer for this model's text context", name)
            metadata.append(Metadata("hypernetwork", "baseline_mismatch", name))
            return None
        self._loaded[name] = hypernetwork.to(self._pipe.unet.device)
        while len(self._loaded) > self._max_loaded:
            self._loaded.popitem(last=False)
        return hypernetwork


def _text_context_widths(unet: Any) -> set[int]:
    """The widths of the text context the UNet's cross-attention reads (a list in some configs: one per block)."""
    widths = unet.config.cross_attention_dim
    return {int(width) for width in widths} if isinstance(widths, list | tuple) else {int(widths)}
