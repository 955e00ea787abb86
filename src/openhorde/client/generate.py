"""``openhorde generate``: queue an image request, follow it with a progress bar, write the images it delivers
with a JSON sidecar each; Ctrl-C cancels the request on the server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from openhorde.client.exit_codes import ExitCode
from openhorde.client.payload import (
    CONTROL_TYPES,
    FACE_FIXERS,
    NEGATIVE_SEPARATOR,
    STRIP_BACKGROUND,
    UPSCALERS,
    ImageRequest,
    InputFileError,
    encode_image,
    parse_hypernetwork,
    parse_lora,
)
from openhorde.client.results import SavedImage, save_generations
from openhorde.client.sdk import (
    ANONYMOUS_API_KEY,
    DEFAULT_URL,
    ClientError,
    HordeClient,
    RequestCancelled,
    RequestFaulted,
    RequestTimedOut,
)
from openhorde.client.terminal import (
    DEFAULT_POLL_SECONDS,
    ApiKeyOption,
    PollIntervalOption,
    TimeoutOption,
    UrlOption,
    error,
    exit_codes,
    progress_bar,
    say,
)
from openhorde.client.wire import Progress, RequestStatus

MAX_LORAS = 5
MAX_HYPERNETWORKS = 5
DEFAULT_OUT_DIR = Path("openhorde-out")
"""How often ``generate`` asks for progress; the AI Horde caches ``/generate/check`` for 1 s anyway."""


def _multiple_of_64(value: int) -> int:
    if value % 64:
        raise typer.BadParameter(f"{value} is not a multiple of 64")
    return value


def _input_file(help_text: str) -> Any:
    return typer.Option(exists=True, dir_okay=False, readable=True, show_default=False, help=help_text)


def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw; 'positive###negative' works too.", show_default=False)],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = ANONYMOUS_API_KEY,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="A model to use (repeatable; default: any).", show_default=False)
    ] = None,
    negative: Annotated[str, typer.Option(help="What not to draw (sent after '###').")] = "",
    width: Annotated[int, typer.Option(min=64, max=3072, callback=_multiple_of_64, help="Multiple of 64.")] = 512,
    height: Annotated[int, typer.Option(min=64, max=3072, callback=_multiple_of_64, help="Multiple of 64.")] = 512,
    steps: Annotated[int, typer.Option(min=1, max=500)] = 30,
    sampler: Annotated[
        str, typer.Option(help="k_euler, k_euler_a, k_dpmpp_2m, k_dpmpp_sde, DDIM, lcm, …")
    ] = "k_euler_a",
    cfg: Annotated[float, typer.Option(min=0, max=100, help="cfg_scale.")] = 7.5,
    seed: Annotated[str | None, typer.Option(help="Any text; default: random.", show_default=False)] = None,
    count: Annotated[int, typer.Option("-n", "--count", min=1, max=20, help="Images to make.")] = 1,
    karras: Annotated[bool, typer.Option("--karras/--no-karras", help="Karras noise schedule.")] = False,
    lora: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME or NAME:STRENGTH (repeatable, up to 5).", metavar="NAME[:STRENGTH]", show_default=False
        ),
    ] = None,
    hypernetwork: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME or NAME:STRENGTH (repeatable, up to 5): an OpenHorde extension, served by workers that allow "
            "hypernetworks.",
            metavar="NAME[:STRENGTH]",
            show_default=False,
        ),
    ] = None,
    source_image: Annotated[Path | None, _input_file("Start from this picture (img2img).")] = None,
    mask: Annotated[Path | None, _input_file("Inpainting mask: white = repaint.")] = None,
    denoise: Annotated[
        float | None,
        typer.Option(min=0.01, max=1.0, help="How much of the source image to repaint.", show_default=False),
    ] = None,
    inpaint: Annotated[bool, typer.Option("--inpaint", help="Inpaint the source image.")] = False,
    outpaint: Annotated[bool, typer.Option("--outpaint", help="Outpaint the source image.")] = False,
    nsfw: Annotated[bool, typer.Option("--nsfw", help="Allow NSFW results.")] = False,
    censor_nsfw: Annotated[bool, typer.Option("--censor-nsfw", help="Ask workers to censor NSFW results.")] = False,
    upscale: Annotated[
        str | None,
        typer.Option(help=f"Upscale each image: {', '.join(UPSCALERS)}.", metavar="NAME", show_default=False),
    ] = None,
    facefix: Annotated[
        str | None,
        typer.Option(help=f"Fix faces: {', '.join(FACE_FIXERS)}.", metavar="NAME", show_default=False),
    ] = None,
    facefix_strength: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="How strongly --facefix changes faces (default 1).", show_default=False),
    ] = None,
    strip_background: Annotated[
        bool, typer.Option("--strip-background", help="Make the background transparent.")
    ] = False,
    control_type: Annotated[
        str | None,
        typer.Option(help=f"ControlNet: {', '.join(CONTROL_TYPES)}.", metavar="TYPE", show_default=False),
    ] = None,
    control_image: Annotated[
        Path | None, _input_file("ControlNet's image: a picture for --control-type's annotator, or its map.")
    ] = None,
    image_is_control: Annotated[
        bool, typer.Option("--image-is-control", help="--control-image already is the control map.")
    ] = False,
    return_control_map: Annotated[
        bool, typer.Option("--return-control-map", help="Get the control map instead of generated images.")
    ] = False,
    out: Annotated[
        Path, typer.Option(file_okay=False, help="Folder for the images and their .json.")
    ] = DEFAULT_OUT_DIR,
    poll_interval: PollIntervalOption = DEFAULT_POLL_SECONDS,
    timeout: TimeoutOption = None,
) -> None:
    """Generate images and write them to --out as <request-id>-<i>.webp plus a .json of their settings.

    Prints the image paths. Ctrl-C cancels the request on the server.
    """
    request = ImageRequest(
        prompt=prompt,
        negative=_negative(prompt, negative),
        models=tuple(model or ()),
        width=width,
        height=height,
        steps=steps,
        sampler=sampler,
        cfg_scale=cfg,
        seed=seed or None,
        count=count,
        karras=karras,
        loras=_choices(lora or [], parse_lora, MAX_LORAS, "LoRAs", "--lora"),
        hypernetworks=_choices(
            hypernetwork or [], parse_hypernetwork, MAX_HYPERNETWORKS, "hypernetworks", "--hypernetwork"
        ),
        denoising_strength=denoise,
        nsfw=nsfw,
        censor_nsfw=censor_nsfw,
        post_processing=_post_processing(upscale, facefix, strip_background),
        facefixer_strength=_facefix_strength(facefix, facefix_strength),
        **_source(source_image, mask, denoise, inpaint, outpaint),
        **_control(control_type, control_image, image_is_control, return_control_map, source_image),
    )
    with exit_codes(), HordeClient(url, api_key) as client:
        _run(client, request, out, poll_interval, timeout)


def _negative(prompt: str, negative: str) -> str:
    if negative and NEGATIVE_SEPARATOR in prompt:
        raise typer.BadParameter(
            f"the prompt already has a negative part after '{NEGATIVE_SEPARATOR}'; give it there or here, not both",
            param_hint="--negative",
        )
    return negative


def _post_processing(upscale: str | None, facefix: str | None, strip_background: bool) -> tuple[str, ...]:
    """The ``post_processing`` names; at most one upscaler and one face fixer, as the options allow."""
    if upscale is not None and upscale not in UPSCALERS:
        raise typer.BadParameter(f"'{upscale}' is not one of {', '.join(UPSCALERS)}", param_hint="--upscale")
    if facefix is not None and facefix not in FACE_FIXERS:
        raise typer.BadParameter(f"'{facefix}' is not one of {', '.join(FACE_FIXERS)}", param_hint="--facefix")
    names = [name for name in (facefix, upscale) if name is not None]
    return (*names, STRIP_BACKGROUND) if strip_background else tuple(names)


def _facefix_strength(facefix: str | None, strength: float | None) -> float | None:
    if strength is not None and facefix is None:
        raise typer.BadParameter("needs --facefix", param_hint="--facefix-strength")
    return strength


Choice = TypeVar("Choice")


def _choices(
    texts: list[str], parse: Callable[[str], Choice], limit: int, what: str, option: str
) -> tuple[Choice, ...]:
    """``--lora`` and ``--hypernetwork``: at most ``limit`` of them, each ``NAME`` or ``NAME:STRENGTH``."""
    if len(texts) > limit:
        raise typer.BadParameter(f"at most {limit} {what}", param_hint=option)
    try:
        return tuple(parse(text) for text in texts)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


def _source(
    source_image: Path | None, mask: Path | None, denoise: float | None, inpaint: bool, outpaint: bool
) -> dict[str, Any]:
    """The source-image fields of the request, after checking that the options fit together."""
    if source_image is None:
        for flag, given in (("--mask", mask), ("--denoise", denoise), ("--inpaint", inpaint), ("--outpaint", outpaint)):
            if given:
                raise typer.BadParameter("needs --source-image", param_hint=flag)
        return {}
    if inpaint and outpaint:
        raise typer.BadParameter("choose --inpaint or --outpaint, not both", param_hint="--inpaint / --outpaint")
    fields: dict[str, Any] = {
        "source_processing": "inpainting" if inpaint else "outpainting" if outpaint else "img2img",
        "source_image": _encoded(source_image, "--source-image"),
    }
    if mask is not None:
        fields["source_mask"] = _encoded(mask, "--mask", as_mask=True)
    return fields


def _control(
    control_type: str | None,
    control_image: Path | None,
    image_is_control: bool,
    return_control_map: bool,
    source_image: Path | None,
) -> dict[str, Any]:
    """The ControlNet fields; the control image travels as the request's source image, as the AI Horde wants."""
    if control_type is None:
        for flag, given in (
            ("--control-image", control_image),
            ("--image-is-control", image_is_control),
            ("--return-control-map", return_control_map),
        ):
            if given:
                raise typer.BadParameter("needs --control-type", param_hint=flag)
        return {}
    if control_type not in CONTROL_TYPES:
        raise typer.BadParameter(
            f"'{control_type}' is not one of {', '.join(CONTROL_TYPES)}", param_hint="--control-type"
        )
    if control_image is None:
        raise typer.BadParameter("needs --control-image", param_hint="--control-type")
    if source_image is not None:
        raise typer.BadParameter(
            "ControlNet starts from its control image, not a source image", param_hint="--source-image"
        )
    return {
        "control_type": control_type,
        "image_is_control": image_is_control,
        "return_control_map": return_control_map,
        "source_image": _encoded(control_image, "--control-image"),
        "source_processing": "img2img",
    }


