"""MkDocs hooks of the zoo site: fail a strict build when the API reference misses a public name.

Every name in `zoo.__all__` must appear in docs/reference/api.md as a `::: zoo.NAME` block, or come from a
module documented there as a whole (`::: zoo.errors`), or be named in the page's text (`zoo.__version__`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.zoo")

API_PAGE = Path("reference") / "api.md"
_DIRECTIVE = re.compile(r"^:::\s+(zoo(?:\.\w+)*)\s*$", re.MULTILINE)


def on_pre_build(config: Any) -> None:
    """Warn (an error under `--strict`) for each public name of zoo the API page does not document."""
    import zoo

    page = Path(config["docs_dir"]) / API_PAGE
    text = page.read_text(encoding="utf-8")
    documented = set(_DIRECTIVE.findall(text))
    for name in zoo.__all__:
        obj = getattr(zoo, name)
        origin = getattr(obj, "__module__", None)
        if f"zoo.{name}" in documented or origin in documented or f"`zoo.{name}`" in text:
            continue
        log.warning("%s does not document zoo.%s: add a `::: zoo.%s` block", API_PAGE.as_posix(), name, name)
