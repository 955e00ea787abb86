"""``openhorde up``: a household's private horde in one command, the server and a local worker together.

It prepares the data directory (database, the local admin and its key, catalogue entries for the worker's
models), starts ``openhorde serve`` and ``openhorde worker`` as child processes logging to
``<data-dir>/logs/`` (``cli/processes.py``), waits until both are healthy and prints where the web UI is and
the admin's key. Ctrl-C stops the worker first (it finishes its current job), then the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
import yaml

from openhorde.cli.admin import read_reference
from openhorde.cli.processes import Child, Supervisor, UpError, console, log_entries, report
from openhorde.config import Settings
from openhorde.domain import accounts, catalogue, roles, workers
from openhorde.domain.context import HordeContext
from openhorde.domain.kudos import transfers
from openhorde.errors import HordeError
from openhorde.model_reference import ReferenceModel
from openhorde.storage.store import Store
from openhorde.worker.models.catalogue import TINY_MODEL_NAME, CatalogueError, UnknownModel, load_catalogue
from openhorde.worker.settings import WorkerSettingsError, load_settings, read_config_file

ADMIN_USERNAME = "admin"
ADMIN_KEY_FILE = "local-admin.key"
WORKER_CONFIG_FILE = "local-worker.yaml"
LOCK_FILE = "up.lock"
LOGS_DIR = "logs"
ADMIN_STARTING_KUDOS = 1000.0
"""Granted once, when the local admin is created: requests over 1024² pixels or 50 steps need their kudos
upfront, and a household should not be refused those before its own worker has earned any."""
SERVER_START_TIMEOUT = 60.0
"""Seconds the server may take to answer its heartbeat."""
ONLINE_TIMEOUT = 60.0
"""Seconds the worker's first check-in may take once its models are loaded. Loading itself has no limit: a
first start may download checkpoints of several GB, and the spinner shows what the worker is doing."""
WORKER_STOP_TIMEOUT = 60.0
"""Seconds the worker may take to finish its current job before it is killed."""
SERVER_STOP_TIMEOUT = 15.0
"""Seconds the server may take to stop gracefully before it is killed."""
TINY_MAX_POWER = 1
"""The built-in model's worker takes jobs up to 32,768 pixels (128×256): its attention makes CPU time grow
steeply with size (20 steps on a 2-core CPU: 64² about 1 s, 256² about 40 s, 512² about 9 minutes), and the web UI
picks a default size the online workers accept."""
SERVER_BASELINES = {"sd1": "stable diffusion 1", "sd2": "stable diffusion 2", "sdxl": "stable_diffusion_xl"}
"""The server catalogue's baseline names for the worker catalogue's ones."""

TINY_NOTE = (
    "Note: the worker serves the built-in model openhorde-tiny, whose weights are random: its images are "
    "noise-like test images. To serve a real checkpoint, list it in a worker catalogue and name it in "
    "worker.yaml (see worker.example.yaml and the README), or pass --worker-config FILE."
)


# -- what the local worker will serve --------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerPlan:
    """The local worker: its name, its models, their server catalogue entries, the user's config file."""

    name: str
    models: list[str]
    entries: list[catalogue.ModelEntry]
    config: Path | None
    reference: str | None = None  # a model reference (path or URL): fills the catalogue, and the worker reads it
    reference_models: dict[str, ReferenceModel] = field(default_factory=dict)

    @property
    def tiny_only(self) -> bool:
        """Whether it serves only the built-in random-weight model."""
        return self.models == [TINY_MODEL_NAME]


def default_worker_name() -> str:
    """``<hostname>-local``: the same on every ``up`` of this machine, so the worker keeps its identity."""
    return f"{socket.gethostname() or 'openhorde'}-local"[:100]


