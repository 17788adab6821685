"""JSONL datasets for fine-tuning: chat SFT records and DPO preference records.

Two record kinds, one JSON object per line:

* ``sft``: ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``.
  An optional first system message, then user and assistant turns alternating,
  starting with a user turn and ending with an assistant turn.
* ``dpo``: TRL's preference formats, either *conversational*
  ``{"prompt": [messages ending with a user turn], "chosen": [one assistant message],
  "rejected": [one assistant message]}`` or *standard*
  ``{"prompt": "...", "chosen": "...", "rejected": "..."}``. One format per file.

Other top-level keys (ids, metadata) are allowed and passed through untouched.
Message objects may hold only ``role`` and ``content``.

:func:`load_jsonl` reads and validates a file and raises :class:`DataFileError`
(a :class:`ProjectError`) naming the file and the 1-based file line of every
problem, up to :data:`MAX_PROBLEMS` bad lines per run, so they can all be fixed
in one go.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..errors import ProjectError

Kind = Literal["sft", "dpo"]
KINDS: tuple[str, ...] = ("sft", "dpo")
ROLES: tuple[str, ...] = ("system", "user", "assistant")

#: Bad lines collected before :func:`load_jsonl` gives up and reports them.
MAX_PROBLEMS = 20
#: Problems shown per bad line (the rest are counted).
MAX_PROBLEMS_PER_LINE = 3

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Union tags: unusual names so they can be dropped from error locations.
_TAG_TEXT = "<text>"
_TAG_MESSAGES = "<messages>"
_TAGS = {_TAG_TEXT, _TAG_MESSAGES}


class DataFileError(ProjectError):
    """A dataset file the user must fix; lists every problem found (file:line: what)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        problems: list[tuple[int | None, str]],
        *,
        stopped_at: int | None = None,
    ) -> None:
        self.path = str(path)
        self.problems = problems
        self.stopped_at = stopped_at
        super().__init__(self._render())

    def __reduce__(self) -> tuple[Any, ...]:  # picklable despite the keyword-only argument
        return (_rebuild_error, (self.path, self.problems, self.stopped_at))

    def _render(self) -> str:
        lines = [
            f"{self.path}:{n}: {msg}" if n is not None else f"{self.path}: {msg}"
            for n, msg in self.problems
        ]
        if len(lines) == 1 and self.stopped_at is None:
            return lines[0]
        count = len(self.problems)
        if self.stopped_at is not None:
            head = (
                f"{self.path}: stopped at line {self.stopped_at} after {count} invalid lines "
                f"(there may be more); fix these and run again:"
            )
        else:
            head = f"{self.path}: {count} invalid lines; fix them and run again:"
        return "\n".join([head, *("  " + line for line in lines)])


def _rebuild_error(
    path: str, problems: list[tuple[int | None, str]], stopped_at: int | None
) -> DataFileError:
    return DataFileError(path, problems, stopped_at=stopped_at)


# --------------------------------------------------------------------------- models


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str

    @model_validator(mode="before")
    @classmethod
    def _sharegpt_hint(cls, data: Any) -> Any:
        if isinstance(data, dict) and "role" not in data and ("from" in data or "value" in data):
            raise PydanticCustomError(
                "sharegpt",
                "ShareGPT-style 'from'/'value' message; use 'role'/'content' "
                "with roles system, user, assistant",
            )
        return data

    @field_validator("content")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("empty_content", "empty content")
        return value


def _check_turns(messages: list[Message], *, field: str, last: str) -> None:
    """An optional system message, then user/assistant turns from user; ends with `last`."""
    if not messages:
        raise PydanticCustomError("empty_list", f"{field}: no messages (empty list)")
    expected = "user"
    for i, msg in enumerate(messages):
        if msg.role == "system":
            if i != 0:
                raise PydanticCustomError(
                    "turn_order", f"{field}[{i}]: a system message is only allowed first"
                )
            continue
        if msg.role != expected:
            prev = messages[i - 1].role if i else None
            after = f" after {prev!r}" if prev else " as the first turn"
            raise PydanticCustomError(
                "turn_order",
                f"{field}[{i}]: role {msg.role!r}{after}; expected {expected!r} "
                "(an optional first system message, then user and assistant alternating)",
            )
        expected = "assistant" if expected == "user" else "user"
    if messages[-1].role != last:
        if last == "assistant":
            raise PydanticCustomError(
                "last_role",
                f"{field}: the last message must be from the assistant "
                f"(got {messages[-1].role!r}); there is nothing to train on",
            )
        raise PydanticCustomError(
            "last_role",
            f"{field}: the prompt must end with a user message "
            f"(got {messages[-1].role!r}); chosen/rejected hold the assistant reply",
        )


