"""Image styles and their example images: create, read, list, change and delete (``/styles/image``).

A style's params are stored as its creator gave them, after the wire schema filled in the defaults of the
fields it did not give; ``width`` and ``height`` are stored only when given, because a request made with a
style that sets no size keeps its own (``apply.py``). Their LoRA and embedding counts are checked where they
are used, with the rest of a request (``queue/requests.py``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from openhorde.domain import catalogue, sharedkeys
from openhorde.domain.accounts import Account
from openhorde.domain.context import HordeContext
from openhorde.domain.styles.common import (
    IMAGE,
    INFO_MAX_LENGTH,
    PAGE_SIZE,
    Example,
    Style,
    StyleView,
    check_may_change,
    check_may_create,
    check_sort,
    clean_style_name,
    page_offset,
    parse_reference,
)
from openhorde.errors import (
    BadRequest,
    ExampleURLAlreadyInUse,
    SharedKeyInvalid,
    SharedKeyNotFound,
    StyleExampleNotFound,
    StyleGetMistmatch,
    StyleNotFound,
    StylePromptMissingVars,
    TooManyStyleExamples,
    UnsupportedModel,
)
from openhorde.storage.store import Store

MAX_TAGS = 10
TAG_MAX_LENGTH = 100
"""Longer tags are cut to this length, as the AI Horde does."""
MIN_MODELS = 1
MAX_MODELS = 5
MAX_EXAMPLES = 4
PROMPT_VARIABLES = ("{p}", "{np}")


@dataclass
class StyleFields:
    """What a style's creation or change sets; ``None`` leaves a field as it is (or at its default, on creation)."""

    name: str | None = None
    info: str | None = None
    prompt: str | None = None
    params: dict[str, Any] | None = None
    public: bool | None = None
    nsfw: bool | None = None
    tags: list[str] | None = None
    models: list[str] | None = None
    sharedkey: str | None = None


def _check_prompt(prompt: str) -> None:
    for variable in PROMPT_VARIABLES:
        if variable not in prompt:
            raise StylePromptMissingVars(
                f"A style prompt must include '{variable}', where the user's "
                f"{'positive' if variable == '{p}' else 'negative'} prompt goes."
            )


def _clean_tags(tags: list[str]) -> list[str]:
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"A style can be tagged a maximum of {MAX_TAGS} times.")
    cleaned = (tag.strip()[:TAG_MAX_LENGTH] for tag in tags)
    return list(dict.fromkeys(tag for tag in cleaned if tag))


async def _clean_models(store: Store, ctx: HordeContext, models: list[str]) -> list[str]:
    unique = list(dict.fromkeys(model.strip() for model in models if model.strip()))
    if len(unique) > MAX_MODELS:
        raise BadRequest(f"A style can only use a maximum of {MAX_MODELS} models.")
    if len(unique) < MIN_MODELS:
        raise BadRequest("A style has to specify at least one model.")
    # The AI Horde accepts any name here; a style naming a model no request may ask for could never be used.
    if not ctx.settings.queue.allow_custom_models:
        unknown = sorted(set(unique) - await catalogue.known_names(store, unique, ctx.catalogue))
        if unknown:
            raise UnsupportedModel(f"Unknown model(s): {', '.join(unknown)}. See /api/v2/status/models.")
    return unique


async def _sharedkey_id(store: Store, ctx: HordeContext, user: Account, key: str) -> str:
    """The row id of the caller's own shared key ``key``; ``SharedKeyInvalid`` if there is none or it is spent.

    The AI Horde takes any existing key here; we take only the caller's own, so nobody can make another's
    key pay for their style.
    """
    try:
        found = (await sharedkeys.get(store, ctx.secret, key)).sharedkey
    except SharedKeyNotFound:
        found = None
    if found is None or found.user_id != user.id or not usable(found, time.time()):
        raise SharedKeyInvalid("This shared key does not exist, is spent or expired, or is not yours.")
    return found.id


def usable(key: sharedkeys.SharedKey, now: float) -> bool:
    """Whether a shared key may pay for something now: not expired, and with budget left (or unlimited)."""
    remaining = sharedkeys.remaining_cents(key)
    return (key.expires_at is None or now < key.expires_at) and (remaining is None or remaining > 0)