def plan_worker(config: Path | None, reference: str | None = None) -> WorkerPlan:
    """Read the worker's configuration (``config``, else ``./worker.yaml``, else the defaults), catalogue and
    model ``reference`` (``--model-reference``, whose names it may serve; its own catalogue wins for a name)."""
    try:
        settings = load_settings(config)
        local = load_catalogue(settings.catalogue)
        reference_models = read_reference(reference) if reference is not None else {}
        entries = [
            local.model(name) for name in settings.models if name in local.models or name not in reference_models
        ]
    except (WorkerSettingsError, CatalogueError, UnknownModel) as exc:
        hint = " (--model-reference FILE|URL serves AI Horde model reference names)" if not reference else ""
        raise UpError(f"worker configuration: {exc}{hint if isinstance(exc, UnknownModel) else ''}") from exc
    name = settings.name if "name" in settings.model_fields_set else default_worker_name()
    server_entries = [
        catalogue.ModelEntry(
            name=entry.name,
            baseline=SERVER_BASELINES[entry.baseline],
            inpainting=entry.inpainting,
            nsfw=entry.nsfw,
            description=entry.description,
        )
        for entry in entries
    ]
    return WorkerPlan(name, list(settings.models), server_entries, settings.config, reference, reference_models)


# -- the data directory: local admin, catalogue --------------------------------------------------------------


@dataclass(frozen=True)
class LocalAdmin:
    """The local admin's account and API key; ``note`` says what ``up`` had to create or repair."""

    user_id: int
    api_key: str
    note: str | None = None


async def prepare(settings: Settings, plan: WorkerPlan) -> tuple[LocalAdmin, list[str]]:
    """Migrate the database, find or make the local admin, catalogue the worker's models (names added)."""
    from openhorde.api.app import prepare_storage

    key_file = settings.data_dir / ADMIN_KEY_FILE
    saved = key_file.read_text(encoding="utf-8").strip() if key_file.is_file() else None
    db, ctx = await prepare_storage(settings)
    try:
        async with db.store() as store:
            admin = await ensure_local_admin(store, ctx, saved, plan.name, key_file)
            if plan.reference_models:
                await catalogue.import_models(store, plan.reference_models)
            added = await catalogue_models(store, ctx, plan.entries)
    finally:
        await db.dispose()
    if admin.api_key != saved:  # written only once the database has the key's hash
        write_private(key_file, admin.api_key + "\n")
    return admin, added


async def ensure_local_admin(
    store: Store, ctx: HordeContext, saved_key: str | None, worker_name: str, key_file: Path
) -> LocalAdmin:
    """The user the saved key belongs to; else the local worker's admin owner with a new key; else a new admin."""
    problem = None
    if saved_key:
        try:
            user = await accounts.authenticate(store, ctx.secret, ctx.keys, saved_key)
        except HordeError:
            user = None
        if user is not None and not accounts.is_anonymous(user):
            return LocalAdmin(user.id, saved_key)
        problem = f"the key in {key_file} matches no user (the server secret or the key was changed)"
    # The owner of the local worker is the local admin of an earlier `up`: giving it a new key keeps its
    # kudos and its worker, where a new account could not even use the worker's name.
    worker = await workers.get_worker_by_name(store, worker_name)
    owner = await accounts.get_user(store, worker.user_id) if worker is not None else None
    if owner is not None and owner.is_admin and not owner.is_deleted:
        api_key = await accounts.reset_api_key(store, ctx.secret, owner)
        reason = problem or f"{key_file} was missing"
        return LocalAdmin(owner.id, api_key, f"{reason}; gave {owner.display_name} a new API key.")
    created = await accounts.create_user(store, ctx.secret, ADMIN_USERNAME)
    await roles.set_role(store, created.user.id, "admin", True)
    await transfers.grant(store, created.user, ADMIN_STARTING_KUDOS, memo="the local admin's starting kudos")
    what = f"created the local admin {created.user.display_name} ({ADMIN_STARTING_KUDOS:.0f} kudos to start)."
    return LocalAdmin(created.user.id, created.api_key, f"{problem}; {what}" if problem else what.capitalize())


