"""Builder arguments read from files: checked against the builder before anything is imported or built.

Data never selects code. A checkpoint's header, a folder's or a Hub repo's `config.json`, a record: whatever a
file says about how to build a model is only accepted when

- every key is a parameter the model's builder declares (or takes through `**kwargs`);
- every value is plain JSON (str, int, float, bool, None, lists and dicts of those), of bounded depth and size;
- no string names code or a place to fetch from: no URL, no `package.module:Attr` import path, no
  `scheme:owner/repo` reference;
- no key is one of the spec's `caller_only` parameters (those that choose code, trust or a source, such as
  `model_class`, `trust`, `repo`, `ref`, `backend`), unless the file's value is the builder's own default, which
  changes nothing. Only a caller's keyword sets them: `zoo.load(path, trust=True)`.

`parse_json` reads JSON text from a file into one typed error instead of `JSONDecodeError` or `RecursionError`.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError

if TYPE_CHECKING:
    from zoo.specs import ModelSpec

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "check_json",
    "file_kwargs",
    "parse_json",
    "recordable_kwargs",
    "refuse_caller_only",
]

#: Deepest nesting of lists and dicts accepted in a value read from a file.
MAX_DEPTH = 16
#: Most list items, dict entries and characters (of strings) accepted in one value read from a file, in all.
MAX_ITEMS = 4_000_000
#: Largest integer magnitude accepted (int64).
MAX_INT = 2**63
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_SCHEME_REF = re.compile(r"^[A-Za-z][\w+.-]*:/*[\w.~-]+/")


def check_options(func: Any, options: Mapping[str, Any], *, what: str) -> None:
    """Refuse keyword options `func` does not take (unless it takes ``**kwargs``), naming those it does.

    Raises:
        InputError: an option `func` has no parameter for.
    """
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(
            f"{what} has no option {', '.join(map(repr, unknown))}: its options are {', '.join(known) or 'none'}."
        )


def parse_json(text: str | bytes, *, what: str, source: str) -> Any:
    """JSON text read from a file, as Python values.

    Raises:
        InputError: the text is not JSON, or nests deeper than Python's JSON parser goes.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InputError(f"The {what} of {source} nests too deeply to be read: the file is damaged.") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        reason = str(exc).split("\n", 1)[0][:120]
        raise InputError(f"The {what} of {source} is not valid JSON ({reason}): the file is damaged.") from None


def _refuse_constant(name: str) -> Any:
    raise InputError(f"{name} is not a JSON number")


def check_json(value: Any, *, what: str, source: str) -> Any:
    """Return `value` if it is plain JSON data of bounded depth and size, else raise `InputError`."""
    budget = [MAX_ITEMS]
    _check(value, 0, budget, what, source)
    return value


def _check(value: Any, depth: int, budget: list[int], what: str, source: str) -> None:
    if depth > MAX_DEPTH:
        raise InputError(f"The {what} of {source} nests deeper than {MAX_DEPTH} levels: the file is damaged.")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) >= MAX_INT:
            raise InputError(f"The {what} of {source} holds a number too large for a model argument: {_short(value)}.")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"The {what} of {source} holds {value!r}, not a finite number: the file is damaged.")
        return
    if isinstance(value, (str, list, tuple)):
        budget[0] -= len(value)
    elif isinstance(value, Mapping):
        budget[0] -= len(value)
        if not all(isinstance(k, str) for k in value):
            raise InputError(f"The {what} of {source} has a key that is not a string: the file is damaged.")
    else:
        raise InputError(
            f"The {what} of {source} holds a {type(value).__name__}, not a JSON value: the file is damaged."
        )
    if budget[0] < 0:
        raise InputError(f"The {what} of {source} is too large (over {MAX_ITEMS} items): the file is damaged.")
    if isinstance(value, (list, tuple)):
        for item in value:
            _check(item, depth + 1, budget, what, source)
    elif isinstance(value, Mapping):
        for item in value.values():
            _check(item, depth + 1, budget, what, source)


