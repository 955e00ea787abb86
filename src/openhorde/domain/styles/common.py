"""What styles and collections share: who may create and change them, names, views and references."""

from __future__ import annotations

from dataclasses import dataclass, field

from openhorde.domain import audit
from openhorde.domain.accounts import Account, is_anonymous, parse_display_name
from openhorde.domain.names import clean_name
from openhorde.errors import BadRequest, NotOwner, StylesAnonForbidden, StylesRequiresCustomizer
from openhorde.storage.repositories.styles import SORTS as SORTS
from openhorde.storage.repositories.styles import Example as Example
from openhorde.storage.repositories.styles import Member as Member
from openhorde.storage.repositories.styles import Style as Style
from openhorde.storage.repositories.styles import StyleCollection as StyleCollection
from openhorde.storage.store import Store

IMAGE = "image"
"""The one type of style this horde makes (the AI Horde also has ``text``)."""
PAGE_SIZE = 25
"""Styles or collections per page of a list (the AI Horde's)."""
MAX_PAGE = 10_000
"""Pages beyond this are refused, which keeps every offset well within the database's integers (ours)."""
NAME_MAX_LENGTH = 100
INFO_MAX_LENGTH = 1000
STYLE_KIND = "style"
COLLECTION_KIND = "collection"


@dataclass(frozen=True)
class Reference:
    """A style or collection reference: ``name``, or ``user#id::style::name`` / ``user#id::collection::name``."""

    name: str
    user_id: int | None = None
    kind: str | None = None
    """``style``, ``collection`` or ``None`` (either)."""


def parse_reference(text: str) -> Reference:
    """Read a reference; a ``user#id::kind::name`` form with an unknown user part names nobody (``user_id`` -1)."""
    parts = text.split("::")
    if len(parts) == 3 and parts[1] in (STYLE_KIND, COLLECTION_KIND):
        user_id = parse_display_name(parts[0])
        return Reference(parts[2], -1 if user_id is None else user_id, parts[1])
    return Reference(text)


def unique_name(owner: Account, kind: str, name: str) -> str:
    """The name that names a style or collection exactly: ``user#id::kind::name``."""
    return f"{owner.display_name}::{kind}::{name}"


def is_mod(user: Account) -> bool:
    """Whether ``user`` moderates (moderators and admins may change and delete anyone's styles)."""
    return user.is_moderator or user.is_admin


def check_may_create(user: Account, what: str) -> None:
    """Refuse the anonymous user and, for styles, users who are neither customizers, trusted nor moderators."""
    if is_anonymous(user):
        raise StylesAnonForbidden(f"Anonymous users cannot create {what}.")
    if what == "styles" and not (user.is_customizer or user.is_trusted or is_mod(user)):
        raise StylesRequiresCustomizer()


async def check_may_change(store: Store, owner_id: int, user: Account, action: str, kind: str, target: str) -> None:
    """Refuse anyone but the owner or a moderator; a moderator's change of another's is audited."""
    if is_anonymous(user):
        raise StylesAnonForbidden(f"Anonymous users cannot change {kind}s.")
    if owner_id != user.id:
        if not is_mod(user):
            raise NotOwner(f"This {kind} is not owned by user {user.display_name}.")
        await audit.record(store, user, f"{kind}.{action}", kind, target, {})


def clean_style_name(raw: str, what: str) -> str:
    """A trimmed name of 1 to 100 characters; ``::`` is kept out, as it separates the parts of a reference."""
    name = clean_name(raw, what=what, minimum=1, maximum=NAME_MAX_LENGTH, error=BadRequest)
    if "::" in name:
        raise BadRequest(f"A {what} cannot contain '::'.")
    return name


def check_sort(sort: str) -> None:
    """Refuse a sort other than ``popular`` or ``age``."""
    if sort not in SORTS:
        raise BadRequest("'sort' needs to be one of ['popular', 'age']")


def page_offset(page: int) -> int:
    """The offset of a 1-based page of ``PAGE_SIZE`` items."""
    if page < 1:
        raise BadRequest("'page' starts at 1.")
    return (page - 1) * PAGE_SIZE


@dataclass(frozen=True)
class StyleView:
    """A style as an answer shows it: with its creator's name, its examples and (to its owner) its shared key."""

    style: Style
    creator: str
    examples: list[Example] = field(default_factory=list)
    sharedkey: str | None = None


@dataclass(frozen=True)
class CollectionView:
    """A collection with its creator's name and its styles' ids and ``user#id::style::name`` names."""

    collection: StyleCollection
    creator: str
    styles: list[tuple[str, str]] = field(default_factory=list)