def _encoded(path: Path, flag: str, *, as_mask: bool = False) -> str:
    try:
        return encode_image(path, as_mask=as_mask)
    except InputFileError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from exc


def _run(client: HordeClient, request: ImageRequest, out: Path, poll_interval: float, timeout: float | None) -> None:
    """Queue the request, wait for it with a progress bar, write what it delivered."""
    queued = client.submit(request.to_wire())
    problem: RequestFaulted | None = None
    try:
        say(f"Queued request {queued.id} on {client.url} ({queued.kudos:g} kudos).")
        for warning in queued.warnings or ((queued.message,) if queued.message else ()):
            say(f"Warning: {warning}")
        _wait_with_bar(client, queued.id, request.count, poll_interval, timeout)
        status = client.status(queued.id)
    except KeyboardInterrupt:
        _cancel_after_interrupt(client, queued.id, request.count)
    except RequestTimedOut as exc:
        # Nobody will collect the images: stop the horde from spending workers' time (and kudos) on them.
        status = client.cancel(queued.id)
        problem = RequestTimedOut(f"{exc.message}; cancelled it on the server")
    saved = save_generations(client, request, queued.id, status.generations, out)
    for image in saved:
        typer.echo(str(image.path))
    _report_censored(saved)
    problem = problem or _shortfall(queued.id, status, request.count)
    if problem is not None:
        raise problem