class ChatRecord(BaseModel):
    """A chat SFT example: ``{"messages": [...]}``; extra top-level keys pass through."""

    model_config = ConfigDict(extra="allow", strict=True)

    messages: list[Message]

    @field_validator("messages")
    @classmethod
    def _turns(cls, messages: list[Message]) -> list[Message]:
        _check_turns(messages, field="messages", last="assistant")
        return messages


def _text_or_messages(value: Any) -> str | None:
    if isinstance(value, str):
        return _TAG_TEXT
    if isinstance(value, list):
        return _TAG_MESSAGES
    return None


TextOrMessages = Annotated[
    Annotated[str, Tag(_TAG_TEXT)] | Annotated[list[Message], Tag(_TAG_MESSAGES)],
    Discriminator(
        _text_or_messages,
        custom_error_type="text_or_messages",
        custom_error_message="expected a string or a list of messages",
    ),
]


class PreferenceRecord(BaseModel):
    """A DPO preference pair in TRL's conversational or standard format."""

    model_config = ConfigDict(extra="allow", strict=True)

    prompt: TextOrMessages
    chosen: TextOrMessages
    rejected: TextOrMessages

    @model_validator(mode="after")
    def _consistent(self) -> PreferenceRecord:
        fields = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        kinds = {name: isinstance(value, str) for name, value in fields.items()}
        if len(set(kinds.values())) > 1:
            strings = [n for n, is_str in kinds.items() if is_str]
            lists = [n for n, is_str in kinds.items() if not is_str]
            raise PydanticCustomError(
                "mixed_format",
                f"mixed formats: {', '.join(strings)} "
                f"{'is a string' if len(strings) == 1 else 'are strings'} "
                f"but {', '.join(lists)} {'is a list' if len(lists) == 1 else 'are lists'} "
                "of messages; "
                "use all strings (standard) or all message lists (conversational)",
            )
        if isinstance(self.prompt, str):
            for name, value in fields.items():
                if not value.strip():
                    raise PydanticCustomError("empty_content", f"{name}: empty text")
        else:
            _check_turns(self.prompt, field="prompt", last="user")
            for name in ("chosen", "rejected"):
                value = fields[name]
                if len(value) != 1 or value[0].role != "assistant":
                    roles = [m.role for m in value]
                    raise PydanticCustomError(
                        "completion_shape",
                        f"{name}: expected exactly one assistant message, got roles {roles}",
                    )
        if _completion_text(self.chosen) == _completion_text(self.rejected):
            raise PydanticCustomError(
                "identical_pair", "chosen and rejected are identical; the pair teaches nothing"
            )
        return self

    @property
    def conversational(self) -> bool:
        return not isinstance(self.prompt, str)


def _completion_text(value: str | list[Message]) -> str:
    return value if isinstance(value, str) else "\n".join(m.content for m in value)


_MODELS: dict[str, type[BaseModel]] = {"sft": ChatRecord, "dpo": PreferenceRecord}


