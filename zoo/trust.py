"""Trust in code from the network: which torch.hub repos (optionally pinned to a commit) may run here.

Nothing from a hub repo is imported until one of these trusts it (never a prompt):

- `trust=True` passed to `zoo.load`;
- `ZOO_TRUST`: comma-separated entries such as `owner/repo,owner/other@3f2c1e9`;
- the config file: `trust = ["owner/repo", "owner/other@3f2c1e9"]`;
- the trust file `<config dir>/trusted_repos.json`, written by `zoo trust owner/repo[@sha]`.

An entry is `owner/repo` (any commit), `owner/repo@SHA` (that commit only; 7 to 40 hex digits) or the
absolute path of a local repo folder. GitHub names are compared case-insensitively.

Trust in a commit is bound to content: the first time code of a commit-pinned GitHub repo runs, the sha256
of the archive its files came from is recorded in the trust file (`"archives"`, trust on first use); from
then on, files of that commit from any other archive are refused, whatever commit the archive claims.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import settings
from zoo._atomic import atomic_write_text
from zoo.errors import UntrustedCodeError, ZooError

__all__ = ["TrustRule", "add", "archive_bindings", "check", "parse", "remove", "rules", "trust_file", "trusted"]

_GITHUB = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
_SHA = re.compile(r"[0-9a-f]{7,40}")
_FULL_SHA = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    if _GITHUB.fullmatch(repo) and not Path(repo).is_absolute():
        return repo.lower()
    return str(Path(repo).expanduser().absolute())


def parse(text: str, source: str = "") -> TrustRule:
    """Parse `owner/repo`, `owner/repo@sha` or a local folder path.

    Raises:
        ZooError: the text is neither.
    """
    text = text.strip()
    repo, sep, commit = text.rpartition("@") if "@" in text else (text, "", "")
    if sep and not _SHA.fullmatch(commit.lower()):
        raise ZooError(f"Trust entry {text!r}: {commit!r} is not a commit sha (7 to 40 hex digits).")
    is_local = repo.startswith(("/", "~", ".")) or os.sep in repo[:1]
    if not is_local and not _GITHUB.fullmatch(repo):
        raise ZooError(f"Trust entry {text!r} is not owner/repo, owner/repo@sha or a folder path.")
    return TrustRule(repo_key(repo), commit.lower() or None, source)


def trust_file() -> Path:
    """The file `zoo trust` writes: `trusted_repos.json` beside the config file."""
    return settings.config_path().parent / "trusted_repos.json"


def _file_data() -> dict[str, Any]:
    path = trust_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"trusted": [], "archives": {}}
    except (OSError, ValueError) as exc:
        raise ZooError(f"Cannot read the trust file {path} ({exc}): fix or delete it.") from exc
    archives = data.get("archives", {}) if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("trusted"), list) or not isinstance(archives, dict):
        raise ZooError(f'The trust file {path} is not {{"trusted": [...], "archives": {{...}}}}: fix or delete it.')
    return {"trusted": [str(e) for e in data["trusted"]], "archives": archives}


def _file_entries() -> list[str]:
    return list(_file_data()["trusted"])


def archive_bindings() -> dict[str, str]:
    """`owner/repo@commit` -> sha256 of the archive whose code first ran for that commit (from the trust file)."""
    out = {}
    for key, value in _file_data()["archives"].items():
        sha = value.get("sha256") if isinstance(value, dict) else None
        if isinstance(sha, str) and _SHA256.fullmatch(sha):
            out[str(key)] = sha
    return out


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


def check(repo: str, commit: str | None, *, trust: bool | None = None, archive_sha256: str | None = None) -> TrustRule:
    """Return the rule that trusts `repo` at `commit`, or raise; never prompts.

    Args:
        repo: `owner/repo` or a local folder path.
        commit: the resolved commit of the code about to run, when known.
        trust: True trusts it for this call; False refuses even a configured trust.
        archive_sha256: the sha256 of the archive the code was extracted from (GitHub repos). When a
            commit-pinned rule trusts it, the first one seen is recorded; another one is refused.

    Raises:
        UntrustedCodeError: nothing trusts it, or its archive is not the one first trusted for the commit.
    """
    rule = _rule(repo, commit, trust)
    if archive_sha256 is not None and commit is not None and _FULL_SHA.fullmatch(commit):
        _bind(repo_key(repo), commit, archive_sha256, record=rule.commit is not None)
    return rule


def _rule(repo: str, commit: str | None, trust: bool | None) -> TrustRule:
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


def _bind(key: str, commit: str, sha256: str, *, record: bool) -> None:
    """Refuse `sha256` if another archive was trusted for `key@commit`; record it first time if `record`."""
    name = f"{key}@{commit}"
    known = archive_bindings().get(name)
    if known is not None and known != sha256:
        raise UntrustedCodeError(
            f"Hub repo {key!r} at commit {commit[:12]} was trusted with archive sha256 {known[:16]}…, but these "
            f"files come from an archive with sha256 {sha256[:16]}…: refused, none of its code ran. If the archive "
            f"really changed, remove the binding with `zoo trust --remove {key}@{commit}` and trust it again."
        )
    if known is None and record:
        from zoo.store.cache import now

        data = _file_data()
        data["archives"][name] = {"sha256": sha256, "time": now()}
        _write(data["trusted"], data["archives"])


def add(entry: str) -> TrustRule:
    """Add `entry` (`owner/repo[@sha]` or a folder) to the trust file; returns the rule."""
    rule = parse(entry, str(trust_file()))
    data = _file_data()
    if str(rule) not in data["trusted"]:
        _write([*data["trusted"], str(rule)], data["archives"])
    return rule


def remove(entry: str) -> bool:
    """Remove `entry` from the trust file, with the archive bindings of its commit; True when it was there."""
    rule = parse(entry)
    data = _file_data()
    kept = [e for e in data["trusted"] if e != str(rule)]
    archives = data["archives"]
    if rule.commit is not None:
        archives = {k: v for k, v in archives.items() if not k.lower().startswith(f"{rule.repo}@{rule.commit}")}
    changed = len(kept) != len(data["trusted"]) or len(archives) != len(data["archives"])
    if changed:
        _write(kept, archives)
    return changed


def _write(entries: list[str], archives: dict[str, Any]) -> None:
    path = trust_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"trusted": sorted(entries), "archives": dict(sorted(archives.items()))}
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
