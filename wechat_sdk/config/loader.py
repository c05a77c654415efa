"""Reading config files: JSON5, ``${VAR}`` substitution, validation, friendly errors."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from wechat_sdk.config.accounts import AccountSet, resolve_accounts
from wechat_sdk.config.errors import ConfigError, ConfigProblem
from wechat_sdk.config.locate import duplicate_keys, key_lines
from wechat_sdk.config.models import AccountConfig, Config, WechatConfig

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "MAX_CONFIG_BYTES",
    "config_path",
    "load_config",
    "parse_config",
]

CONFIG_ENV = "WECHAT_SDK_CONFIG"
DEFAULT_CONFIG_PATH = Path("~/.clawdbot/config.json5")
#: the largest config file read (1 MiB: a real one is a few KB; a bigger one is a mistake,
#: and parsing JSON5 takes seconds a megabyte)
MAX_CONFIG_BYTES = 1 << 20
_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")
_JSON5_POS = re.compile(r"<string>:(\d+) (.*?)(?: at column (\d+))?$", re.DOTALL)


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The file to read: ``path``, else ``$WECHAT_SDK_CONFIG``, else the default."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    return DEFAULT_CONFIG_PATH.expanduser()


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file (see `config_path` for which one)."""
    file, text = _read(path)
    return parse_config(text, source=str(file))


def load_state_dir(path: str | os.PathLike[str] | None = None) -> str | None:
    """The ``channels.wechat.stateDir`` of a config file, its variables replaced, however
    wrong the rest of it is (the CLI finds a running gateway by it, to tell it that its
    new config is refused); None when it sets none. Raises `ConfigError` when the file
    cannot be read or parsed, or its stateDir cannot be used."""
    file, text = _read(path)
    data = _parse_json5(text, str(file))
    channels = data.get("channels") if isinstance(data, dict) else None
    wechat = channels.get("wechat") if isinstance(channels, dict) else None
    raw = wechat.get("stateDir") if isinstance(wechat, dict) else None
    if raw is None:
        return None
    where = "channels.wechat.stateDir"
    problems: list[ConfigProblem] = []
    value = _substitute(raw, tuple(where.split(".")), os.environ, problems)
    if not isinstance(value, str):
        problems.append(ConfigProblem(where, f"expected a string, got {_type_name(value)}"))
    if problems:
        raise ConfigError(problems, source=str(file))
    return str(value)