# --------------------------------------------------------------------------- errors → text


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if part in _TAGS:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(err: dict[str, Any]) -> str:
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    path = _loc(loc)
    field = loc[-1] if loc else ""
    at = f"{path}: " if path else ""
    if kind == "extra_forbidden":
        return f"{path}: unknown field in a message (messages hold only 'role' and 'content')"
    if kind == "literal_error" and field == "role":
        return f"{path}: unknown role {_short(value)} (expected one of: {', '.join(ROLES)})"
    if kind in ("string_type", "string_sub_type"):
        return f"{at}expected a string, got {_json_type(value)}"
    if kind == "list_type":
        return f"{at}expected a list of messages, got {_json_type(value)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{at}expected an object with 'role' and 'content', got {_json_type(value)}"
    if kind == "text_or_messages":
        return f"{at}expected a string or a list of messages, got {_json_type(value)}"
    msg = err["msg"]
    # Our own turn and record checks name their location in the message already.
    return msg if not path or msg.startswith(path) else f"{at}{msg}"


def _missing_text(parent: tuple[Any, ...], names: list[str]) -> str:
    where = f"{_loc(parent)}: " if _loc(parent) else ""
    label = "field" if len(names) == 1 else "fields"
    return f"{where}missing {label} {', '.join(repr(n) for n in names)}"


def _hint(obj: dict[str, Any], kind: str) -> str:
    keys = set(obj)
    if kind == "sft" and "messages" not in keys:
        if {"chosen", "rejected"} <= keys:
            return " (this looks like a preference record: is the file meant for kind 'dpo'?)"
        if "conversations" in keys:
            return (
                " (ShareGPT 'conversations' is not supported; rename it to 'messages' "
                "with role/content)"
            )
        if {"prompt", "completion"} <= keys:
            return " (prompt/completion records are not supported; convert them to 'messages')"
    if kind == "dpo" and "messages" in keys and not keys & {"prompt", "chosen", "rejected"}:
        return " (this looks like a chat SFT record: is the file meant for kind 'sft'?)"
    if kind == "dpo" and "prompt" not in keys and {"chosen", "rejected"} <= keys:
        return (
            " (the implicit-prompt format is not supported; move the shared turns into 'prompt'"
            " and keep one assistant message in chosen/rejected)"
        )
    return ""


def check_record(obj: Any, kind: Kind) -> list[str]:
    """Problems with one parsed record (empty list: valid). No file or line in the text."""
    if kind not in _MODELS:
        raise ProjectError(f"unknown dataset kind {kind!r}; expected one of: {', '.join(KINDS)}")
    if not isinstance(obj, dict):
        return [f"expected a JSON object, got {_json_type(obj)}"]
    try:
        _MODELS[kind].model_validate(obj)
    except ValidationError as exc:
        # One entry per problem, in pydantic's order; missing fields of one object merged.
        entries: list[str | tuple[Any, ...]] = []
        missing: dict[tuple[Any, ...], list[str]] = {}
        for err in exc.errors(include_url=False):
            if err["type"] == "missing":
                parent = tuple(err["loc"][:-1])
                if parent not in missing:
                    entries.append(parent)
                missing.setdefault(parent, []).append(str(err["loc"][-1]))
            else:
                entries.append(_describe(err))
        problems = [e if isinstance(e, str) else _missing_text(e, missing[e]) for e in entries]
        hint = _hint(obj, kind)
        if hint:
            problems[0] += hint
        return problems
    return []


def _format_of(obj: dict[str, Any]) -> str:
    return (
        "standard (strings)"
        if isinstance(obj.get("prompt"), str)
        else "conversational (message lists)"
    )


# --------------------------------------------------------------------------- files


