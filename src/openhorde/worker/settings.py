"""The worker's one settings object: command-line flags, then ``OPENHORDE_WORKER_*`` variables, then a YAML file.

Precedence, highest first: flags (keyword arguments), environment, the YAML config file (``--config PATH``,
or ``worker.yaml`` in the working directory when it exists), the defaults below. ``load_settings`` turns any
mistake into a ``WorkerSettingsError`` whose message names the option and where its value came from.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from openhorde.model_reference import DEFAULT_REFERENCE_URL
from openhorde.worker.controlnet.names import DEFAULT_CONTROLNET_REFERENCE
from openhorde.worker.postprocess.names import POST_PROCESSOR_FILES

ENV_PREFIX = "OPENHORDE_WORKER_"
DEFAULT_CONFIG_FILE = Path("worker.yaml")
DEFAULT_HORDE_URL = "http://127.0.0.1:7001"
ANONYMOUS_API_KEY = "0000000000"
DEFAULT_MODELS = ("openhorde-tiny",)
DEFAULT_MODEL_STORE = Path("./models")
DEFAULT_CIVITAI_URL = "https://civitai.com/api/v1"
"""CivitAI's public API, where LoRAs and textual inversions that jobs name are looked up."""
DEFAULT_ADAPTER_CACHE_GB = 10.0
"""GiB the LoRAs and TIs fetched on demand may take; the least recently used are deleted beyond it."""
DEFAULT_MODEL_REFERENCE = DEFAULT_REFERENCE_URL
"""The public AI Horde image model reference; read only when ``models`` names something the catalogue lacks."""
DEFAULT_MAX_POWER = 8
"""8 × 8 × 64 × 64 = 512² pixels, the AI Horde worker's default."""
MAX_POWER_PIXELS = 8 * 64 * 64
"""Pixels per unit of ``max_power`` (the AI Horde's definition)."""
SERVER_MAX_PIXELS = 3072 * 3072 * 4
"""The largest ``max_pixels`` a horde accepts in a pop."""
DEFAULT_IDLE_POP_MIN_SECONDS = 0.5
DEFAULT_IDLE_POP_MAX_SECONDS = 2.0
"""When the horde has no job, the next pop waits a random time between these two (jitter spreads workers out)."""
DEFAULT_ERROR_BACKOFF_SECONDS = 5.0
"""Wait after a pop that failed (server down, refused) before popping again."""
DEFAULT_MAINTENANCE_POLL_SECONDS = 60.0
"""Wait between pops while the horde has this worker in maintenance mode."""
DEFAULT_FAULT_PAUSE_SECONDS = 180.0
"""Pops pause this long after three generations in a row failed (a broken worker should not eat the queue)."""

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
NameList = Annotated[list[str], NoDecode]


def default_worker_name() -> str:
    """A worker name from this machine's host name (names must be unique on a horde)."""
    return f"openhorde-{socket.gethostname() or 'worker'}"[:100]