def _read(path: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """A config file's path (see `config_path`) and its text; a `ConfigError` naming the
    file (as every config error does) when it cannot be read."""
    file = config_path(path)
    try:
        return file, _text(file)
    except ValueError as exc:
        raise ConfigError.single("", str(exc), source=str(file)) from None


def _text(file: Path) -> str:
    """The text of ``file``; `ValueError` saying why it cannot be read."""
    return read_text(
        file,
        kind="config",
        max_bytes=MAX_CONFIG_BYTES,
        missing=(
            f"no config file at {file}: create it (for a first run on the simulator: "
            '`{ channels: { wechat: { puppet: "simulator", dmPolicy: "pairing" } } }`), '
            f"or point to another with --config PATH or ${CONFIG_ENV}"
        ),
    )


def read_text(file: Path, *, kind: str, max_bytes: int, missing: str | None = None) -> str:
    """The UTF-8 text of a ``kind`` file (a config, a scenario) of at most ``max_bytes``;
    `ValueError` saying why it cannot be read and what to do (``missing``: the words for a
    file that is not there). No more than ``max_bytes`` is read: a huge file, or a device,
    is refused without filling memory."""
    try:
        with file.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ValueError(missing or f"no {kind} file at {file}") from None
    except IsADirectoryError:
        raise ValueError(f"{file} is a directory, not a {kind} file") from None
    except PermissionError:
        raise ValueError(
            f"cannot read {file}: permission denied (check its owner and mode)"
        ) from None
    except OSError as exc:
        raise ValueError(f"cannot read {file}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise ValueError(
            f"{file} is larger than {max_bytes // (1 << 20)} MiB, the most a {kind} file may "
            "be: is it the right file?"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{file} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None


def parse_config(
    text: str, *, source: str | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Parse and validate the JSON5 text of a whole config file.

    Raises `ConfigError` listing every problem as ``dotted.path: message``.
    """
    data = _parse_json5(text, source)
    lines = key_lines(text)
    problems = [
        ConfigProblem(
            path,
            f"written twice in one object ({_lines(first, then)}): the second would replace "
            "the first without a word; keep one",
            then,
        )
        for path, first, then in duplicate_keys(text)
        if _read_here(path)
    ]
    data = _substitute_read_part(data, os.environ if env is None else env, problems)
    if not isinstance(data, dict):
        problems.append(
            ConfigProblem("", f"the file must hold an object {{...}}, got {_type_name(data)}")
        )
        raise ConfigError(problems, source=source)
    problems.extend(_check_top_level(data))
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc))
        raise ConfigError(_with_lines(problems, lines), source=source) from None
    if problems:
        raise ConfigError(_with_lines(problems, lines), source=source)
    try:
        resolve_accounts(config.channels.wechat)
    except ConfigError as exc:
        raise ConfigError(_with_lines(exc.problems, lines), source=source) from None
    return config


def located(exc: ConfigError, path: str | os.PathLike[str] | None = None) -> ConfigError:
    """``exc`` with the config file's name and each problem's line, for checks made after
    loading (a puppet's settings, say). ``path`` is chosen as `config_path` chooses."""
    file = config_path(path)
    try:
        lines = key_lines(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        lines = {}
    return ConfigError(_with_lines(exc.problems, lines), source=exc.source or str(file))


def accounts_of(config: Config) -> AccountSet:
    """The resolved accounts of a validated config."""
    return resolve_accounts(config.channels.wechat)


# ---------------------------------------------------------------- steps


def _parse_json5(text: str, source: str | None) -> Any:
    import json5  # imported when first needed (start-up time)

    try:
        return json5.loads(text)
    except ValueError as exc:
        msg = str(exc)
        m = _JSON5_POS.match(msg)
        if m:
            line, what, col = int(m.group(1)), _printable(m.group(2)), m.group(3)
            where = f"line {line}" + (f", column {col}" if col else "")
            raise ConfigError(
                [ConfigProblem("", f"invalid JSON5 at {where}: {what}", line)], source=source
            ) from None
        raise ConfigError([ConfigProblem("", f"invalid JSON5: {msg}")], source=source) from None
    except RecursionError:
        raise ConfigError(
            [ConfigProblem("", "invalid JSON5: nested too deeply")], source=source
        ) from None


def _read_here(path: str) -> bool:
    """Whether ``path`` is ``channels.wechat``, in it, or holds it: the part of the file
    this SDK reads (the rest belongs to the rest of the gateway)."""
    return path in ("channels", "channels.wechat") or path.startswith("channels.wechat.")


def _lines(first: int, then: int) -> str:
    return f"line {first}" if first == then else f"lines {first} and {then}"


def _printable(text: str) -> str:
    """``text`` with control characters (a newline json5 complains about) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _substitute_read_part(data: Any, env: Mapping[str, str], problems: list[ConfigProblem]) -> Any:
    """``data`` with the variables of ``channels.wechat`` replaced: the part of the file
    this SDK reads. The rest belongs to the rest of the gateway, which replaces its own
    (one unset there is not this SDK's error), and is left as written."""
    channels = data.get("channels") if isinstance(data, dict) else None
    if not isinstance(channels, dict) or "wechat" not in channels:
        return data
    wechat = _substitute(channels["wechat"], ("channels", "wechat"), env, problems)
    return {**data, "channels": {**channels, "wechat": wechat}}


def _substitute(
    value: Any, path: tuple[str, ...], env: Mapping[str, str], problems: list[ConfigProblem]
) -> Any:
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            if m.group(1):  # $${VAR} is a literal ${VAR}
                return "${" + m.group(2) + "}"
            name = m.group(2)
            if name not in env:
                problems.append(
                    ConfigProblem(
                        ".".join(path),
                        f"environment variable {name} is not set (set it, or write $${{{name}}} "
                        "for a literal)",
                    )
                )
                return ""
            return env[name]

        return _VAR.sub(repl, value)
    if isinstance(value, dict):  # (keys are strings too: a room id kept out of the file)
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = _substitute(k, (*path, str(k)), env, problems) if isinstance(k, str) else k
            if key in out:
                problems.append(
                    ConfigProblem(
                        ".".join((*path, str(k))),
                        f"is {key!r} once its variables are replaced, as another key is",
                    )
                )
            out[key] = _substitute(v, (*path, str(k)), env, problems)
        return out
    if isinstance(value, list):
        return [_substitute(v, (*path, str(i)), env, problems) for i, v in enumerate(value)]
    return value


def _check_top_level(data: dict[str, Any]) -> list[ConfigProblem]:
    """Other sections belong to the rest of the gateway; catch only typos of ours."""
    out: list[ConfigProblem] = []
    for key in data:
        if key != "channels" and difflib.get_close_matches(str(key), ["channels"], cutoff=0.75):
            out.append(ConfigProblem(str(key), 'unknown key (did you mean "channels"?)'))
    channels = data.get("channels")
    if isinstance(channels, dict):
        for key in channels:
            if key != "wechat" and difflib.get_close_matches(str(key), ["wechat"], cutoff=0.7):
                out.append(
                    ConfigProblem(f"channels.{key}", 'unknown channel (did you mean "wechat"?)')
                )
    return out


def validation_problems(
    exc: ValidationError, model: Any = Config, prefix: str = "", *, list_known: bool = False
) -> list[ConfigProblem]:
    """Each problem of ``exc``, a validation of ``model``, worded as the config's are: its
    dotted path (under ``prefix``), an unknown key with the closest known one (with
    ``list_known``, the known keys when none is close), a secret never repeated. The
    simulator's scenario files and control API word their errors with it too."""
    out: list[ConfigProblem] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = _clean_loc([str(p) for p in err["loc"]])
        message = _message(err, loc, model, list_known=list_known)
        path = ".".join([prefix, *loc] if prefix else loc)
        key = f"{path}\0{message}"
        if key in seen:
            continue
        seen.add(key)
        out.append(ConfigProblem(path, message))
    return _collapse_unions(out)


def error_words(err: Any) -> str:
    """pydantic's message for ``err``, one of a `ValidationError`'s errors; a validator's
    `ValueError` in its own words, without the ``Value error, `` pydantic puts before them.
    The one rule for it: the config's problems, the HTTP API's, a Python tool's bad
    arguments (told to the model) and an iLink message of the wrong shape say it so."""
    if err["type"] == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    return str(err["msg"])


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean "x"?)`` with the choice closest to ``word``, or "" when none is."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6) if choices else []
    return f' (did you mean "{close[0]}"?)' if close else ""


# pydantic names union members in error locations ("list[str]", "ToolPolicy", ...)
_UNION_TAGS = frozenset(
    {
        "str",
        "int",
        "bool",
        "float",
        "none",
        "ToolPolicy",
        "TlsOptions",
        "PacingConfig",
        "HealthConfig",
        "AgentConfig",
    }
)
_UNION_TAG_PREFIXES = ("function-", "literal[", "list[", "union[", "constrained-")


def _clean_loc(loc: list[str]) -> list[str]:
    """Drop pydantic's union-member tags from a location, and the ``[key]`` it puts after
    a map's key that is refused (the key is the path)."""
    out = []
    for part in loc:
        if part in _UNION_TAGS or part.startswith(_UNION_TAG_PREFIXES) or part == "[key]":
            continue
        out.append(part)
    return out


def _collapse_unions(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """A value that fits no member of a union gets one message, not one per member.

    When a deeper problem exists (an unknown key inside an object member), the union's
    "expected ..." complaints about the object itself are noise and are dropped.
    """
    # every path that has a deeper problem below it (a set: one look-up a problem, where
    # comparing each path with all the others took minutes for thousands of unknown keys)
    above = {q[:i] for q in {p.path for p in problems} for i, c in enumerate(q) if c == "."}
    by_path: dict[str, list[ConfigProblem]] = {}
    for p in problems:
        if p.path and p.path in above and p.message.startswith("expected"):
            continue
        by_path.setdefault(p.path, []).append(p)
    out = []
    for path, items in by_path.items():
        if len(items) == 1:
            out.append(items[0])
            continue
        expected: list[str] = []
        got = ""
        others: list[str] = []
        for item in items:
            head, sep, tail = item.message.rpartition(", got ")
            if sep and head.startswith("expected "):
                what = head[len("expected ") :].replace("one of False", "false")
                if what not in expected:
                    expected.append(what)
                got = tail
            elif item.message not in others:
                others.append(item.message)
        msgs = others + ([f"expected {' or '.join(expected)}, got {got}"] if expected else [])
        out.append(ConfigProblem(path, "; ".join(msgs)))
    return out


def _value_at(data: Any, loc: list[str]) -> Any:
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def _model_of(annotation: Any) -> Any:
    from typing import get_args, get_origin

    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if origin is dict:
        return _DictOf(get_args(annotation)[1])
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


class _DictOf:
    def __init__(self, value: Any) -> None:
        self.value = value
        self.model_fields: dict[str, Any] = {}


def _model_at(loc: list[str], root: Any = Config) -> Any:
    """The model holding the key ``loc[-1]``, or None when there is none."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(model, _DictOf):
            model = _model_of(model.value)
            continue
        fields = getattr(model, "model_fields", None)
        if not fields:
            return None
        if part.isdigit() and part not in fields:  # an item of a list of models (steps.0)
            continue
        by_key = {info.alias or name: info for name, info in fields.items()}
        info = fields.get(part) or by_key.get(part)
        if info is None:
            return None
        model = _model_of(info.annotation)
        if model is None:
            return None
    return None if isinstance(model, _DictOf) else model


def _block_only_keys() -> frozenset[str]:
    """The keys of ``channels.wechat`` that no account may set (``store``, ``accounts``,
    ``defaultAccountId`` and its alias...)."""
    return frozenset(_known_keys(["x"], WechatConfig)) - frozenset(
        _known_keys(["x"], AccountConfig)
    )


def _known_keys(loc: list[str], root: Any = Config) -> list[str]:
    fields = getattr(_model_at(loc, root), "model_fields", {})
    names = []
    for name, info in fields.items():
        names.append(info.alias or name)
        alias = getattr(info, "validation_alias", None)
        for choice in getattr(alias, "choices", []) or []:
            if isinstance(choice, str):
                names.append(choice)
    return names


def _other_names(loc: list[str], root: Any = Config) -> list[str]:
    """Every name of the key ``loc[-1]`` is one name of (``defaultAccount``,
    ``defaultAccountId``), when it is an alias; else nothing."""
    fields = getattr(_model_at(loc, root), "model_fields", {})
    for info in fields.values():
        choices = getattr(info.validation_alias, "choices", None) or []
        if loc[-1] in choices:
            return sorted(c for c in choices if isinstance(c, str))
    return []


#: maps whose every value is a secret (an Authorization header, a token in a program's
#: environment): ``agent.headers``, ``mcpServers.<key>.headers`` and ``.env``
_SECRET_MAPS = frozenset({"headers", "env"})


def _is_secret(loc: list[str], root: Any = Config) -> bool:
    """Whether the value at ``loc`` (a dotted path, split) is a secret a message must not
    repeat: a key declared so (a ``SecretStr``, or ``repr=False`` as ``api.token``), or
    anything in a ``headers`` or ``env`` map.

    >>> _is_secret(["channels", "wechat", "agent", "mcpServers", "t", "env", "TOKEN"])
    True
    """
    model: Any = root
    field: Any = None
    for part in loc:
        if isinstance(model, _DictOf):  # (a map's key: an account's id, say)
            model, field = _model_of(model.value), None
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return False
        if part not in fields:
            if part.isdigit():  # an item of a list of models (webhooks.0)
                continue
            return False
        if part in _SECRET_MAPS:
            return True
        field = fields[part]
        model = _model_of(field.annotation)
    return field is not None and (not field.repr or _holds(field.annotation, SecretStr))


def _holds(annotation: Any, kind: type) -> bool:
    """Whether a type annotation is ``kind`` or has it as a member (``SecretStr | None``)."""
    from typing import get_args

    return annotation is kind or any(_holds(arg, kind) for arg in get_args(annotation))


def _message(err: Any, loc: list[str], root: Any = Config, *, list_known: bool = False) -> str:
    kind = err["type"]
    given = err.get("input")
    # a secret of the wrong type is still a secret: the message names its type only
    secret = _is_secret(loc, root)
    show = _type_name if secret else _show
    if kind == "extra_forbidden":
        names = _other_names(loc, root)
        if names:  # (a key's alias, beside the key: the one pydantic took is the other)
            return f"{' and '.join(names)} are two names of one key, and both are written: keep one"
        if _model_at(loc, root) is AccountConfig and loc[-1] in _block_only_keys():
            return (
                f"unknown key in an account: {loc[-1]} is written once, for every account: "
                f"move it to channels.wechat.{loc[-1]}"
            )
        known = _known_keys(loc, root)
        hint = did_you_mean(loc[-1], known)
        if not hint and list_known and known:
            return f"unknown key: use {', '.join(known)}"
        return f"unknown key{hint}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = re.findall(r"'([^']*)'", expected)
        options = "|".join(choices) or expected
        hint = did_you_mean(given, choices) if isinstance(given, str) and not secret else ""
        return f"expected one of {options}, got {show(given)}{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {show(given)}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {show(given)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {show(given)}"
    if kind == "string_type":
        return f"expected a string, got {show(given)}"
    # a block written as a string is most often its one secret (the Redis URL for store,
    # the token for api, an MCP server's URL with its key): named by its type only
    if kind == "list_type":
        return f"expected a list [...], got {_type_name(given)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected an object {{...}}, got {_type_name(given)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{err['msg'].lower()}, got {show(given)}"
    if kind == "value_error":
        return error_words(err)
    return f"{err['msg']}, got {show(given)}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _type_name(value: Any) -> str:
    return {
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "true/false",
        type(None): "null",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _with_lines(problems: list[ConfigProblem], lines: dict[str, int]) -> list[ConfigProblem]:
    out = []
    for p in problems:
        line = p.line
        if line is None:
            parts = p.path.split(".") if p.path else []
            while parts and ".".join(parts) not in lines:
                parts.pop()
            line = lines.get(".".join(parts)) if parts else None
        out.append(ConfigProblem(p.path, p.message, line))
    return out
