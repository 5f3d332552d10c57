"""Reading a repo's `hubconf.py` without running it: entry points, their docstrings, `dependencies`."""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from zoo import UnsupportedError, ZooError

__all__ = ["Entry", "HubConf", "read_hubconf"]


@dataclass(frozen=True)
class Entry:
    """One entry point of a hubconf.

    Attributes:
        name: the callable's name.
        signature: its parameters as written (`pretrained=True, **kwargs`), or "" when imported.
        doc: its docstring, or where it is imported from.
    """

    name: str
    signature: str = ""
    doc: str = ""


@dataclass(frozen=True)
class HubConf:
    """What a hubconf declares, read statically.

    Attributes:
        path: the hubconf file.
        entries: public entry points by name, in file order.
        dependencies: the packages its `dependencies` list names.
    """

    path: Path
    entries: dict[str, Entry] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()

    def entry(self, name: str) -> Entry:
        """The entry point `name`.

        Raises:
            UnsupportedError: the hubconf has no such entry (the message lists the ones it has).
        """
        try:
            return self.entries[name]
        except KeyError:
            known = ", ".join(self.entries) or "none"
            raise UnsupportedError(f"{self.path} has no entry point {name!r}. Entry points: {known}.") from None

    def missing_dependencies(self) -> list[str]:
        """The `dependencies` that are not importable here (checked without importing them)."""
        missing = []
        for name in self.dependencies:
            top = name.split(".")[0].replace("-", "_")
            try:
                found = importlib.util.find_spec(top) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(name)
        return missing


def read_hubconf(root: Path) -> HubConf:
    """Parse `root/hubconf.py` with `ast` (no code runs).

    Raises:
        ZooError: there is no hubconf.py, or it is not valid Python.
    """
    path = root / "hubconf.py"
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ZooError(f"{root} has no hubconf.py: it is not a torch.hub repo.") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise ZooError(f"{path} is not valid Python (line {exc.lineno}): {exc.msg}.") from exc
    entries: dict[str, Entry] = {}
    dependencies: tuple[str, ...] = ()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            signature = ast.unparse(node.args) if isinstance(node, ast.FunctionDef) else ""
            entries[node.name] = Entry(node.name, signature, ast.get_docstring(node) or "")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = alias.asname or alias.name
                if not name.startswith("_") and name != "*":
                    entries[name] = Entry(name, "", f"(imported from {node.module})")
        elif isinstance(node, ast.Assign) and any(_named(t, "dependencies") for t in node.targets):
            dependencies = _literal_names(node.value, path)
    return HubConf(path, entries, dependencies)


def _named(target: ast.expr, name: str) -> bool:
    return isinstance(target, ast.Name) and target.id == name


def _literal_names(value: ast.expr, path: Path) -> tuple[str, ...]:
    try:
        names = ast.literal_eval(value)
    except ValueError:
        raise ZooError(f"{path}: `dependencies` must be a literal list of package names.") from None
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ZooError(f"{path}: `dependencies` must be a list of package names.")
    return tuple(names)