def _clean_info(info: str) -> str:
    if len(info) > INFO_MAX_LENGTH:
        raise BadRequest(f"A style's info has at most {INFO_MAX_LENGTH} characters.")
    return info.strip()


async def create_style(
    store: Store, ctx: HordeContext, user: Account, fields: StyleFields, now: float | None = None
) -> Style:
    """Create an image style owned by ``user`` (a customizer, trusted user or moderator)."""
    check_may_create(user, "styles")
    if fields.name is None or fields.prompt is None:
        raise BadRequest("A style needs a name and a prompt.")
    _check_prompt(fields.prompt)
    params = fields.params or {}
    moment = now or time.time()
    style = Style(
        id=str(uuid.uuid4()),
        style_type=IMAGE,
        user_id=user.id,
        name=clean_style_name(fields.name, "style name"),
        info=_clean_info(fields.info) if fields.info is not None else "",
        prompt=fields.prompt,
        params=params,
        public=True if fields.public is None else fields.public,
        nsfw=bool(fields.nsfw),
        sharedkey_id=await _sharedkey_id(store, ctx, user, fields.sharedkey) if fields.sharedkey else None,
        use_count=0,
        created_at=moment,
        updated_at=moment,
        models=tuple(await _clean_models(store, ctx, fields.models or [])),
        tags=tuple(_clean_tags(fields.tags or [])),
    )
    if not await store.styles.create(style):
        raise BadRequest(
            f"Style with name '{style.name}' already exists for user '{user.display_name}'. "
            "Please use PATCH to modify an existing style."
        )
    return style


def _of_type(style: Style | None, wanted: str, style_type: str) -> Style:
    if style is None:
        raise StyleNotFound(f"Style '{wanted}' not found.")
    if style.style_type != style_type:
        raise StyleGetMistmatch(f"Style was found but was of the wrong type: {style.style_type} != {style_type}")
    return style


async def get_style(store: Store, style_id: str, style_type: str = IMAGE) -> Style:
    """The style with this id; ``StyleNotFound``, or ``StyleGetMistmatch`` if it is of another type."""
    return _of_type(await store.styles.get(style_id), style_id, style_type)


async def find_style(store: Store, text: str) -> Style | None:
    """The style a name refers to: ``user#id::style::name`` exactly, else the oldest style so named."""
    reference = parse_reference(text)
    if reference.kind not in (None, "style"):
        return None
    return await store.styles.by_name(reference.name, reference.user_id)


async def style_by_name(store: Store, name: str, style_type: str = IMAGE) -> Style:
    """The style a name refers to (``find_style``); ``StyleNotFound`` or ``StyleGetMistmatch`` otherwise."""
    return _of_type(await find_style(store, name), name, style_type)


async def list_styles(
    store: Store, style_type: str, sort: str, page: int, tag: str | None, model: str | None
) -> list[Style]:
    """One page of 25 public styles, most used (``popular``) or newest (``age``) first, by tag or model."""
    check_sort(sort)
    return await store.styles.public_page(style_type, sort, page_offset(page), PAGE_SIZE, tag, model)


async def views(store: Store, secret: str, styles: list[Style], viewer: Account | None) -> list[StyleView]:
    """Styles with their creators' names and examples; the shared key only to the style's owner."""
    owners = await store.accounts.many(s.user_id for s in styles)
    examples = await store.styles.examples_of([s.id for s in styles])
    result = []
    for style in styles:
        owner = owners.get(style.user_id)
        key = None
        if style.sharedkey_id is not None and viewer is not None and viewer.id == style.user_id:
            key = sharedkeys.key_of(secret, style.sharedkey_id)
        creator = owner.display_name if owner is not None else ""
        result.append(StyleView(style, creator, examples.get(style.id, []), key))
    return result