def file_kwargs(spec: ModelSpec, kwargs: Any, *, source: str) -> dict[str, Any]:
    """Builder arguments for `spec` read from a file, checked before anything is imported or built.

    Args:
        spec: the model the file says it holds.
        kwargs: the arguments as read (a dict of JSON values).
        source: the file, for messages (`lenet5.safetensors`, `config.json of hf:org/repo@sha`).

    Returns:
        The arguments, as a new dict.

    Raises:
        InputError: not a dict of JSON values; a key the builder does not take; a string that names code or a
            place to fetch from; or a `caller_only` parameter set to anything but its default.
    """
    if not isinstance(kwargs, Mapping):
        raise InputError(f"The builder arguments of {source} are a {type(kwargs).__name__}, not a JSON object.")
    check_json(kwargs, what="builder arguments", source=source)
    params, open_ended = _parameters(spec)
    for key, value in kwargs.items():
        if key in spec.caller_only:
            _refuse_caller_only(spec, key, value, params, source)
        elif key not in params and not open_ended:
            takes = ", ".join(sorted(p for p in params if p not in spec.caller_only)) or "no arguments"
            raise InputError(
                f"{source} gives {spec.qualified_name} the argument {key!r}, which its builder does not take "
                f"(it takes: {takes}): the file is damaged or not for this model."
            )
        _refuse_code_strings(spec, key, value, source)
    return dict(kwargs)


def refuse_caller_only(spec: ModelSpec, kwargs: Mapping[str, Any], *, source: str) -> None:
    """Raise `InputError` when `kwargs` (not from the caller) set one of `spec.caller_only` to a non-default value."""
    params, _ = _parameters(spec)
    for key, value in kwargs.items():
        if key in spec.caller_only:
            _refuse_caller_only(spec, key, value, params, source)


def recordable_kwargs(spec: ModelSpec, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The builder arguments a checkpoint may record, and the `caller_only` ones left out (set to non-defaults)."""
    params, _ = _parameters(spec)
    kept: dict[str, Any] = {}
    dropped = []
    for key, value in kwargs.items():
        if key not in spec.caller_only:
            kept[key] = value
        elif not _is_default(params.get(key), value):
            dropped.append(key)
    return kept, dropped


def _parameters(spec: ModelSpec) -> tuple[dict[str, inspect.Parameter], bool]:
    """The builder's keyword parameters by name, and whether it takes any other keyword (`**kwargs`)."""
    try:
        signature = inspect.signature(spec.builder)
    except (TypeError, ValueError):  # a builder without a signature: only its declared defaults
        return {name: inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in spec.defaults}, False
    params = {
        name: p
        for name, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    return params, open_ended


def _is_default(param: inspect.Parameter | None, value: Any) -> bool:
    if param is None or param.default is inspect.Parameter.empty:
        return False
    default = param.default
    return type(value) is type(default) and value == default


def _refuse_caller_only(
    spec: ModelSpec, key: str, value: Any, params: Mapping[str, inspect.Parameter], source: str
) -> None:
    if _is_default(params.get(key), value):
        return
    raise InputError(
        f"{source} sets {key}={_short(value)} for {spec.qualified_name}, but {key!r} chooses code, trust or a "
        f"source: zoo takes it only from the caller (zoo.load(..., {key}=...)), never from a file."
    )


def _refuse_code_strings(spec: ModelSpec, key: str, value: Any, source: str) -> None:
    for text in _strings(value):
        if _URL.match(text) or _IMPORT_PATH.match(text) or _SCHEME_REF.match(text):
            raise InputError(
                f"{source} sets {key}={_short(value)} for {spec.qualified_name}: {_short(text)} names code or a "
                f"place to fetch from, which zoo never takes from a file. Pass it as a keyword if you mean it."
            )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _strings(item)]
    return []


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else f"<{value.bit_length()}-bit number>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
