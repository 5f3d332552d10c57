"""The guard around hub code: no package installer starts, and nothing reaches the network when offline.

While `guarded()` is active (the hub entry call and every forward of a hub module), a process-wide audit
hook refuses, with `SandboxError` (an `UntrustedCodeError`, so also a `PermissionError`):

- every way to start a package installer: `subprocess` argument lists and shell strings (`shell=True`,
  `sh -c "pip install ..."`, `os.system`, `os.popen`), `os.exec*`, `os.spawn*`, `os.posix_spawn*`,
  `_posixsubprocess.fork_exec` called directly; installers are `pip*`, `python -m pip`, `ensurepip`,
  `easy_install`, `uv`/`uvx`, `pipx`, and `conda`/`mamba`/`poetry`/`pdm` asked to install;
- importing `pip`, `ensurepip` or `uv` in the process (their in-process entry points);
- pseudo-terminals (`pty.spawn`, `os.forkpty`), and looking up libc's process functions through ctypes;
- with `ZOO_OFFLINE=1`: sockets and name lookups of the process, and subprocesses that reach the network
  (`curl`, `wget`, `git fetch/clone/pull/push/ls-remote/submodule`, `ssh`, `rsync`, ...).

Command lines are read the way a shell reads them (quotes, `;`, `&&`, `|`, `$(...)`, nested `sh -c`), so
`/bin/sh -c 'cd x && python3 -m pip install y'` is refused as surely as `["pip", "install", "y"]`.

This keeps well-meaning hub code (yolov5's `check_requirements`, which catches the error and goes on)
from changing the interpreter. It is not a jail for hostile code: code you trusted runs with your
rights and could write files or load native code; trust decides whether it runs at all.

The audit hook cannot be removed once added, so it is a no-op outside `guarded()`; the two attributes
patched (`_posixsubprocess.fork_exec`, `os._spawnvef`) are put back when the outermost guard exits, also on error.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import sys
import threading
from collections.abc import Iterator
from typing import Any

from zoo import OfflineError, UntrustedCodeError
from zoo.ext import is_offline

__all__ = ["SandboxError", "guarded", "refusal"]

_LOCK = threading.RLock()
_depth = 0
_hook_installed = False
_saved_fork_exec: Any = None

#: Programs that install packages whatever their arguments.
INSTALLERS = re.compile(r"(pip[0-9.]*|pip3?-[0-9.]+|pipx|ensurepip|easy_install[0-9.-]*|uv|uvx)")
#: Package managers that install when given one of `_INSTALL_VERBS`.
MANAGERS = frozenset({"conda", "mamba", "micromamba", "poetry", "pdm", "hatch", "pipenv", "apt", "apt-get", "yum"})
_INSTALL_VERBS = frozenset({"install", "add", "create", "update", "upgrade", "sync", "env"})
#: Modules that are installers when imported or run with `-m`.
INSTALLER_MODULES = frozenset({"pip", "ensurepip", "uv", "pipx", "easy_install"})
#: Programs that reach the network whatever their arguments (refused offline).
NETWORK = frozenset({"curl", "wget", "aria2c", "ssh", "scp", "sftp", "rsync", "ftp", "telnet", "nc", "ncat", "socat"})
_GIT_NETWORK = frozenset({"fetch", "clone", "pull", "push", "ls-remote", "submodule", "remote", "archive"})
#: libc functions that start programs (looked up through ctypes they would bypass the audit events).
LIBC_SPAWN = frozenset(
    {"system", "popen", "fork", "vfork", "clone", "fexecve", "posix_spawn", "posix_spawnp"}
    | {f"exec{s}" for s in ("l", "le", "lp", "v", "ve", "vp", "vpe")}
)
_SHELL_CHARS = re.compile(r"[\s;&|<>()`$]")


class SandboxError(UntrustedCodeError):
    """Hub code tried something the sandbox refuses (installing packages, the network when offline).

    Attributes:
        command: the refused command line or operation.
    """

    def __init__(self, message: str, *, command: str) -> None:
        super().__init__(message)
        self.command = command


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Refuse package installers (and the network when offline) until the block exits."""
    global _depth, _saved_fork_exec
    _install_hook()
    with _LOCK:
        _depth += 1
        if _depth == 1:
            _saved_fork_exec = _patch_fork_exec()
    try:
        yield
    finally:
        with _LOCK:
            _depth -= 1
            if _depth == 0:
                _restore_fork_exec(_saved_fork_exec)
                _saved_fork_exec = None


def active() -> bool:
    """True while some hub code runs under the guard."""
    return _depth > 0


def refusal(command: Any) -> str | None:
    """Why starting `command` (an argument list or a shell string) is refused now, or None when allowed."""
    words = words_of(command)
    installer = _installer(words)
    if installer:
        return f"zoo never installs packages for hub code ({installer})"
    if is_offline():
        net = _network(words)
        if net:
            return f"offline (ZOO_OFFLINE=1) and it reaches the network ({net})"
    return None


def words_of(command: Any, depth: int = 0) -> list[str]:
    """Every word a shell would see in `command`, nested `sh -c` strings and `$(...)` included."""
    if isinstance(command, (bytes, bytearray)):
        command = bytes(command).decode(errors="replace")
    if isinstance(command, str):
        parts = [command]
    else:
        try:
            parts = [p.decode(errors="replace") if isinstance(p, bytes) else str(p) for p in command]
        except TypeError:
            parts = [str(command)]
    words: list[str] = []
    for part in parts:
        split = _split(part) if depth < 6 and _SHELL_CHARS.search(part) else [part]
        words.extend(words_of(split, depth + 1) if split != [part] else split)
    return words