async def update_style(
    store: Store, ctx: HordeContext, style: Style, user: Account, fields: StyleFields, now: float | None = None
) -> bool:
    """Change a style (its owner or a moderator); ``False`` if nothing was asked to change."""
    await check_may_change(store, style.user_id, user, "modify", "style", style.id)
    changes: dict[str, Any] = {}
    if fields.name:
        changes["name"] = clean_style_name(fields.name, "style name")
    if fields.info is not None:
        changes["info"] = _clean_info(fields.info)
    if fields.prompt is not None:
        _check_prompt(fields.prompt)
        changes["prompt"] = fields.prompt
    if fields.params is not None:
        changes["params"] = fields.params
    for flag in ("public", "nsfw"):
        if getattr(fields, flag) is not None:
            changes[flag] = getattr(fields, flag)
    if fields.sharedkey:
        owner = user if user.id == style.user_id else await store.accounts.get(style.user_id)
        changes["sharedkey_id"] = await _sharedkey_id(store, ctx, owner or user, fields.sharedkey)
    models = await _clean_models(store, ctx, fields.models) if fields.models else None
    tags = _clean_tags(fields.tags) if fields.tags else None
    if not changes and models is None and tags is None:
        return False
    changes["updated_at"] = now or time.time()
    if not await store.styles.change(style.id, changes):
        raise BadRequest(
            f"Style with name '{changes['name']}' already exists for this user. "
            "Please use a different name if you want to rename."
        )
    if models is not None:
        await store.styles.set_models(style.id, models)
    if tags is not None:
        await store.styles.set_tags(style.id, tags)
    return True


async def delete_style(store: Store, style: Style, user: Account) -> None:
    """Delete a style (its owner or a moderator); it leaves the collections it was in."""
    await check_may_change(store, style.user_id, user, "delete", "style", style.id)
    await store.styles.delete(style.id)


# Example images ---------------------------------------------------------------------------------------------


def _check_url(url: str) -> None:
    if not url.startswith("https://"):
        raise BadRequest("The url has to start with 'https://'")


async def add_example(
    store: Store, style: Style, user: Account, url: str, primary: bool, now: float | None = None
) -> Example:
    """Add an example image (an https URL) to a style: at most 4; the first one is primary whatever is asked."""
    _check_url(url)
    await check_may_change(store, style.user_id, user, "example", "style", style.id)
    existing = (await store.styles.examples_of([style.id])).get(style.id, [])
    if len(existing) >= MAX_EXAMPLES:
        raise TooManyStyleExamples(f"You cannot have more than {MAX_EXAMPLES} examples for each style.")
    if any(example.url == url for example in existing):
        raise ExampleURLAlreadyInUse(f"The url '{url}' is already used for this style.")
    primary = primary or not any(example.is_primary for example in existing)
    example = Example(str(uuid.uuid4()), style.id, url, primary, now or time.time())
    await store.styles.add_example(example)
    if primary:
        await store.styles.set_primary(style.id, example.id)
    return example


async def _example(store: Store, style: Style, example_id: str) -> tuple[Example, list[Example]]:
    examples = (await store.styles.examples_of([style.id])).get(style.id, [])
    for example in examples:
        if example.id == example_id:
            return example, examples
    raise StyleExampleNotFound(f"Style example '{example_id}' not found.")


async def change_example(
    store: Store, style: Style, user: Account, example_id: str, url: str | None, primary: bool | None
) -> Example:
    """Change an example's URL or make it primary; the style must keep one primary example."""
    if url is not None:
        _check_url(url)
    await check_may_change(store, style.user_id, user, "example", "style", style.id)
    example, examples = await _example(store, style, example_id)
    if url is not None and any(other.url == url and other.id != example.id for other in examples):
        raise ExampleURLAlreadyInUse(f"The url '{url}' is already used for this style.")
    if primary is False and example.is_primary:
        raise BadRequest("You cannot remove the last primary example of this style")
    changed = replace(example, url=url or example.url, is_primary=example.is_primary or bool(primary))
    await store.styles.change_example(example.id, changed.url, changed.is_primary)
    if changed.is_primary:
        await store.styles.set_primary(style.id, example.id)
    return changed


async def delete_example(store: Store, style: Style, user: Account, example_id: str) -> None:
    """Delete an example; if it was primary, the oldest remaining one becomes primary."""
    await check_may_change(store, style.user_id, user, "example", "style", style.id)
    example, examples = await _example(store, style, example_id)
    await store.styles.delete_example(example.id)
    if example.is_primary:
        rest = [other for other in examples if other.id != example.id]
        await store.styles.set_primary(style.id, rest[0].id if rest else None)
