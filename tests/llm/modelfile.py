"""Ollama's Modelfile, read the way `ollama create` reads it, and its TEMPLATE rendered.

`parse_modelfile(text)` follows Ollama's parser (ollama/ollama, parser/parser.go): one
instruction a line, case-insensitive, `#` comments on lines of their own; a value runs to the
end of its line unless it opens a quote, `"..."` or `\"\"\"...\"\"\"`, which may span lines and
is taken verbatim between the quotes (nothing may follow the closing quotes on their line);
`PARAMETER <name> <value>`; `MESSAGE <system|user|assistant> <content>`. It refuses what
Ollama refuses (an unknown instruction, a message role, an unterminated quote, no FROM) and,
stricter than Ollama, what Ollama would silently ignore or overwrite: an unknown or deprecated
PARAMETER, a value of the wrong type, a second TEMPLATE, SYSTEM or ADAPTER.

`render_go_template(template, data)` renders the subset of Go's text/template that chat
templates use (`{{ .Field }}`, `$.Field`, `if`/`else if`/`else`, `range`, `eq`/`ne`/`not`/
`and`/`or`, string literals, `{{-`/`-}}` trimming) and refuses anything else, so that a test
can compare a Modelfile's TEMPLATE with the Jinja chat template the model was trained with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Every instruction Ollama's parser accepts (FROM is stored as "model").
INSTRUCTIONS = frozenset(
    {"from", "adapter", "template", "system", "parameter", "license", "message", "requires"}
    | {"draft", "renderer", "parser"}
)
ROLES = frozenset({"system", "user", "assistant"})
# PARAMETER names of Ollama's api.Options, with the type a value must parse as.
PARAMETERS: dict[str, type] = {
    **dict.fromkeys(
        ["num_ctx", "num_batch", "num_gpu", "main_gpu", "num_thread", "num_keep", "seed"], int
    ),
    **dict.fromkeys(["num_predict", "draft_num_predict", "top_k", "repeat_last_n"], int),
    **dict.fromkeys(["temperature", "top_p", "min_p", "typical_p", "repeat_penalty"], float),
    **dict.fromkeys(["presence_penalty", "frequency_penalty"], float),
    "use_mmap": bool,
    "stop": str,
}
# Accepted by Ollama with a warning, and ignored.
DEPRECATED_PARAMETERS = frozenset(
    {"penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock"}
    | {"mirostat", "mirostat_tau", "mirostat_eta"}
)
SINGLE = ("template", "system", "adapter")


class ModelfileError(ValueError):
    """A Modelfile that `ollama create` refuses (or, stricter, that does not do what it says)."""


@dataclass
class Modelfile:
    commands: list[tuple[str, str]] = field(default_factory=list)  # (instruction, value)

    def values(self, name: str) -> list[str]:
        return [value for command, value in self.commands if command == name]

    @property
    def base(self) -> str:
        return self.values("from")[0]

    @property
    def adapter(self) -> str | None:
        return next(iter(self.values("adapter")), None)

    @property
    def template(self) -> str | None:
        return next(iter(self.values("template")), None)

    @property
    def system(self) -> str | None:
        return next(iter(self.values("system")), None)

    @property
    def parameters(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for command, value in self.commands:
            if command.startswith("parameter:"):
                found.setdefault(command.partition(":")[2], []).append(value)
        return found

    @property
    def messages(self) -> list[tuple[str, str]]:
        return [tuple(v.split(": ", 1)) for v in self.values("message")]  # type: ignore[misc]


def _unquote(value: str) -> tuple[str, bool]:
    """Ollama's unquote: (value, complete). An open quote is incomplete."""
    if value.startswith('"""'):
        if len(value) >= 6 and value.endswith('"""'):
            return value[3:-3], True
        return "", False
    if value.startswith('"'):
        if len(value) >= 2 and value.endswith('"'):
            return value[1:-1], True
        return "", False
    return value, True