def _check_path(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix != ".jsonl":
        shown = path.suffix or "no suffix"
        if suffix == ".json":
            how = (
                "if it already holds one JSON object per line, rename it to .jsonl; "
                "convert a JSON array with: jq -c '.[]' in.json > out.jsonl"
            )
        elif suffix == ".parquet":
            how = (
                'convert it with: python -c "import pandas as pd; '
                "pd.read_parquet('in.parquet').to_json('out.jsonl', orient='records', lines=True, "
                'force_ascii=False)"'
            )
        elif suffix in (".gz", ".zst", ".bz2", ".xz", ".zip"):
            how = "decompress it to a plain .jsonl file first"
        else:
            how = "write one JSON object per line to a .jsonl file"
        raise ProjectError(f"{path}: only JSONL files (.jsonl) are supported, got {shown}; {how}")
    if not path.exists():
        raise ProjectError(f"{path}: file not found")
    if path.is_dir():
        raise ProjectError(f"{path}: is a directory, expected a .jsonl file")


def load_jsonl(
    path: str | os.PathLike[str],
    kind: Kind,
    *,
    skipped: list[tuple[int, str]] | None = None,
) -> list[dict[str, Any]]:
    """Read and validate a JSONL dataset of `kind` ("sft" or "dpo").

    Returns the records as parsed (extra top-level keys kept). Blank lines are
    skipped; line numbers in errors are 1-based file lines. Raises
    :class:`DataFileError` listing up to :data:`MAX_PROBLEMS` bad lines, or
    :class:`ProjectError` for a wrong suffix, a missing or empty file. Given a
    `skipped` list, bad lines are left out and appended to it as (line, problems)
    instead: data from elsewhere, where a few bad records must not stop the rest.
    """
    if kind not in _MODELS:
        raise ProjectError(f"unknown dataset kind {kind!r}; expected one of: {', '.join(KINDS)}")
    path = Path(path)
    _check_path(path)
    records: list[dict[str, Any]] = []
    problems: list[tuple[int | None, str]] = []
    first_format: tuple[int, str] | None = None  # (line, format) of the first valid DPO record
    stopped_at: int | None = None

    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1:
                if raw.startswith(_UTF16_BOMS):
                    raise DataFileError(
                        path,
                        [
                            (
                                1,
                                "the file is UTF-16 encoded (byte-order mark at the "
                                "start); save it as UTF-8 without a BOM",
                            )
                        ],
                    )
                if raw.startswith(_UTF8_BOM):
                    problems.append(
                        (
                            1,
                            "the file starts with a UTF-8 byte-order mark (BOM); "
                            "save it as UTF-8 without a BOM",
                        )
                    )
                    raw = raw[len(_UTF8_BOM) :]
            if not raw.strip():
                continue
            obj, line_problems = _check_line(raw, kind)
            if not line_problems:
                if kind == "dpo":
                    fmt = _format_of(obj)
                    if first_format is None:
                        first_format = (lineno, fmt)
                    elif fmt != first_format[1]:
                        line_problems = [
                            f"{fmt} preference format, but line {first_format[0]} uses the "
                            f"{first_format[1]} format; use one format per file"
                        ]
                if not line_problems:
                    records.append(obj)
                    continue
            if skipped is not None:
                skipped.append((lineno, "; ".join(line_problems)))
                continue
            _add(problems, lineno, line_problems)
            if len(problems) >= MAX_PROBLEMS:
                stopped_at = lineno
                break

    if problems:
        raise DataFileError(path, problems, stopped_at=stopped_at)
    if not records:
        what = "contains only blank lines" if path.stat().st_size else "is empty"
        raise DataFileError(path, [(None, f"the file {what}; expected one JSON object per line")])
    return records


def _add(problems: list[tuple[int | None, str]], lineno: int, line_problems: list[str]) -> None:
    """Record the problems of one line as one entry, merging with a BOM entry on line 1."""
    shown = line_problems[:MAX_PROBLEMS_PER_LINE]
    text = "; ".join(shown)
    if len(line_problems) > len(shown):
        text += f" (and {len(line_problems) - len(shown)} more on this line)"
    if problems and problems[-1][0] == lineno:
        problems[-1] = (lineno, f"{problems[-1][1]}; {text}")
    else:
        problems.append((lineno, text))


def _check_line(raw: bytes, kind: Kind) -> tuple[Any, list[str]]:
    """Decode, parse and validate one non-blank line: (parsed object, problems)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start]
        return None, [
            f"not valid UTF-8 (byte 0x{byte:02X} at byte {exc.start + 1} of the line); "
            "save the file as UTF-8"
        ]
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [f"invalid JSON: {exc.msg} at column {exc.colno}"]
    except RecursionError:
        return None, ["invalid JSON: nested too deeply"]
    return obj, check_record(obj, kind)


def write_jsonl(records: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write records as UTF-8 JSONL (atomically: temp file + rename). Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False))
                fh.write("\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
