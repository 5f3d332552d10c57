"""Plugins reach zoo through `zoo` and `zoo.ext` only, and `zoo.ext` is exactly what its reference page lists.

Every `.py` under plugins/ and examples/ is parsed (nothing is imported): an import of any other `zoo.*`
module, a `from zoo import X` of a name that is not in `zoo.__all__` (a submodule such as `zoo.settings`),
a `from zoo.ext import X` of a name that is not in `zoo.ext.__all__`, an `importlib.import_module("zoo.x")`
or an attribute path such as `zoo.settings.offline` is reported as `file:line`.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zoo
import zoo.ext

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "plugins").rglob("*.py"), *(ROOT / "examples").rglob("*.py")])
EXT_PAGE = ROOT / "docs" / "reference" / "ext.md"
PUBLIC = {"zoo": frozenset(zoo.__all__), "zoo.ext": frozenset(zoo.ext.__all__)}


def private_uses(source: str, filename: str) -> list[str]:
    """`filename:line: what` for each use of zoo other than its two public modules' public names."""
    found: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("zoo.") and alias.name != "zoo.ext":
                    report(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module in PUBLIC:
                for alias in node.names:
                    if alias.name not in PUBLIC[node.module]:
                        report(node, f"from {node.module} import {alias.name} (not in {node.module}.__all__)")
            elif node.module.startswith("zoo."):
                report(node, f"from {node.module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            target = node.args[0].value
            private = isinstance(target, str) and target.startswith("zoo.") and target != "zoo.ext"
            if name in {"import_module", "__import__"} and private:
                report(node, f"{name}({target!r})")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = node.value.id
            if module == "zoo" and node.attr not in PUBLIC["zoo"] and node.attr != "ext":
                report(node, f"zoo.{node.attr}")
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from zoo.images import decode\n", "x.py:1: from zoo.images import decode"),
        ("def f():\n    from zoo.store.cache import hash_file\n", "x.py:2: from zoo.store.cache import hash_file"),
        ("import zoo.registry\n", "x.py:1: import zoo.registry"),
        ("from zoo import settings\n", "x.py:1: from zoo import settings (not in zoo.__all__)"),
        ("from zoo.ext import _private\n", "x.py:1: from zoo.ext import _private (not in zoo.ext.__all__)"),
        ("import zoo\nzoo.settings.offline()\n", "x.py:2: zoo.settings"),
        ("import importlib\nimportlib.import_module('zoo.trust')\n", "x.py:2: import_module('zoo.trust')"),
    ],
)
def test_the_checker_reports_each_way_of_reaching_a_private_module(source: str, expected: str) -> None:
    assert private_uses(source, "x.py") == [expected]


def test_the_checker_lets_the_public_surface_and_other_packages_through() -> None:
    source = textwrap.dedent(
        """
        import zoo
        import zoo.ext
        import zoo_hub.names
        from zoo import Plugin, ZooError
        from zoo.ext import build_model, collect_images
        from zoo_yolo.build import Arch
        from . import sibling
        zoo.load("x"); zoo.ext.decode
        """
    )
    assert private_uses(source, "x.py") == []


def test_plugins_and_examples_import_only_zoo_and_zoo_ext() -> None:
    assert len(SOURCES) > 40  # the first-party plugins and both example plugins are scanned
    assert any("zoo-realesrgan" in str(path) for path in SOURCES)
    found = [
        use for path in SOURCES for use in private_uses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert found == [], "plugins and examples may import only `zoo` and `zoo.ext`:\n" + "\n".join(found)


def documented_names(text: str) -> list[str]:
    """The names the zoo.ext reference page lists: its `::: zoo.ext.NAME` blocks and its table rows."""
    blocks = re.findall(r"^::: zoo\.ext\.(\w+)\s*$", text, re.MULTILINE)
    rows = re.findall(r"^\| \[`(\w+)`\]", text, re.MULTILINE)
    return blocks + rows


def test_zoo_ext_all_is_sorted_and_exactly_what_the_reference_page_lists() -> None:
    names = documented_names(EXT_PAGE.read_text(encoding="utf-8"))
    assert len(names) == len(set(names)), "a name is listed twice"
    assert zoo.ext.__all__ == sorted(zoo.ext.__all__)
    assert sorted(names) == zoo.ext.__all__
    assert all(hasattr(zoo.ext, name) for name in zoo.ext.__all__)
    # the names zoo also exports are the same objects there
    assert all(getattr(zoo.ext, n) is getattr(zoo, n) for n in zoo.ext.__all__ if n in zoo.__all__)


def test_the_page_parser_sees_a_missing_name() -> None:
    text = EXT_PAGE.read_text(encoding="utf-8").replace("::: zoo.ext.build_model\n", "")
    assert "build_model" not in documented_names(text)


def test_each_name_is_imported_from_where_the_type_checking_imports_say() -> None:
    """The names documentation tools and mypy see (the `if TYPE_CHECKING:` imports) are the ones served."""
    tree = ast.parse((ROOT / "zoo" / "ext.py").read_text(encoding="utf-8"))
    guarded = next(node for node in tree.body if isinstance(node, ast.If))
    seen = {
        alias.asname or alias.name: (node.module, alias.name)
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == zoo.ext._ORIGINS
    assert sorted([*seen, "EXT_API_VERSION", "declared_spec"]) == zoo.ext.__all__
    for name, (module, attr) in seen.items():
        assert getattr(zoo.ext, name) is getattr(importlib.import_module(module), attr), name
    with pytest.raises(AttributeError, match="no attribute 'build_module'"):
        zoo.ext.build_module  # noqa: B018 - private core helpers are not served


def test_importing_zoo_ext_is_cheap_and_each_name_costs_only_its_module() -> None:
    code = textwrap.dedent(
        """
        import sys
        import zoo.ext
        from zoo.ext import cache_root, is_offline, echo_json
        heavy = ("torch", "rich", "zoo.store", "zoo.checkpoint", "zoo.images")
        print(sorted(m for m in heavy if m in sys.modules))
        from zoo.ext import build_model, hash_file
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == ["[]", "['zoo.store']"]