def parse_modelfile(text: str) -> Modelfile:
    modelfile = Modelfile()
    lines = text.removeprefix("\ufeff").splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        i += 1
        stripped = line.strip(" \t\r\n")
        if not stripped or stripped.startswith("#"):
            continue
        head = re.match(r"[ \t]*([A-Za-z]+)([ \t]+|$)", line.rstrip("\r\n"))
        if not head or not head.group(2):
            raise ModelfileError(f"line {number}: not an instruction: {stripped[:40]!r}")
        name = head.group(1).lower()
        if name not in INSTRUCTIONS:
            raise ModelfileError(f"line {number}: unknown instruction {head.group(1)}")
        rest = line[head.end() :]
        if name == "parameter":
            key = re.match(r"([A-Za-z0-9_]+)[ \t]+", rest)
            if not key:
                raise ModelfileError(f"line {number}: PARAMETER needs a name and a value")
            name, rest = f"parameter:{key.group(1)}", rest[key.end() :]
        elif name == "message":
            role = re.match(r"([A-Za-z]+)[ \t]+", rest)
            if not role or role.group(1) not in ROLES:
                raise ModelfileError(
                    f"line {number}: MESSAGE role must be one of {', '.join(sorted(ROLES))}"
                )
            prefix, rest = f"{role.group(1)}: ", rest[role.end() :]
        # The value: up to a line end where its quotes are closed.
        buffer = rest
        value, complete = _unquote(buffer.strip(" \t\r\n"))
        while not complete and i < len(lines):
            buffer += lines[i]
            i += 1
            value, complete = _unquote(buffer.strip(" \t\r\n"))
        if not complete:
            raise ModelfileError(f"line {number}: {name.upper()}: quote opened and never closed")
        if name == "message":
            value = prefix + value
        modelfile.commands.append((name, value))
    _validate(modelfile)
    return modelfile


def _validate(modelfile: Modelfile) -> None:
    if not modelfile.values("from"):
        raise ModelfileError("no FROM line")
    for name in SINGLE:
        if len(modelfile.values(name)) > 1:
            raise ModelfileError(f"{name.upper()} given {len(modelfile.values(name))} times")
    for name, values in modelfile.parameters.items():
        if name in DEPRECATED_PARAMETERS:
            raise ModelfileError(f"PARAMETER {name} is deprecated: Ollama ignores it")
        if name not in PARAMETERS:
            raise ModelfileError(f"unknown PARAMETER {name}")
        kind = PARAMETERS[name]
        if kind is not str and len(values) > 1:
            raise ModelfileError(f"PARAMETER {name} given {len(values)} times")
        for value in values:
            try:
                if kind is bool:
                    if value.lower() not in ("true", "false"):
                        raise ValueError(value)
                else:
                    kind(value)
            except ValueError:
                raise ModelfileError(
                    f"PARAMETER {name} {value!r} is not a {kind.__name__}"
                ) from None


# ------------------------------------------------------------------ Go templates


class GoTemplateError(ValueError):
    pass


_ACTION = re.compile(r"\{\{(-[ \t\r\n])?(.*?)([ \t\r\n]-)?\}\}", re.S)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\(|\)|[^\s()]+')


