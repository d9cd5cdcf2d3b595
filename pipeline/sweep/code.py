"""The code a run depends on: the transitive closure of a module's `pipeline.*` imports, read statically.

A run's fingerprint hashes these source files and the data files of their packages (`resources/`: templates, the
authors' per-data-set values), so that changing a head's own module (or anything it imports) re-fits that head's
runs and no other head's; imports inside functions count too (the closure over-approximates),
and a name imported from a lazy package counts as the module its `_EXPORTS` table resolves it to.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import threading
from pathlib import Path

PACKAGE = "pipeline"
ROOT = Path(__file__).resolve().parents[1]  # the pipeline package's folder
LAZY_EXPORTS = "_EXPORTS"  # a package's {name: module} table of exports resolved on first access


def module_file(name: str) -> Path | None:
    """The source file of a `pipeline.*` module or package, found on disk without importing anything."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py") if len(parts) > 1 else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, name: str) -> set[str]:
    """`pipeline.*` modules that the source at `path` (module `name`) imports anywhere, parents included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import module`
            table = lazy_exports(base) if base.startswith(PACKAGE) else {}
            found |= {table[alias.name] for alias in node.names if alias.name in table}
    out = set()
    for module in found:
        parts = module.split(".")
        if parts[0] == PACKAGE:
            out |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    return out


@functools.cache
def lazy_exports(package: str) -> dict[str, str]:
    """A lazy package's `_EXPORTS` table {name: module}; empty for any other module."""
    path = module_file(package)
    if path is None or path.name != "__init__.py":
        return {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == LAZY_EXPORTS for t in node.targets):
            pairs = zip(getattr(node.value, "keys", []), getattr(node.value, "values", []), strict=True)
            return {k.value: v.value for k, v in pairs
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
                    and isinstance(k.value, str) and isinstance(v.value, str)}
    return {}


RESOURCES = "resources"  # a package's data files (templates, per-data-set values) its modules read at run time


def resource_files(module_path: Path) -> set[Path]:
    """The data files beside a module: every file under its package's `resources/` folder."""
    folder = module_path.parent / RESOURCES
    return {p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


@functools.cache
def data_closure(*modules: str) -> tuple[Path, ...]:
    """The source files of `closure` plus the packages' resource files they may read (run fingerprints)."""
    files = {p for m in modules for p in closure(m)}
    return tuple(sorted(files | {r for p in files for r in resource_files(p)}))


@functools.cache
def closure(name: str) -> tuple[Path, ...]:
    """Sorted source files of `name` and of every `pipeline.*` module it imports, transitively."""
    seen: dict[str, Path] = {}
    todo = [name]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = module_file(module)  # None for `from pkg import name` where name is not a module
        if path is None:
            continue
        seen[module] = path
        todo += sorted(imported_modules(path, module) - set(seen))
    return tuple(sorted(set(seen.values())))


# A dask worker runs several runs at once in threads, and CPython 3.11's ast.parse failed under that with
# "SystemError: AST constructor recursion depth mismatch" (seen once in the jobqueue-local sweep test, 4 threads).
_PARSING = threading.Lock()


def code_fingerprint(*modules: str) -> str:
    """sha256 over the relative paths and contents of the closure of `modules` (once per process: the code that
    runs is the code that was imported); safe to call from several threads."""
    with _PARSING:
        return _code_fingerprint(*modules)


@functools.cache
def _code_fingerprint(*modules: str) -> str:
    root = ROOT.parent
    digest = hashlib.sha256()
    for path in data_closure(*modules):
        digest.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
