"""The import contract and the habits STYLE.md asks us to check: layers, thin routes, one place for each job."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "openhorde"
MAX_UNMARKED_LINES = 400


def _modules(under: str = "") -> list[Path]:
    return sorted((SRC / under).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def _module_name(path: Path) -> str:
    parts = ["openhorde", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports are resolved)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _upward_imports(layer: str, forbidden: list[str]) -> list[str]:
    prefixes = tuple(f"openhorde.{name}" for name in forbidden)
    return [
        f"{_rel(path)} imports {name}"
        for path in _modules(layer)
        for name in sorted(_imports(path))
        if name in prefixes or name.startswith(tuple(f"{p}." for p in prefixes))
    ]


def _grep(pattern: str, paths: list[Path]) -> list[str]:
    regex = re.compile(pattern)
    return [
        f"{_rel(path)}:{number}: {line.strip()}"
        for path in paths
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if regex.search(line)
    ]


def test_the_source_tree_is_found() -> None:
    assert (SRC / "__init__.py").is_file()
    assert _modules("storage") and _modules("domain") and _modules("api")


def test_storage_imports_no_layer_above_it() -> None:
    assert not _upward_imports("storage", ["api", "domain", "cli", "worker", "web"])


def test_domain_imports_neither_api_nor_cli() -> None:
    assert not _upward_imports("domain", ["api", "cli"])


def test_the_domain_speaks_to_the_database_only_through_repositories() -> None:
    """No SQLAlchemy, no tables and no session in ``domain/``: every statement lives in a repository."""
    assert not _upward_imports("domain", ["storage.tables"])
    imports_sqlalchemy = [
        f"{_rel(path)} imports {name}"
        for path in _modules("domain")
        for name in sorted(_imports(path))
        if name == "sqlalchemy" or name.startswith("sqlalchemy.")
    ]
    assert not imports_sqlalchemy
    assert not _grep(r"AsyncSession|\bsession\.(execute|scalar|scalars|get|add|flush)\(", _modules("domain"))


def test_routes_import_nothing_from_storage() -> None:
    """A route speaks to the domain (and its deps); storage is the domain's business."""
    assert not _upward_imports("api/routes", ["storage"])


def test_the_worker_talks_to_a_horde_only_over_http() -> None:
    assert _modules("worker")
    assert not _upward_imports("worker", ["api", "domain", "storage", "cli", "config"])


def test_the_import_walker_sees_imports() -> None:
    """Guard against a contract test that passes because it sees nothing."""
    assert "openhorde.domain.accounts" in _imports(SRC / "api" / "deps.py")
    assert "openhorde.storage.db" in _imports(SRC / "api" / "deps.py")
    assert _upward_imports("api", ["domain"])


def test_http_exception_lives_only_in_api_errors() -> None:
    allowed = {"api/errors.py"}
    offenders = [hit for hit in _grep(r"HTTPException", _modules()) if hit.split(":", 1)[0] not in allowed]
    assert not offenders


def test_domain_code_never_commits() -> None:
    assert not _grep(r"\.commit\(", _modules("domain"))


def test_routes_hold_no_sql() -> None:
    # SQLAlchemy's select()/insert()/update() are free functions; ``dict.update(...)`` is not SQL.
    assert not _grep(r"(?<![.\w])(select|insert|update)\(|\.execute\(|\.commit\(", _modules("api"))


def test_depends_is_declared_only_in_api_deps() -> None:
    offenders = [hit for hit in _grep(r"\bDepends\(", _modules()) if hit.split(":", 1)[0] != "api/deps.py"]
    assert not offenders


def test_os_environ_is_read_only_in_config() -> None:
    offenders = [hit for hit in _grep(r"os\.environ|\bgetenv\(", _modules()) if hit.split(":", 1)[0] != "config.py"]
    assert not offenders


def _starts_with_a_reason(path: Path) -> bool:
    """Does the module open with a comment or docstring line that says why it is long?"""
    first = next((line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()), "")
    return (
        first.startswith(("#", '"""', "'''"))
        and re.search(r"\b(long|lines|size|why|because)\b", first, re.I) is not None
    )


def test_long_modules_say_why() -> None:
    offenders = [
        f"{_rel(path)} ({lines} lines)"
        for path in _modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_UNMARKED_LINES
        and not _starts_with_a_reason(path)
    ]
    assert not offenders, f"modules over {MAX_UNMARKED_LINES} lines need a first-line comment saying why: {offenders}"


@pytest.mark.parametrize(
    ("first_line", "marked"),
    [
        ("# Long because the whole pop query must read in one place.", True),
        ('"""Queue SQL; over 400 lines because every query sits here."""', True),
        ('"""Workers: check-in on pop."""', False),
        ("from __future__ import annotations", False),
    ],
)
def test_the_size_marker_is_recognised(tmp_path: Path, first_line: str, marked: bool) -> None:
    module = tmp_path / "module.py"
    module.write_text(first_line + "\n" + "x = 1\n" * (MAX_UNMARKED_LINES + 1), encoding="utf-8")
    assert _starts_with_a_reason(module) is marked
