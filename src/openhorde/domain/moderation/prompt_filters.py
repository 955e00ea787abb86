"""Regex prompt filters (``/filters``), managed by moderators and applied to every new image request.

The AI Horde's scheme: ``filter_type`` 10-19 is group 1 (an "underage" context), 20-29 group 2 (a "lewd"
context). A prompt's positive part (before ``###``) scores +1 if any group-1 regex matches and +1 if any
group-2 regex matches. At suspicion 2 the request is either cleaned or refused:

- cleaned when the request keeps ``replacement_filter`` (the default) or the account is an education one,
  and the prompt has at most 7000 characters: every group-1 regex with a replacement rewrites its matches,
  and the negative prompt gains the reference's terms (``child, infant, ...``);
- refused with 400 ``CorruptPrompt`` otherwise, or when cleaning leaves nothing.

Matching ignores case. Regexes are compiled once per version of the filter list (the version lives in
the modes row, so every process recompiles within ``modes_cache_seconds`` of a change).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace

from openhorde.domain import audit
from openhorde.domain.context import HordeContext
from openhorde.domain.moderation import events
from openhorde.domain.moderation import modes as horde_modes
from openhorde.domain.moderation.cache import CompiledFilters
from openhorde.errors import CorruptPrompt, FilterNotFound, NotModerator, NoValidActions, ValidationFailed
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.repositories.moderation import PromptFilterEntry as PromptFilterEntry  # the domain's too
from openhorde.storage.store import Store

GROUP_1 = range(10, 20)
GROUP_2 = range(20, 30)
SUSPICION_LIMIT = 2
MAX_CLEANED_PROMPT_CHARS = 7000
FORCED_NEGATIVE = "child, infant, underage, immature, teenager, tween"
MAX_REGEX_CHARS = 5000

# The reference's rewrite for flagged accounts (its "NSFW model guard").
_FLAGGED_REWRITES = (
    (re.compile(r"\b(student|young|little|lil|small|tiny)\b", re.IGNORECASE), "adult"),
    (re.compile(r"\bgirls?\b", re.IGNORECASE), "adult woman"),
    (re.compile(r"\b(boys?|sons?)\b", re.IGNORECASE), "adult man"),
)


@dataclass
class FilterFields:
    """A filter's editable fields; ``None`` means "leave as is" when patching."""

    regex: str | None = None
    filter_type: int | None = None
    description: str | None = None
    replacement: str | None = None


def compile_regex(regex: str) -> re.Pattern[str]:
    """The compiled regex, or 400 when it is empty, too long or invalid."""
    if not regex or len(regex) > MAX_REGEX_CHARS:
        raise ValidationFailed(f"A filter regex has 1 to {MAX_REGEX_CHARS} characters.")
    try:
        return re.compile(regex, re.IGNORECASE)
    except re.error as exc:
        raise ValidationFailed(f"Invalid regex: {exc}.") from exc


def _alternation(regexes: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{r})" for r in regexes), re.IGNORECASE) if regexes else None


def compile_filters(version: int, filters: Iterable[PromptFilterEntry]) -> CompiledFilters:
    """One pattern per group and the group-1 replacements; a regex that no longer compiles is skipped."""
    valid = []
    for row in filters:
        try:
            re.compile(row.regex)
        except re.error:
            continue
        valid.append(row)
    return CompiledFilters(
        version=version,
        group1=_alternation([f.regex for f in valid if f.filter_type in GROUP_1]),
        group2=_alternation([f.regex for f in valid if f.filter_type in GROUP_2]),
        replacements=[(re.compile(f.regex, re.IGNORECASE), f.replacement) for f in valid if f.filter_type in GROUP_1],
    )


def suspicion(compiled: CompiledFilters, prompt: str) -> tuple[int, list[str]]:
    """The positive prompt's suspicion (0-2) and the words that matched."""
    positive = prompt.split("###", 1)[0]
    score, matches = 0, []
    for pattern in (compiled.group1, compiled.group2):
        found = [m.group(0) for m in pattern.finditer(positive)] if pattern is not None else []
        if found:
            score += 1
            matches.extend(found)
    return score, matches


def clean(compiled: CompiledFilters, prompt: str) -> str:
    """The prompt with group-1 matches replaced and the reference's negative terms added."""
    positive, sep, negative = prompt.partition("###")
    for pattern, replacement in compiled.replacements:
        positive = pattern.sub(replacement, positive)
    if not positive.strip():
        raise CorruptPrompt()
    negative = f"{negative}, {FORCED_NEGATIVE}" if sep and negative.strip() else FORCED_NEGATIVE
    return f"{positive}###{negative}"


def rewrite_for_flagged(prompt: str) -> str:
    """A flagged account's positive prompt with young-sounding words made adult (the reference's rewrite)."""
    positive, sep, negative = prompt.partition("###")
    for pattern, replacement in _FLAGGED_REWRITES:
        positive = pattern.sub(replacement, positive)
    if not positive.strip():
        raise CorruptPrompt()
    return f"{positive}{sep}{negative}"


async def compiled_filters(store: Store, ctx: HordeContext) -> CompiledFilters:
    """The filters compiled for the current version; read from the database only when the version moved."""
    version = (await horde_modes.current(store, ctx)).filters_version
    cached = ctx.moderation.filters
    if cached is not None and cached.version == version:
        return cached
    compiled = compile_filters(version, await store.moderation.all_filters())
    ctx.moderation.filters = compiled
    return compiled


@dataclass(frozen=True)
class Screening:
    """What the filters made of a new request's prompt.

    ``reason``: ``None`` when the prompt passed untouched, else the prompt event to record
    (``moderation/events.py``). ``refusal``: the error to answer with when the prompt was refused.
    """

    prompt: str
    reason: str | None = None
    refusal: CorruptPrompt | None = None


