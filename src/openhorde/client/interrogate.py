"""``openhorde interrogate IMAGE``: ask alchemists about an image (caption, ranked terms, NSFW verdict) or for a
post-processed copy of it, follow the forms with a progress bar and print what they found.

Text results go to stdout, one form per line (``--json`` for the whole status); post-processed images are written
to ``--out`` as ``<interrogation-id>-<form>.webp``. Ctrl-C cancels the interrogation on the server.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from openhorde.client.exit_codes import ExitCode
from openhorde.client.payload import FACE_FIXERS, STRIP_BACKGROUND, UPSCALERS, InputFileError, encode_image
from openhorde.client.sdk import (
    ANONYMOUS_API_KEY,
    DEFAULT_URL,
    ClientError,
    HordeClient,
    RequestFaulted,
    RequestTimedOut,
)
from openhorde.client.terminal import (
    DEFAULT_POLL_SECONDS,
    ApiKeyOption,
    JsonOption,
    PollIntervalOption,
    TimeoutOption,
    UrlOption,
    error,
    exit_codes,
    print_json,
    progress_bar,
    say,
)
from openhorde.client.wire import InterrogationForm, InterrogationStatus

TEXT_FORMS = ("caption", "interrogation", "nsfw")
IMAGE_FORMS = (*UPSCALERS, *FACE_FIXERS, STRIP_BACKGROUND)
DEFAULT_OUT_DIR = Path("openhorde-out")
"""How often the status is asked for (the AI Horde limits ``/interrogate/status`` to 10 calls a second)."""
TERMS_SHOWN = 3
"""Terms printed per category of an ``interrogation`` result (``--json`` has them all)."""


def interrogate(
    image: Annotated[str, typer.Argument(help="A picture file, or an http(s) URL of one.", show_default=False)],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = ANONYMOUS_API_KEY,
    form: Annotated[
        list[str] | None,
        typer.Option(
            "--form",
            help=f"What to ask (repeatable; default caption): {', '.join((*TEXT_FORMS, *IMAGE_FORMS))}.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path, typer.Option(file_okay=False, help="Folder for post-processed images.")] = DEFAULT_OUT_DIR,
    poll_interval: PollIntervalOption = DEFAULT_POLL_SECONDS,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Interrogate an image: print each form's result (post-processed images are written to --out)."""
    forms = _forms(form or ["caption"])
    body = {"forms": [{"name": name} for name in forms], "source_image": _source(image)}
    with exit_codes(), HordeClient(url, api_key) as client:
        interrogation_id = client.interrogate(body)
        say(f"Queued interrogation {interrogation_id} on {client.url} ({', '.join(forms)}).")
        try:
            status = _wait_with_bar(client, interrogation_id, len(forms), poll_interval, timeout)
        except KeyboardInterrupt:
            _cancel(client, interrogation_id)
            raise typer.Exit(code=ExitCode.INTERRUPTED) from None
        except RequestTimedOut as exc:
            status = client.cancel_interrogation(interrogation_id)
            _show(client, interrogation_id, status, out, as_json)
            raise RequestTimedOut(f"{exc.message}; cancelled it on the server") from exc
        _show(client, interrogation_id, status, out, as_json)
        if status.state != "done":
            failed = ", ".join(f.form for f in status.forms if f.state != "done")
            raise RequestFaulted(f"Interrogation {interrogation_id} ended {status.state}: no result for {failed}")


def _forms(names: list[str]) -> list[str]:
    known = (*TEXT_FORMS, *IMAGE_FORMS)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise typer.BadParameter(
            f"unknown form(s) {', '.join(unknown)}; known: {', '.join(known)}", param_hint="--form"
        )
    return list(dict.fromkeys(names))  # the horde drops a repeated form anyway


def _source(image: str) -> str:
    """A URL as it is (the server fetches it), a file as base64 WebP."""
    if image.startswith(("http://", "https://")):
        return image
    try:
        return encode_image(Path(image))
    except InputFileError as exc:
        raise typer.BadParameter(str(exc), param_hint="IMAGE") from exc


def _wait_with_bar(
    client: HordeClient, interrogation_id: str, total: int, poll_interval: float, timeout: float | None
) -> InterrogationStatus:
    with progress_bar() as bar:
        task = bar.add_task("waiting", total=total)

        def show(status: InterrogationStatus) -> None:
            ended = sum(f.state in ("done", "faulted", "cancelled") for f in status.forms)
            bar.update(task, completed=ended, description=status.state)

        return client.wait_interrogation(
            interrogation_id, poll_interval=poll_interval, timeout=timeout, on_progress=show
        )


def _cancel(client: HordeClient, interrogation_id: str) -> None:
    try:
        client.cancel_interrogation(interrogation_id)
    except ClientError as exc:
        error(f"Interrupted, but could not cancel interrogation {interrogation_id}: {exc}")
    else:
        say(f"Interrupted: cancelled interrogation {interrogation_id} on the server.")


def _show(client: HordeClient, interrogation_id: str, status: InterrogationStatus, out: Path, as_json: bool) -> None:
    """Print each form's result; images are saved first, so both outputs name their files."""
    files = {
        form.form: str(_save_image(client, interrogation_id, form, out))
        for form in status.forms
        if form.form in IMAGE_FORMS and form.result
    }
    if as_json:
        forms = [
            {
                "form": f.form,
                "state": f.state,
                "result": dict(f.result or {}),
                **({"file": files[f.form]} if f.form in files else {}),
            }
            for f in status.forms
        ]
        print_json({"id": interrogation_id, "state": status.state, "forms": forms})
        return
    for form in status.forms:
        if form.result is None:
            say(f"{form.form}: {form.state}")
        elif form.form in files:
            typer.echo(f"{form.form}: {files[form.form]}")
        else:
            typer.echo(f"{form.form}: {describe(form.form, form.result.get(form.form))}")


def describe(name: str, value: Any) -> str:
    """A text form's result on one line: the caption, yes/no for NSFW, the best terms of each category."""
    if name == "nsfw":
        return "yes" if value else "no"
    if name == "interrogation" and isinstance(value, Mapping):
        return "; ".join(f"{category}: {_terms(items)}" for category, items in value.items())
    return str(value)


def _terms(items: Any) -> str:
    if not isinstance(items, list):
        return str(items)
    shown = [item for item in items[:TERMS_SHOWN] if isinstance(item, Mapping)]
    return ", ".join(f"{item.get('text')} ({float(item.get('confidence', 0)):.1f})" for item in shown)


def _save_image(client: HordeClient, interrogation_id: str, form: InterrogationForm, out: Path) -> Path:
    """A post-processor's image: downloaded from its URL, or decoded when an alchemist sent it inline."""
    value = str((form.result or {}).get(form.form, ""))
    if value.startswith(("http://", "https://")):
        data = client.download(value)
    else:
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RequestFaulted(f"The {form.form} result is neither a URL nor an image: {value[:40]!r}") from exc
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{interrogation_id}-{form.form}.webp"
    path.write_bytes(data)
    return path