def _split(text: str) -> list[str]:
    lexer = shlex.shlex(text.replace("$(", " ( ").replace("`", " ` "), posix=True, punctuation_chars=";&|<>()`")
    lexer.whitespace_split = True
    try:
        return [w for w in lexer if w.strip(";&|<>()`")] or [text]
    except ValueError:  # unbalanced quotes: split on what a shell would split on, quotes dropped
        return [w for w in re.split(r"[\s;&|<>()`$'\"]+", text) if w] or [text]


def _program(word: str) -> str:
    name = word.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name[:-4] if name.endswith(".exe") else name


def _installer(words: list[str]) -> str | None:
    programs = [_program(w) for w in words]
    for i, name in enumerate(programs):
        if INSTALLERS.fullmatch(name):
            return name
        if name in MANAGERS and any(p in _INSTALL_VERBS for p in programs[i + 1 :]):
            return f"{name} {next(p for p in programs[i + 1 :] if p in _INSTALL_VERBS)}"
        module = name[2:] if name.startswith("-m") else ""
        if name == "-m" and i + 1 < len(programs):
            module = programs[i + 1]
        if module.split(".")[0] in INSTALLER_MODULES:
            return f"-m {module}"
    return None


def _network(words: list[str]) -> str | None:
    programs = [_program(w) for w in words]
    for i, name in enumerate(programs):
        if name in NETWORK:
            return name
        if name == "git":
            verb = next((p for p in programs[i + 1 :] if p in _GIT_NETWORK), None)
            if verb:
                return f"git {verb}"
    return None


def _install_hook() -> None:
    global _hook_installed
    with _LOCK:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True


def _refuse(what: str, why: str) -> SandboxError:
    shown = " ".join(what.split())[:160]
    return SandboxError(f"Hub code tried to run `{shown}`: refused, {why}. Install what the repo needs yourself.",
                        command=what)  # fmt: skip


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _depth:
        return
    command: Any = None
    if event == "subprocess.Popen":  # (executable, args, cwd, env): the executable counts when it differs
        command = args[1]
        if args[0] and not isinstance(command, (str, bytes)) and list(command)[:1] != [args[0]]:
            command = [args[0], *command]
    elif event == "os.system":
        command = args[0]
    elif event in {"os.exec", "os.posix_spawn"}:
        command = [args[0], *args[1]]
    elif event == "os.spawn":
        command = [args[1], *args[2]]
    elif event in {"os.forkpty", "pty.spawn"}:
        raise _refuse("pty.spawn/os.forkpty", "hub code may not open pseudo-terminals")
    elif event == "ctypes.dlsym" and len(args) > 1 and str(args[1]) in LIBC_SPAWN:
        raise _refuse(f"ctypes {args[1]}", "hub code may not start programs through libc")
    elif event == "import" and args and str(args[0]).partition(".")[0] in INSTALLER_MODULES:
        raise _refuse(f"import {args[0]}", "zoo never installs packages for hub code")
    elif event == "socket.connect" and is_offline():
        raise OfflineError(f"Offline (ZOO_OFFLINE=1): hub code tried to connect to {args[1]!r}; nothing was sent.")
    elif event in {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"} and _named_host(args):
        raise OfflineError(f"Offline (ZOO_OFFLINE=1): hub code tried to look up {args[0]!r}; nothing was sent.")
    if command is not None:
        _check(command)


def _named_host(args: tuple[Any, ...]) -> bool:
    """True when offline and a lookup is for a host name (which asks a resolver), not an IP address literal."""
    import ipaddress

    if not is_offline() or not args or not isinstance(args[0], (str, bytes)):
        return False
    host = args[0].decode(errors="replace") if isinstance(args[0], bytes) else args[0]
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return True
    return False


def _text(command: Any) -> str:
    if isinstance(command, (str, bytes)):
        return command.decode(errors="replace") if isinstance(command, bytes) else command
    try:
        return shlex.join(str(w) for w in command)
    except TypeError:
        return str(command)


def _patch_fork_exec() -> list[tuple[Any, str, Any]]:
    """Wrap the two spawners that have no audit event of their own in the parent: `_posixsubprocess.fork_exec`
    called directly, and `os._spawnvef` behind `os.spawn*` on POSIX (its exec is audited only in the child).
    Returns what to put back."""
    import os

    saved: list[tuple[Any, str, Any]] = []
    try:
        import _posixsubprocess
    except ImportError:  # pragma: no cover - not POSIX
        return saved
    original = _posixsubprocess.fork_exec

    def fork_exec(args: Any, *rest: Any) -> Any:
        _check(args)
        return original(args, *rest)

    saved.append((_posixsubprocess, "fork_exec", original))
    _posixsubprocess.fork_exec = fork_exec
    spawnvef = getattr(os, "_spawnvef", None)
    if spawnvef is not None:

        def _spawnvef(mode: int, file: str, args: Any, env: Any, func: Any) -> Any:
            _check([file, *args])
            return spawnvef(mode, file, args, env, func)

        saved.append((os, "_spawnvef", spawnvef))
        os._spawnvef = _spawnvef
    return saved


def _check(args: Any) -> None:
    if _depth and args is not None:
        why = refusal(args)
        if why:
            raise _refuse(_text(args), why)


def _restore_fork_exec(saved: list[tuple[Any, str, Any]] | None) -> None:
    for owner, name, original in saved or ():
        setattr(owner, name, original)