def normalise_horde_url(value: str) -> str:
    """``http://host:port``, ``…/api`` and ``…/api/v2`` (with or without a trailing slash) all give the base URL."""
    url = value.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    for suffix in ("/api/v2", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
            break
    if url.count("/") < 2 or not url.split("/", 3)[2]:
        raise ValueError("has no host")
    return url


class WorkerSettingsError(ValueError):
    """The worker's configuration is invalid; the message names the option and its source."""


class WorkerSettings(BaseSettings):
    """Everything a worker's owner can configure (see ``worker.example.yaml`` for each option)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    config: Path | None = Field(default=None, description="The YAML file the other options were read from.")
    horde_url: str = DEFAULT_HORDE_URL
    api_key: str = Field(default=ANONYMOUS_API_KEY, min_length=1)
    name: str = Field(default_factory=default_worker_name, min_length=1, max_length=100)
    models: NameList = Field(default_factory=lambda: list(DEFAULT_MODELS), min_length=1)
    model_store: Path = DEFAULT_MODEL_STORE
    catalogue: Path | None = None
    model_reference: str = DEFAULT_MODEL_REFERENCE
    disk_budget_gb: float | None = Field(default=None, gt=0)
    civitai_url: str = DEFAULT_CIVITAI_URL
    civitai_token: str | None = None
    adapter_cache_gb: float = Field(default=DEFAULT_ADAPTER_CACHE_GB, gt=0)
    max_power: int = Field(default=DEFAULT_MAX_POWER, ge=1, le=SERVER_MAX_PIXELS // MAX_POWER_PIXELS)
    max_pixels: int | None = Field(default=None, ge=64 * 64, le=SERVER_MAX_PIXELS)
    allow_img2img: bool = True
    allow_painting: bool = True
    allow_lora: bool = False
    allow_hypernetworks: bool = False
    """Serve requests naming hypernetworks (an OpenHorde extension), from the catalogue's ``hypernetworks``."""
    allow_post_processing: bool = False
    allow_controlnet: bool = False
    """Serve ControlNet: its files and annotators are fetched at start-up (``controlnet_reference`` names them)."""
    controlnet_reference: str = DEFAULT_CONTROLNET_REFERENCE
    """The model reference's ``controlnet.json``: a URL or a local file."""
    alchemist: bool = False
    """Serve alchemy's forms (``/interrogate/pop``): alone, or beside image generation when ``models`` is set."""
    caption_model: Path | None = None
    """Folder of a transformers BLIP captioning model (the ``caption`` form); relative to ``model_store``."""
    interrogation_model: Path | None = None
    """Folder of a transformers CLIP model (the ``interrogation`` form); relative to ``model_store``."""
    post_processors: NameList = Field(default_factory=list)
    """Post-processors to load (AI Horde names), from ``<model_store>/<the model reference's file name>``; missing
    files are downloaded from the reference files beside ``model_reference`` (``esrgan.json``…)."""
    nsfw: bool = True
    blacklist: NameList = Field(default_factory=list)
    priority_usernames: NameList = Field(default_factory=list)
    threads: int = Field(default=1, ge=1, le=16)
    queue_size: int = Field(default=1, ge=0, le=4)
    max_batch: int = Field(default=1, ge=1, le=20)
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    safety_model: Path | None = None
    require_upfront_kudos: bool = False
    extra_slow_worker: bool = False
    limit_max_steps: bool = False
    log_format: Literal["text", "json"] = "text"
    log_file: Path | None = None
    idle_pop_min_seconds: float = Field(default=DEFAULT_IDLE_POP_MIN_SECONDS, ge=0)
    idle_pop_max_seconds: float = Field(default=DEFAULT_IDLE_POP_MAX_SECONDS, ge=0)
    error_backoff_seconds: float = Field(default=DEFAULT_ERROR_BACKOFF_SECONDS, ge=0)
    maintenance_poll_seconds: float = Field(default=DEFAULT_MAINTENANCE_POLL_SECONDS, ge=0)
    fault_pause_seconds: float = Field(default=DEFAULT_FAULT_PAUSE_SECONDS, ge=0)

    @field_validator("horde_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        return normalise_horde_url(value)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value.strip()):
            raise ValueError("must be auto, cpu, mps, cuda or cuda:N")
        return value.strip()

    @field_validator("models", "blacklist", "priority_usernames", "post_processors", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        # From the environment a list is JSON (``["a", "b"]``) or, more conveniently, ``a,b``.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("models")
    @classmethod
    def _unique_models(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(name.strip() for name in value if name.strip()))

    @field_validator("post_processors")
    @classmethod
    def _known_post_processors(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in POST_PROCESSOR_FILES]
        if unknown:
            raise ValueError(
                f"unknown post-processor(s) {', '.join(unknown)}; known: {', '.join(POST_PROCESSOR_FILES)}"
            )
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _idle_range(self) -> WorkerSettings:
        if self.idle_pop_max_seconds < self.idle_pop_min_seconds:
            raise ValueError("idle_pop_max_seconds must not be below idle_pop_min_seconds")
        return self

    @property
    def disk_budget_bytes(self) -> int | None:
        """``disk_budget_gb`` in bytes (GiB), or None for no budget beyond the disk's free space."""
        return None if self.disk_budget_gb is None else int(self.disk_budget_gb * (1 << 30))

    @property
    def alchemist_beside_images(self) -> bool:
        """Whether the alchemist runs beside image generation: ``alchemist`` on and ``models`` set by the owner.

        ``models`` has a default (the tiny model), so only a value the owner gave (flag, environment, file)
        counts: ``alchemist: true`` alone keeps meaning an alchemist that generates no images.
        """
        return self.alchemist and "models" in self.model_fields_set

    @property
    def api_url(self) -> str:
        """The API root every endpoint hangs off: ``<horde_url>/api/v2``."""
        return f"{self.horde_url}/api/v2"

    @property
    def resolved_max_pixels(self) -> int:
        """``max_pixels`` when set, else ``max_power`` × 8 × 64 × 64."""
        return self.max_pixels if self.max_pixels is not None else self.max_power * MAX_POWER_PIXELS

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init keywords) over the environment over the YAML file; no ``.env`` (that is the server's)."""
        return (init_settings, env_settings, YamlFileSource(settings_cls, init_settings, env_settings))


class YamlFileSource(PydanticBaseSettingsSource):
    """The YAML config file named by the ``config`` flag or ``OPENHORDE_WORKER_CONFIG``."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._init = init_settings
        self._env = env_settings

    def config_path(self) -> Path | None:
        """The file to read, if any: the ``config`` keyword wins over the environment variable."""
        init_kwargs = self._init.init_kwargs if isinstance(self._init, InitSettingsSource) else {}
        path = init_kwargs.get("config") or self._env().get("config")
        return Path(path) if path else None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: ``__call__`` returns the whole mapping at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """The file's options, or nothing when no file is configured."""
        path = self.config_path()
        return read_config_file(path) if path is not None else {}


def read_config_file(path: Path) -> dict[str, Any]:
    """The options in a YAML config file (``-`` in keys read as ``_``); an unreadable file is an error."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkerSettingsError(f"config file {path}: cannot read it ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise WorkerSettingsError(f"config file {path}: not valid YAML ({exc})") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise WorkerSettingsError(f"config file {path}: the top level must be a mapping of option: value")
    options = {str(key).replace("-", "_"): value for key, value in raw.items()}
    if "config" in options:
        raise WorkerSettingsError(f"config file {path}: 'config' cannot be set inside a config file")
    return options


def load_settings(config: Path | None = None, **flags: Any) -> WorkerSettings:
    """Build the settings from flags (``None`` values mean "not given"), environment and config file.

    Without ``config``, ``worker.yaml`` in the working directory is read when it exists.
    """
    given = {key: value for key, value in flags.items() if value is not None}
    if config is None and DEFAULT_CONFIG_FILE.is_file():
        config = DEFAULT_CONFIG_FILE
    if config is not None:
        if not config.is_file():
            raise WorkerSettingsError(f"config file {config}: no such file")
        given["config"] = config
    try:
        return WorkerSettings(**given)
    except ValidationError as exc:
        raise WorkerSettingsError(_explain(exc, given)) from exc
    except SettingsError as exc:  # a value in the environment that is not even parseable
        raise WorkerSettingsError(f"environment: {exc}") from exc


def _explain(error: ValidationError, flags: dict[str, Any]) -> str:
    """One line per invalid option: its name, where the value came from, and what is wrong."""
    env_values = EnvSettingsSource(WorkerSettings)()
    config = flags.get("config")
    file_values = read_config_file(Path(config)) if config else {}
    lines = []
    for problem in error.errors():
        if not problem["loc"]:  # a rule across options (a model validator)
            lines.append(problem["msg"].removeprefix("Value error, "))
            continue
        option = str(problem["loc"][0])
        if option in flags:
            source = f"command line --{option.replace('_', '-')}"
        elif option in env_values:
            source = f"environment variable {ENV_PREFIX}{option.upper()}"
        elif option in file_values:
            source = f"config file {config}"
        else:
            source = "default"
        reason = "unknown option" if problem["type"] == "extra_forbidden" else problem["msg"]
        shown = "" if problem["type"] == "extra_forbidden" else f" (got {problem.get('input')!r})"
        lines.append(f"option '{option}' from {source}: {reason}{shown}")
    return "invalid worker settings:\n  " + "\n  ".join(lines)