async def screen(store: Store, ctx: HordeContext, user: Account, prompt: str, replacement_filter: bool) -> Screening:
    """The prompt a new request is stored with (unchanged or cleaned), or the ``CorruptPrompt`` refusing it."""
    compiled = await compiled_filters(store, ctx)
    score, _ = suspicion(compiled, prompt)
    reason = None
    if score >= SUSPICION_LIMIT:
        if not ((replacement_filter or user.is_education) and len(prompt) <= MAX_CLEANED_PROMPT_CHARS):
            refusal = CorruptPrompt(
                "This prompt appears to violate this horde's content rules; it was refused. "
                "Send replacement_filter=true to have it cleaned instead."
            )
            return Screening(prompt, events.FILTER_REJECTION, refusal)
        try:
            prompt = clean(compiled, prompt)
        except CorruptPrompt as refusal:
            return Screening(prompt, events.FILTER_REJECTION, refusal)
        reason = events.FILTER_REPLACEMENT
    if user.is_flagged:
        try:
            rewritten = rewrite_for_flagged(prompt)
        except CorruptPrompt as refusal:
            return Screening(prompt, events.MODEL_REJECTION, refusal)
        if rewritten != prompt:
            reason = reason or events.MODEL_REPLACEMENT
        prompt = rewritten
    return Screening(prompt, reason)


def _require_moderator(actor: Account) -> None:
    if not horde_modes.is_moderator(actor):
        raise NotModerator("Only moderators can manage prompt filters.")


async def list_filters(
    store: Store, actor: Account, filter_type: int | None = None, contains: str | None = None
) -> list[PromptFilterEntry]:
    """Filters of one type or containing a word (moderators only)."""
    _require_moderator(actor)
    return await store.moderation.find_filters(filter_type, contains)


def _not_found(filter_id: str) -> FilterNotFound:
    return FilterNotFound(f"Filter with ID '{filter_id}' not found.")


async def get_filter(store: Store, actor: Account, filter_id: str) -> PromptFilterEntry:
    """One filter (moderators only)."""
    _require_moderator(actor)
    entry = await store.moderation.filter(filter_id)
    if entry is None:
        raise _not_found(filter_id)
    return entry


async def create_filter(
    store: Store, ctx: HordeContext, actor: Account, fields: FilterFields, now: float | None = None
) -> PromptFilterEntry:
    """Add a filter; its regex must compile."""
    _require_moderator(actor)
    moment = now or time.time()
    if fields.regex is None or fields.filter_type is None:
        raise ValidationFailed("A filter needs a regex and a filter_type.")
    compile_regex(fields.regex)
    entry = PromptFilterEntry(
        id=str(uuid.uuid4()),
        regex=fields.regex,
        filter_type=fields.filter_type,
        description=fields.description,
        replacement=fields.replacement or "",
        user_id=actor.id,
        updated_at=moment,
        username=actor.username,
    )
    await store.moderation.add_filter(entry)
    await _changed(store, ctx, actor, "filter.create", entry.id, fields, moment)
    return entry


async def update_filter(
    store: Store,
    ctx: HordeContext,
    actor: Account,
    filter_id: str,
    fields: FilterFields,
    now: float | None = None,
) -> PromptFilterEntry:
    """Change a filter's fields; a new regex must compile."""
    entry = await get_filter(store, actor, filter_id)
    moment = now or time.time()
    given = {k: v for k, v in vars(fields).items() if v is not None}
    if not given:
        raise NoValidActions("No filter modification selected.")
    if fields.regex is not None:
        compile_regex(fields.regex)
    await store.moderation.change_filter(filter_id, actor.id, moment, **given)
    await _changed(store, ctx, actor, "filter.modify", filter_id, fields, moment)
    return replace(entry, **given, user_id=actor.id, updated_at=moment, username=actor.username)


async def delete_filter(
    store: Store, ctx: HordeContext, actor: Account, filter_id: str, now: float | None = None
) -> None:
    """Remove a filter."""
    _require_moderator(actor)
    regex = await store.moderation.delete_filter(filter_id)
    if regex is None:
        raise _not_found(filter_id)
    await _changed(store, ctx, actor, "filter.delete", filter_id, FilterFields(regex=regex), now or time.time())


async def _changed(
    store: Store,
    ctx: HordeContext,
    actor: Account,
    action: str,
    filter_id: str,
    fields: FilterFields,
    now: float,
) -> None:
    details = {k: v for k, v in vars(fields).items() if v is not None}
    await audit.record(store, actor, action, "filter", filter_id, details, now=now)
    await store.moderation.bump_filters_version(now)
    ctx.moderation.forget_modes()


async def check_prompt(
    store: Store, ctx: HordeContext, actor: Account, prompt: str, filter_type: int | None = None
) -> tuple[int, list[str]]:
    """``POST /filters``: how suspicious a prompt is (2 or more would be cleaned or refused), and the matches."""
    _require_moderator(actor)
    if filter_type is None:
        compiled = await compiled_filters(store, ctx)
    else:
        compiled = compile_filters(-1, await store.moderation.find_filters(filter_type, None))
    return suspicion(compiled, prompt)


async def regex_per_type(store: Store, actor: Account, filter_type: int | None) -> list[tuple[int, str]]:
    """``GET /filters/regex``: each type's filters joined into one alternation."""
    _require_moderator(actor)
    rows = await store.moderation.find_filters(filter_type, None)
    types = sorted({r.filter_type for r in rows})
    return [(t, "|".join(r.regex for r in rows if r.filter_type == t)) for t in types]
