"""Trust in code from the network: which torch.hub repos (optionally pinned to a commit) may run here.

Nothing from a hub repo is imported until one of these trusts it (never a prompt):

- `trust=True` passed to `zoo.load`;
- `ZOO_TRUST`: comma-separated entries such as `owner/repo,owner/other@3f2c1e9`;
- the config file: `trust = ["owner/repo", "owner/other@3f2c1e9"]`;
- the trust file `<config dir>/trusted_repos.json`, written by `zoo trust owner/repo[@sha]`.

An entry is `owner/repo` (any commit), `owner/repo@SHA` (that commit only; 7 to 40 hex digits) or the
absolute path of a local repo folder. GitHub names are compared case-insensitively.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from zoo import settings
from zoo.errors import UntrustedCodeError, ZooError

__all__ = ["TrustRule", "add", "check", "parse", "remove", "rules", "trust_file", "trusted"]

_GITHUB = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")
_SHA = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass(frozen=True)
class TrustRule:
    """One trusted repo.

    Attributes:
        repo: `owner/repo` in lower case, or the absolute path of a local folder.
        commit: the commit (or its prefix) this trust is pinned to; None for any commit.
        source: where the rule comes from: "argument", "ZOO_TRUST", "config" or the trust file's path.
    """

    repo: str
    commit: str | None = None
    source: str = ""

    def allows(self, repo: str, commit: str | None) -> bool:
        """True when this rule trusts `repo` at `commit` (a pinned rule needs a known, matching commit)."""
        if self.repo != repo_key(repo):
            return False
        if self.commit is None:
            return True
        return commit is not None and commit.lower().startswith(self.commit)

    def __str__(self) -> str:
        return f"{self.repo}@{self.commit}" if self.commit else self.repo


def repo_key(repo: str) -> str:
    """The normalised key of a repo: `owner/repo` lower-cased, or a local folder's absolute path."""
    if _GITHUB.match(repo) and not Path(repo).is_absolute():
        return repo.lower()
    return str(Path(repo).expanduser().absolute())


def parse(text: str, source: str = "") -> TrustRule:
    """Parse `owner/repo`, `owner/repo@sha` or a local folder path.

    Raises:
        ZooError: the text is neither.
    """
    text = text.strip()
    repo, sep, commit = text.rpartition("@") if "@" in text else (text, "", "")
    if sep and not _SHA.match(commit.lower()):
        raise ZooError(f"Trust entry {text!r}: {commit!r} is not a commit sha (7 to 40 hex digits).")
    is_local = repo.startswith(("/", "~", ".")) or os.sep in repo[:1]
    if not is_local and not _GITHUB.match(repo):
        raise ZooError(f"Trust entry {text!r} is not owner/repo, owner/repo@sha or a folder path.")
    return TrustRule(repo_key(repo), commit.lower() or None, source)


def trust_file() -> Path:
    """The file `zoo trust` writes: `trusted_repos.json` beside the config file."""
    return settings.config_path().parent / "trusted_repos.json"


def _file_entries() -> list[str]:
    path = trust_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ZooError(f"Cannot read the trust file {path} ({exc}): fix or delete it.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("trusted"), list):
        raise ZooError(f'The trust file {path} is not {{"trusted": [...]}}: fix or delete it.')
    return [str(entry) for entry in data["trusted"]]


def rules() -> list[TrustRule]:
    """Every trust rule in force, from `ZOO_TRUST`, the config file and the trust file."""
    found = [parse(e, "ZOO_TRUST") for e in os.environ.get("ZOO_TRUST", "").split(",") if e.strip()]
    configured = settings.config().get("trust", [])
    if isinstance(configured, str):
        configured = [configured]
    found += [parse(str(e), "config") for e in configured]
    found += [parse(e, str(trust_file())) for e in _file_entries()]
    return found


def trusted(repo: str, commit: str | None) -> TrustRule | None:
    """The first rule that trusts `repo` at `commit`, or None."""
    return next((rule for rule in rules() if rule.allows(repo, commit)), None)


def check(repo: str, commit: str | None, *, trust: bool | None = None) -> TrustRule:
    """Return the rule that trusts `repo` at `commit`, or raise; never prompts.

    Args:
        repo: `owner/repo` or a local folder path.
        commit: the resolved commit of the code about to run, when known.
        trust: True trusts it for this call; False refuses even a configured trust.

    Raises:
        UntrustedCodeError: nothing trusts it; the message says how to.
    """
    if trust is True:
        return TrustRule(repo_key(repo), None, "argument")
    rule = None if trust is False else trusted(repo, commit)
    if rule is not None:
        return rule
    key = repo_key(repo)
    pinned = f"{key}@{commit[:12]}" if commit else key
    at = f" at commit {commit[:12]}" if commit else ""
    raise UntrustedCodeError(
        f"Hub repo {key!r}{at} is not trusted, so none of its code ran. Read it, then run `zoo trust {pinned}`, "
        f"set ZOO_TRUST={pinned}, or pass trust=True."
    )


def add(entry: str) -> TrustRule:
    """Add `entry` (`owner/repo[@sha]` or a folder) to the trust file; returns the rule."""
    rule = parse(entry, str(trust_file()))
    entries = _file_entries()
    if str(rule) not in entries:
        _write(entries + [str(rule)])
    return rule


def remove(entry: str) -> bool:
    """Remove `entry` from the trust file; True when it was there."""
    rule = parse(entry)
    entries = _file_entries()
    kept = [e for e in entries if e != str(rule)]
    if len(kept) != len(entries):
        _write(kept)
    return len(kept) != len(entries)


def _write(entries: list[str]) -> None:
    path = trust_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"trusted": sorted(entries)}, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
