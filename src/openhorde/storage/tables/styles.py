"""Styles and their collections: ``styles`` (a prompt template, params and models a request can borrow), their
models, tags and example images, and ``style_collections`` (ordered lists of styles, one picked at random).

A style's models and tags are rows of their own, not a JSON list, so that listing styles by model or tag is an
indexed lookup on both engines; ``position`` keeps the order they were given in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from openhorde.storage.tables.base import Base


class Style(Base):
    """A style: a prompt template with ``{p}`` and ``{np}``, generation params and 1 to 5 models."""

    __tablename__ = "styles"
    # A name is unique per creator (the AI Horde's rule); ``user#id::style::name`` names one style exactly.
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    style_type: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), index=True)
    info: Mapped[str | None] = mapped_column(String(1000), default=None)
    prompt: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    public: Mapped[bool] = mapped_column(Boolean)
    nsfw: Mapped[bool] = mapped_column(Boolean)
    sharedkey_id: Mapped[str | None] = mapped_column(
        ForeignKey("shared_keys.id", ondelete="SET NULL"), default=None, index=True
    )
    """The shared key that pays for requests made with this style, if any."""
    use_count: Mapped[int] = mapped_column(Integer, default=0, index=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    updated_at: Mapped[float] = mapped_column(Float)


class StyleModel(Base):
    """One of a style's models, at its place in the style's list."""

    __tablename__ = "style_models"

    style_id: Mapped[str] = mapped_column(ForeignKey("styles.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(255), index=True)


class StyleTag(Base):
    """One of a style's tags, at its place in the style's list."""

    __tablename__ = "style_tags"

    style_id: Mapped[str] = mapped_column(ForeignKey("styles.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), index=True)


class StyleExample(Base):
    """An example image of a style: an https URL, one of them primary."""

    __tablename__ = "style_examples"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    style_id: Mapped[str] = mapped_column(ForeignKey("styles.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    is_primary: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[float] = mapped_column(Float)


class StyleCollection(Base):
    """A named, ordered list of styles of one type."""

    __tablename__ = "style_collections"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    style_type: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), index=True)
    info: Mapped[str | None] = mapped_column(String(1000), default=None)
    public: Mapped[bool] = mapped_column(Boolean)
    use_count: Mapped[int] = mapped_column(Integer, default=0, index=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    updated_at: Mapped[float] = mapped_column(Float)


class StyleCollectionMember(Base):
    """A style in a collection, at its place in the collection's list."""

    __tablename__ = "style_collection_members"

    collection_id: Mapped[str] = mapped_column(ForeignKey("style_collections.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    style_id: Mapped[str] = mapped_column(ForeignKey("styles.id", ondelete="CASCADE"), index=True)
