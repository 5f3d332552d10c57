"""The docs cannot drift from the code: their examples are parsed, checked against the registry and the CLI,
and the ones marked `<!-- test: run -->` are executed in a fresh process.

What is checked, for README.md and every page under docs/:
- every ```python block compiles;
- every `zoo.load` / `zoo.info` / `zoo.fetch` of a literal model name resolves (name and weights tag), and every
  keyword given to `zoo.load` is an argument the model's builder declares (or one `zoo.load` takes itself);
- every line `zoo.info(...)...  # VALUE` or `zoo.list_models(...)  # VALUE` (torch-free) evaluates to VALUE;
- every console line `$ zoo ...` parses with the real click command (known command, known options, argument
  count), and the model name it names resolves;
- the blocks right after a `<!-- test: run -->` line run to completion in a new interpreter, offline.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN_MARK = "<!-- test: run -->"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*$")
#: keywords `zoo.load` takes itself, not the builder
LOAD_KEYWORDS = {"device", "labels", "verify", "model_class", "trust", "ref", "revision"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    text: str
    run: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m["lang"]:
            i += 1
            continue
        indent, start = m["indent"], i
        run = any(lines[j].strip() == RUN_MARK for j in range(max(0, i - 2), i))
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        blocks.append(Block(page, start + 1, m["lang"], "\n".join(body), run))
        i += 1
    return blocks


BLOCKS = [b for page in PAGES for b in _blocks(page)]
PYTHON = [b for b in BLOCKS if b.lang == "python"]
CONSOLE = [b for b in BLOCKS if b.lang == "console"]


def _ids(blocks: list[Block]) -> list[str]:
    return [b.where for b in blocks]


def _is_name(text: str) -> bool:
    """A catalog name (not a path, a URL or a name in a plugin's scheme) that the registry must resolve."""
    from zoo.names import is_path

    if is_path(text) or text.startswith(("hf:", "hub:")) or "://" in text:
        return False
    if {part.lower() for part in text.split(":")[0].split("/")} & DECLARED:
        return False
    return re.fullmatch(r"[\w/-]+(:[\w.-]+)?", text) is not None


#: names the docs and examples/ declare themselves: `@zoo.register("mynet")`, `.model("tinynet")`, `Plugin("acme")`
DECLARED = {
    m[1].lower()
    for page in [*PAGES, *sorted((ROOT / "examples").rglob("*.py"))]
    for m in re.finditer(r"(?:register|\.model|Plugin)\(\s*[\"']([\w-]+)[\"']", page.read_text(encoding="utf-8"))
}


def test_the_docs_have_examples_and_runnable_blocks() -> None:
    assert len(PYTHON) > 30 and len(CONSOLE) > 20
    assert sum(b.run for b in BLOCKS) >= 3


@pytest.mark.parametrize("block", PYTHON, ids=_ids(PYTHON))
def test_python_examples_compile_and_name_real_models(block: Block) -> None:
    from zoo.registry import get_registry

    try:
        tree = ast.parse(block.text)
    except SyntaxError as exc:
        pytest.fail(f"{block.where}: the example does not parse: {exc}")
    registry = get_registry()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Name) and owner.id == "zoo" and node.func.attr in ("load", "info", "fetch")):
            continue
        if not (node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            continue
        name = node.args[0].value
        if not _is_name(name):
            continue
        spec, _ = registry.resolve(name)  # raises UnknownModelError for a stale name or tag
        if node.func.attr != "load" or not spec.defaults:  # no declared arguments: the builder takes **kwargs
            continue
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg in LOAD_KEYWORDS:
                continue
            assert keyword.arg in spec.defaults, (
                f"{block.where}: zoo.load({name!r}, {keyword.arg}=...) but {spec.name}'s builder takes "
                f"{sorted(spec.defaults)}"
            )


def _claims() -> list[tuple[str, str, str]]:
    """(where, expression, expected) for every torch-free `zoo.info` / `zoo.list_models` line with a value comment."""
    found = []
    for block in PYTHON:
        for offset, line in enumerate(block.text.splitlines()):
            code, sep, comment = line.partition("#")
            code = code.strip()
            if not sep or not re.match(r"^(list\()?zoo\.(info|list_models)\(", code):
                continue
            value = comment.strip().split(", the ")[0]
            try:
                ast.literal_eval(value)
            except (ValueError, SyntaxError):
                continue
            found.append((f"{block.where}+{offset + 1}", code, value))
    return found


CLAIMS = _claims()


def test_the_docs_make_value_claims() -> None:
    assert len(CLAIMS) >= 3


@pytest.mark.parametrize(("where", "code", "expected"), CLAIMS, ids=[c[0] for c in CLAIMS])
def test_value_claims_hold(where: str, code: str, expected: str) -> None:
    import zoo

    got = eval(code, {"zoo": zoo})  # a line of our own docs, matched above as zoo.info / zoo.list_models
    assert got == ast.literal_eval(expected), f"{where}: `{code}` is {got!r}, the docs say {expected}"


def _zoo_lines() -> list[tuple[str, list[str]]]:
    found = []
    for block in CONSOLE:
        for offset, line in enumerate(block.text.splitlines()):
            if not line.startswith("$ zoo "):
                continue
            command = line[2:].split(" #")[0].split("|")[0].split(">")[0].strip()
            found.append((f"{block.where}+{offset + 1}", shlex.split(command)[1:]))
    return found


ZOO_LINES = _zoo_lines()


@pytest.mark.parametrize(("where", "args"), ZOO_LINES, ids=[z[0] for z in ZOO_LINES])
def test_console_examples_parse_with_the_real_cli(where: str, args: list[str]) -> None:
    from zoo.cli import cli
    from zoo.registry import get_registry

    command: click.Command = cli
    path = []
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"{where}: `zoo {' '.join(args)}`: no command {rest[0]!r}"
        path.append(rest.pop(0))
        command = sub
    if "-h" in rest or "--help" in rest:
        return
    try:
        ctx = command.make_context(" ".join(["zoo", *path]), rest)
    except click.UsageError as exc:
        pytest.fail(f"{where}: `zoo {' '.join(args)}` does not parse: {exc.format_message()}")
    names = []
    if path[:1] in (["info"], ["predict"], ["finetune"]):
        names = [ctx.params.get("name") or ctx.params.get("model")]
    elif path[:1] == ["fetch"]:
        names = list(ctx.params.get("names") or ())
    for name in names:
        if isinstance(name, str) and _is_name(name):
            try:
                get_registry().resolve(name)
            except Exception as exc:
                if _shows_error(where):
                    continue
                pytest.fail(f"{where}: `zoo {' '.join(args)}` names {name!r}: {exc}")


def _shows_error(where: str) -> bool:
    """True when the console line is followed by an `error:` line (an example of a refusal)."""
    page, _, rest = where.rpartition(":")
    line, _, offset = rest.partition("+")
    block = next(b for b in CONSOLE if b.where == f"{page}:{line}")
    lines = block.text.splitlines()
    index = int(offset) - 1
    return index + 1 < len(lines) and lines[index + 1].startswith("error:")


RUNNABLE = [b for b in BLOCKS if b.run]


@pytest.mark.parametrize("block", RUNNABLE, ids=_ids(RUNNABLE))
def test_runnable_examples_run_offline_in_a_new_process(block: Block, tmp_path: Path, monkeypatch) -> None:
    assert block.lang == "python", f"{block.where}: only python blocks can be marked runnable"
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    script = tmp_path / "example.py"
    script.write_text("import zoo\n" + block.text + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{block.where} failed:\n{done.stderr[-3000:]}"