async def catalogue_models(store: Store, ctx: HordeContext, entries: list[catalogue.ModelEntry]) -> list[str]:
    """Add the worker's models the server's catalogue lacks; entries an admin already has are kept as they are.

    Catalogue entries rather than ``OPENHORDE_ALLOW_CUSTOM_MODELS``: they let the server accept exactly these
    names (for the worker's check-in and for requests), list them with the right baseline in
    ``/status/models``, and keep refusing typos and other workers' unknown models.
    """
    known = await catalogue.known_names(store, [entry.name for entry in entries], ctx.catalogue)
    added = [entry for entry in entries if entry.name not in known]
    for entry in added:
        await catalogue.add_model(store, entry)
    return [entry.name for entry in added]


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (mode 0600), replacing it atomically."""
    partial = path.with_name(path.name + ".partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as f:
        f.write(text)
    partial.replace(path)


def write_worker_config(plan: WorkerPlan, path: Path, url: str, api_key: str) -> Path:
    """The user's worker options plus the admin's key, in a private file: a key on the command line would be
    visible to every local user in ``ps``."""
    options = read_config_file(plan.config) if plan.config is not None else {}
    if plan.tiny_only:
        options.setdefault("max_power", TINY_MAX_POWER)
    if plan.reference is not None:
        options["model_reference"] = plan.reference
    write_private(path, yaml.safe_dump({**options, "api_key": api_key}, sort_keys=False))
    if load_settings(path, horde_url=url, name=plan.name).api_key != api_key:
        raise UpError("OPENHORDE_WORKER_API_KEY is set and would replace the local admin's key; unset it for `up`.")
    return path


# -- before starting: the port and the data directory ---------------------------------------------------------


def check_port_free(host: str, port: int) -> None:
    """``UpError`` unless the server could listen on ``host:port``."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UpError(f"cannot listen on {host}: {exc.strerror}") from exc
    with socket.socket(family, kind, proto) as probe:
        # uvicorn sets SO_REUSEADDR as well; without it a port whose last connections linger in TIME_WAIT
        # would look taken, while a port some process listens on is refused either way.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UpError(
                    f"port {port} on {host} is already in use (another horde?); choose another with --port."
                ) from exc
            raise UpError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


@contextlib.contextmanager
def lock_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold the data directory for this ``up`` (released by the kernel however the process ends)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":  # no flock there; the port check still keeps two `up`s apart on one port
        yield
        return
    import fcntl

    with (data_dir / LOCK_FILE).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UpError(f"another `openhorde up` is already running on {data_dir}.") from exc
        yield


# -- the command -------------------------------------------------------------------------------------------------