def _tokens(template: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", s), with the trim markers applied to the texts around."""
    parts: list[tuple[str, str]] = []
    position, trim_next = 0, False
    for match in _ACTION.finditer(template):
        text = template[position : match.start()]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if match.group(1):
            text = text.rstrip(" \t\r\n")
        parts.append(("text", text))
        parts.append(("action", match.group(2).strip()))
        position, trim_next = match.end(), bool(match.group(3))
    text = template[position:]
    parts.append(("text", text.lstrip(" \t\r\n") if trim_next else text))
    return parts


@dataclass
class _Node:
    kind: str  # text, print, if, range
    value: str = ""
    body: list[_Node] = field(default_factory=list)
    orelse: list[_Node] = field(default_factory=list)


def _parse(tokens: list[tuple[str, str]], i: int, closers: tuple[str, ...]):
    nodes: list[_Node] = []
    while i < len(tokens):
        kind, value = tokens[i]
        i += 1
        if kind == "text":
            if value:
                nodes.append(_Node("text", value))
            continue
        word = value.split(None, 1)[0] if value else ""
        if word in closers or (word == "else" and "else" in closers):
            return nodes, i - 1
        if word in ("if", "range"):
            node, i = _parse_block(word, value[len(word) :].strip(), tokens, i)
            nodes.append(node)
        elif word in ("end", "else", "with", "define", "template", "block", "break", "continue"):
            raise GoTemplateError(f"unsupported or misplaced action {{{{ {value} }}}}")
        else:
            nodes.append(_Node("print", value))
    if closers:
        raise GoTemplateError(f"missing {{{{ end }}}} (expected {' or '.join(closers)})")
    return nodes, i


def _parse_block(word: str, condition: str, tokens, i: int) -> tuple[_Node, int]:
    """`if`/`range` up to its `end`; `else if` chains share that one `end`."""
    node = _Node(word, condition)
    node.body, i = _parse(tokens, i, ("end", "else"))
    closing = tokens[i][1]
    if word == "if" and re.match(r"else\s+if\s", closing):
        inner, i = _parse_block("if", closing.split(None, 2)[2], tokens, i + 1)
        node.orelse = [inner]
        return node, i
    if closing == "else":
        node.orelse, i = _parse(tokens, i + 1, ("end",))
    return node, i + 1


def _evaluate(expression: str, dot: Any, root: Any) -> Any:
    words = _TOKEN.findall(expression)
    if not words:
        raise GoTemplateError("empty action")
    functions = {
        "eq": lambda a, *b: any(a == x for x in b),
        "ne": lambda a, b: a != b,
        "not": lambda a: not _truth(a),
        "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
        "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
        "len": len,
    }
    if words[0] in functions:
        return functions[words[0]](*[_operand(w, dot, root) for w in words[1:]])
    if len(words) != 1:
        raise GoTemplateError(f"unsupported pipeline {expression!r}")
    return _operand(words[0], dot, root)


def _operand(word: str, dot: Any, root: Any) -> Any:
    if word.startswith('"'):
        return bytes(word[1:-1], "utf-8").decode("unicode_escape")
    if word == ".":
        return dot
    if word.startswith("$."):
        base, path = root, word[2:]
    elif word.startswith("."):
        base, path = dot, word[1:]
    else:
        raise GoTemplateError(f"unsupported operand {word!r}")
    for name in path.split("."):
        if not isinstance(base, dict) or name not in base:
            raise GoTemplateError(f"can't evaluate field {name}")
        base = base[name]
    return base


def _truth(value: Any) -> bool:
    return bool(value)


def _render(nodes: list[_Node], dot: Any, root: Any) -> str:
    out = []
    for node in nodes:
        if node.kind == "text":
            out.append(node.value)
        elif node.kind == "print":
            value = _evaluate(node.value, dot, root)
            out.append("" if value is None else str(value))
        elif node.kind == "if":
            branch = node.body if _truth(_evaluate(node.value, dot, root)) else node.orelse
            out.append(_render(branch, dot, root))
        elif node.kind == "range":
            items = _evaluate(node.value, dot, root) or []
            if items:
                out.extend(_render(node.body, item, root) for item in items)
            else:
                out.append(_render(node.orelse, dot, root))
    return "".join(out)


def render_go_template(template: str, data: dict[str, Any]) -> str:
    nodes, _ = _parse(_tokens(template), 0, ())
    return _render(nodes, data, data)


def ollama_chat_values(messages: list[dict[str, str]], system: str | None) -> dict[str, Any]:
    """What Ollama hands a chat template: the Modelfile's SYSTEM as a first message when the
    request has none (server/prompt.go), then system messages joined into .System, consecutive
    messages of one role merged (template.collate)."""
    if system and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": system}, *messages]
    systems = [m["content"] for m in messages if m["role"] == "system"]
    collated: list[dict[str, str]] = []
    for message in messages:
        if collated and collated[-1]["Role"] == message["role"]:
            collated[-1]["Content"] += "\n\n" + message["content"]
        else:
            collated.append({"Role": message["role"], "Content": message["content"]})
    return {"System": "\n\n".join(systems), "Messages": collated, "Tools": None, "Response": ""}
