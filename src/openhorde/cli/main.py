"""The ``openhorde`` command: the client commands (``generate``, ``models``, ``workers``, ``kudos``) and, imported
only when used, ``up``, ``serve`` (``cli/serve.py``), ``admin`` (``cli/admin.py``) and ``worker``
(``openhorde.worker.cli``, which imports torch only when a worker actually starts).

The server's commands pull in SQLAlchemy, the domain, uvicorn and pydantic-settings, about a second of imports
that a client command such as ``openhorde models`` has no use for. So the root group knows them by import path
and loads one only when it is invoked, or when the command list (``openhorde --help``, shell completion) needs
its help text.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, ClassVar

import typer
from typer.core import TyperGroup
from typer.main import get_group

from openhorde.client.cli import register_client_commands

if TYPE_CHECKING:  # typer vendors click: these are the types TyperGroup's methods are declared with
    from typer._click import Command, Context


class LazyGroup(TyperGroup):
    """A typer group that imports the commands named in ``lazy_commands`` only when they are looked up."""

    lazy_commands: ClassVar[dict[str, str]] = {}
    """Command name → ``"module:attribute"``, a command function or a ``typer.Typer`` of subcommands."""

    def list_commands(self, ctx: Context) -> list[str]:
        """The eagerly registered commands, then the lazy ones (loaded or not), without importing any of them."""
        eager = [name for name in super().list_commands(ctx) if name not in self.lazy_commands]
        return [*eager, *self.lazy_commands]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        """The command called ``cmd_name``, importing it on first use."""
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name, self.lazy_commands[cmd_name])
        elif cmd_name not in self.commands:
            # An unknown name ends in an error that suggests close names out of ``self.commands``, so every
            # command must be in it by then (a typo costs the imports; a correct name never does).
            for name in self.lazy_commands:
                self.get_command(ctx, name)
        return super().get_command(ctx, cmd_name)


def load_command(name: str, path: str) -> Command:
    """The click command for ``path`` (``"module:attribute"``), registered under ``name`` the way
    ``app.command()`` (a function) or ``app.add_typer`` (a ``typer.Typer``) would have registered it."""
    module_name, attribute = path.split(":")
    target = getattr(importlib.import_module(module_name), attribute)
    holder = typer.Typer()
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return get_group(holder).commands[name]


class OpenHordeGroup(LazyGroup):
    """The root ``openhorde`` group."""

    lazy_commands: ClassVar[dict[str, str]] = {
        "up": "openhorde.cli.up:up",
        "serve": "openhorde.cli.serve:serve",
        "admin": "openhorde.cli.admin:admin",
        "worker": "openhorde.worker.cli:worker_app",
    }


app = typer.Typer(
    cls=OpenHordeGroup,
    help="OpenHorde: an open horde for Stable Diffusion image generation.",
    no_args_is_help=True,
)
register_client_commands(app)