def local_url(settings: Settings) -> str:
    """Where this machine reaches the server (a wildcard listen address is reached on the loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def run(settings: Settings, plan: WorkerPlan, admin: LocalAdmin, started: float) -> int:
    """Start the server and the worker, wait until both are healthy, then until Ctrl-C; returns the exit code."""
    logs = settings.data_dir / LOGS_DIR
    console.print(f"Logs: {logs / 'server.log'} and {logs / 'worker.log'}", markup=False)
    with Supervisor() as horde:
        try:
            if start_server(horde, settings, started) and start_worker(horde, settings, plan, admin, started):
                print_banner(settings, plan, admin, time.monotonic() - started)
                horde.watch()
        except UpError as exc:
            report(exc)
            return 1
    return 0


def start_server(horde: Supervisor, settings: Settings, started: float) -> bool:
    """Start ``openhorde serve`` and wait for its heartbeat; False when asked to stop meanwhile."""
    url = local_url(settings)
    args = ["serve", "--host", settings.host, "--port", str(settings.port), "--data-dir", str(settings.data_dir)]
    horde.start("server", args, settings.data_dir / LOGS_DIR / "server.log", SERVER_STOP_TIMEOUT)
    heartbeat = f"{url}/api/v2/status/heartbeat"
    is_up = horde.wait_until(
        lambda: get_json(heartbeat) is not None, lambda: "Starting the server", SERVER_START_TIMEOUT
    )
    if not is_up:
        return False
    console.print(f"[green]✓[/green] server answering at {url} ({time.monotonic() - started:.1f} s)")
    return True


def start_worker(horde: Supervisor, settings: Settings, plan: WorkerPlan, admin: LocalAdmin, started: float) -> bool:
    """Start ``openhorde worker`` and wait until it is online with its models; False when asked to stop."""
    url = local_url(settings)
    config = write_worker_config(plan, settings.data_dir / WORKER_CONFIG_FILE, url, admin.api_key)
    args = ["worker", "--config", str(config), "--url", url, "--name", plan.name, "--log-format", "json"]
    hint = " (it finishes its current job; Ctrl-C again to quit at once)"
    worker = horde.start("worker", args, settings.data_dir / LOGS_DIR / "worker.log", WORKER_STOP_TIMEOUT, hint)
    if not horde.wait_until(lambda: worker_started(worker), lambda: worker_activity(worker)):
        return False
    console.print(f"[green]✓[/green] worker loaded {', '.join(plan.models)} ({time.monotonic() - started:.1f} s)")
    details = f"{url}/api/v2/workers/name/{quote(plan.name, safe='')}"
    return horde.wait_until(
        lambda: worker_online(get_json(details), plan), lambda: "Waiting for the worker to check in", ONLINE_TIMEOUT
    )


def get_json(url: str) -> Any | None:
    """The JSON of a 200 answer, or None when the server does not (yet) give one."""
    try:
        answer = httpx.get(url, timeout=2.0)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def worker_started(worker: Child) -> bool:
    """Whether the worker has loaded its models and begun to pop."""
    return any(entry["event"] == "started" for entry in log_entries(worker.log_path))


def worker_activity(worker: Child) -> str:
    """What the starting worker is doing, from its latest log entry."""
    entries = log_entries(worker.log_path)
    latest = str(entries[-1].get("message", "")) if entries else "importing torch and diffusers"
    return f"Starting the worker: {latest}"


def worker_online(details: Any, plan: WorkerPlan) -> bool:
    """Whether the server lists the worker online with all of its models."""
    return isinstance(details, dict) and bool(details.get("online")) and set(plan.models) <= set(details["models"])


def print_banner(settings: Settings, plan: WorkerPlan, admin: LocalAdmin, seconds: float) -> None:
    base = settings.resolved_public_url if settings.public_url else local_url(settings)
    console.print(f"\n[bold green]OpenHorde is up[/bold green] (in {seconds:.1f} s)")
    rows = {
        "web UI": f"{base}/",
        "API docs": f"{base}/api/docs",
        "admin API key": f"{admin.api_key}  (saved in {settings.data_dir / ADMIN_KEY_FILE})",
        "worker": f"{plan.name} serving {', '.join(plan.models)}",
    }
    for label, value in rows.items():
        console.print(f"  {label + ':':<15}{value}", markup=False, soft_wrap=True)
    if plan.tiny_only:
        console.print(TINY_NOTE, markup=False)
    console.print("Press Ctrl-C to stop (the worker finishes its current job first).")


HostOption = Annotated[str | None, typer.Option(help="Address to listen on (env OPENHORDE_HOST; default 127.0.0.1).")]
PortOption = Annotated[int | None, typer.Option(help="Port (env OPENHORDE_PORT; default 7001).")]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        help="Data directory: database, images, admin key, logs (env OPENHORDE_DATA_DIR; default ./horde-data)."
    ),
]
ModelReferenceOption = Annotated[str | None, typer.Option(help="AI Horde model reference (path or URL) to serve.")]
WorkerConfigOption = Annotated[
    Path | None,
    typer.Option(help="The local worker's YAML config (models, device…) (default: ./worker.yaml if it exists)."),
]


def up(
    host: HostOption = None,
    port: PortOption = None,
    data_dir: DataDirOption = None,
    worker_config: WorkerConfigOption = None,
    model_reference: ModelReferenceOption = None,
) -> None:
    """Run a private horde: the server and a local worker, until Ctrl-C. Prints the web UI's address."""
    started = time.monotonic()
    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": data_dir}
    settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    try:
        if worker_config is not None and not worker_config.is_file():
            raise UpError(f"--worker-config {worker_config}: no such file.")
        plan = plan_worker(worker_config, model_reference)
        check_port_free(settings.host, settings.port)
        with lock_data_dir(settings.data_dir):
            admin, added = asyncio.run(prepare(settings, plan))
            if admin.note:
                console.print(admin.note, markup=False)
            if added:
                console.print(f"Added to the model catalogue: {', '.join(added)}", markup=False)
            code = run(settings, plan, admin, started)
    except UpError as exc:
        report(exc)
        raise typer.Exit(code=1) from exc
    raise typer.Exit(code=code)