def _wait_with_bar(
    client: HordeClient, request_id: str, total: int, poll_interval: float, timeout: float | None
) -> Progress:
    with progress_bar() as bar:
        task = bar.add_task("queued", total=total)

        def show(progress: Progress) -> None:
            bar.update(task, completed=progress.finished, description=describe(progress))

        return client.wait(request_id, poll_interval=poll_interval, timeout=timeout, on_progress=show)


def describe(progress: Progress) -> str:
    """The progress bar's text: where the request stands and how long it should still take."""
    if progress.done:
        return "faulted" if progress.faulted else "done"
    if not progress.is_possible:
        return "waiting: no live worker can serve this request"
    if progress.processing:
        return f"generating ({progress.processing} in progress), eta {progress.wait_time}s"
    return f"queue position {progress.queue_position}, eta {progress.wait_time}s"


def _cancel_after_interrupt(client: HordeClient, request_id: str, total: int) -> NoReturn:
    try:
        status = client.cancel(request_id)
    except ClientError as exc:
        error(f"Interrupted, but could not cancel request {request_id}: {exc}")
    except KeyboardInterrupt:
        say(f"Interrupted again; request {request_id} may still be queued.")
    else:
        say(
            f"Interrupted: cancelled request {request_id} on the server "
            f"({status.finished} of {total} images had been delivered)."
        )
    raise typer.Exit(code=ExitCode.INTERRUPTED)


def _report_censored(saved: list[SavedImage]) -> None:
    censored = [image for image in saved if image.generation.censored]
    for image in censored:
        say(f"Note: {image.path.name} was censored by its worker (NSFW filter); it is a placeholder image.")


def _shortfall(request_id: str, status: RequestStatus, expected: int) -> RequestFaulted | None:
    """Why a finished request delivered fewer images than asked for, if it did."""
    delivered = f"{status.finished} of {expected} images delivered"
    if status.faulted:
        reason = status.fault_reason or f"{status.restarted} job(s) failed on the workers"
        return RequestFaulted(f"Request {request_id} faulted on the server: {reason} ({delivered})")
    if status.finished < expected:
        return RequestCancelled(f"Request {request_id} was cancelled on the server ({delivered})")
    return None
