#!/usr/bin/env python3
"""The command-line flags `vllm serve` accepts in one vLLM release, read from its source.

vLLM cannot be installed where the project's tests run (it needs CUDA wheels of several GB), so
the flags are not taken from `vllm serve --help` but from the release's Python source, parsed
with `ast` and never imported:

* `vllm/entrypoints/cli/serve.py` says which `make_arg_parser` builds the serve parser
  (vllm/entrypoints/openai/cli_args.py in v0.11, vllm/entrypoints/common/cli_args.py in
  v0.33: both are read);
* `make_arg_parser` adds a few flags itself (`--headless`, `--api-server-count`, `--config`),
  then calls `FrontendArgs.add_cli_args` (one `--kebab-case` flag per field of the
  `FrontendArgs` dataclass: `--port`, `--chat-template`, `--lora-modules`, ...) and
  `AsyncEngineArgs.add_cli_args`, which calls `EngineArgs.add_cli_args` (vllm/engine/
  arg_utils.py): explicit `add_argument("--served-model-name", **model_kwargs[...])` calls,
  whose keyword arguments come from `get_kwargs(<Config dataclass>)`.
* A boolean field (`bool`, `bool | None`, not `bool | str | None`) or an explicit
  `action=argparse.BooleanOptionalAction` gets `--no-<flag>` too; from the releases whose
  FlexibleArgumentParser registers `EnableDisableAction`, `--enable-x` also gets `--disable-x`
  (and the reverse).

Followed: calls `<Class>.add_cli_args(parser)` (through base classes, `cls` bound to the
class called), `for key, value in <kwargs>.items()` loops over a dataclass's fields
(`f"--{key.replace('_', '-')}"`, extra `flags` set on a field), `get_kwargs(Cls)["field"]`
and `{**kwargs["field"], ...}` spreads. Not followed: flags a platform plugin or a general
plugin adds at run time (`current_platform.pre_register_and_update`, `load_general_plugins`):
they depend on the machine, not on the release.

Sources (one of):
  --source DIR            an unpacked release: a git checkout at the tag, an sdist, or a wheel
                          unzipped (the wheel holds the .py files and vllm/_version.py)
  --wheel FILE            a release wheel, read in place (pip download --no-deps vllm==X)
  --git-dir DIR --ref REF a bare clone (e.g. the search tool's snapshot), read with git show

Usage (from the repository root; the wheel: `pip download --no-deps --only-binary :all:
vllm==0.33.0`, read in place, never installed):
  python tools/vllm_flags.py --wheel vllm-0.33.0-*.whl -o tests/llm/vllm-flags-0.33.0.json \
      --metrics tests/llm/vllm-metrics-0.33.0.json \
      --quantizations tests/llm/vllm-quantizations-0.33.0.json
prints the release and source ref on stderr, writes the sorted JSON list of flags (and, with
--metrics, of the Prometheus series the release exports: `metric_names`; with
--quantizations, the methods `--quantization` takes: `quantization_methods`).

The template's tests (tests/test_llm_artifacts.py, with tests/llm/vllm.py) check every flag a
generated Deployment or image gives `vllm serve` against these lists. Bumping vLLM: change the
FROM tag of template/deploy/docker/*vllm.Dockerfile*, regenerate the three files under the new
version's names and VLLM_RELEASE in tests/llm/vllm.py.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SERVE_MODULE = "vllm.entrypoints.cli.serve"
# Where make_arg_parser lived, should serve.py not say (oldest first).
PARSER_MODULES = ("vllm.entrypoints.openai.cli_args", "vllm.entrypoints.common.cli_args")
ARGPARSE_UTILS = ("vllm.utils.argparse_utils", "vllm.utils")


# ------------------------------------------------------------------ reading a release


class Source(ABC):
    """The files of one vLLM release, by path inside the repository (vllm/engine/...): an
    unpacked tree, a wheel, or a tag of a bare git repository (the subclasses below)."""

    @abstractmethod
    def read(self, path: str) -> str | None:
        """The file's text, None when the release has no such file."""

    @abstractmethod
    def paths(self) -> list[str]:
        """Every Python file under vllm/."""

    @abstractmethod
    def describe(self) -> str:
        """Where the release was read from, for the output's header."""


class DirSource(Source):
    def __init__(self, root: Path):
        self.root = root

    def read(self, path: str) -> str | None:
        file = self.root / path
        return file.read_text(encoding="utf-8") if file.is_file() else None

    def paths(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in (self.root / "vllm").rglob("*.py"))

    def describe(self) -> str:
        return f"directory {self.root}"


class WheelSource(Source):
    def __init__(self, wheel: Path):
        self.wheel = wheel
        self.zip = zipfile.ZipFile(wheel)
        self.names = set(self.zip.namelist())

    def read(self, path: str) -> str | None:
        return self.zip.read(path).decode("utf-8") if path in self.names else None

    def paths(self) -> list[str]:
        return sorted(n for n in self.names if n.startswith("vllm/") and n.endswith(".py"))

    def describe(self) -> str:
        return f"wheel {self.wheel.name}"


class GitSource(Source):
    def __init__(self, git_dir: Path, ref: str):
        self.git_dir, self.ref = git_dir, ref

    def read(self, path: str) -> str | None:
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "show", f"{self.ref}:{path}"],
            capture_output=True,
            text=True,
        )
        return done.stdout if done.returncode == 0 else None

    def paths(self) -> list[str]:
        done = subprocess.run(
            [
                "git",
                "--git-dir",
                str(self.git_dir),
                "ls-tree",
                "-r",
                "--name-only",
                self.ref,
                "vllm/",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return sorted(p for p in done.stdout.splitlines() if p.endswith(".py"))

    def describe(self) -> str:
        commit = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "rev-parse", f"{self.ref}^{{commit}}"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return f"git {self.ref} ({commit or 'unknown commit'})"


def release_of(source: Source) -> tuple[str, str | None]:
    """(version, commit) from vllm/_version.py (wheels, sdists), else ('unknown', None)."""
    text = source.read("vllm/_version.py") or ""
    version = re.search(r"__version__\s*=\s*version\s*=\s*['\"]([^'\"]+)['\"]", text)
    commit = re.search(r"__commit_id__\s*=\s*commit_id\s*=\s*['\"]g?([0-9a-f]+)['\"]", text)
    return (version.group(1) if version else "unknown", commit.group(1) if commit else None)


# ------------------------------------------------------------------ modules and classes


@dataclass
class Module:
    name: str
    tree: ast.Module
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    aliases: dict[str, ast.expr] = field(default_factory=dict)  # X = <type expression>
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # local -> (module, name)


@dataclass(frozen=True)
class ClassRef:
    module: str
    name: str


class Project:
    """Lazily parsed modules of the release, and name resolution across their imports."""

    def __init__(self, source: Source):
        self.source = source
        self.modules: dict[str, Module | None] = {}

    def module(self, name: str) -> Module | None:
        if name not in self.modules:
            base = name.replace(".", "/")
            text = self.source.read(f"{base}.py") or self.source.read(f"{base}/__init__.py")
            self.modules[name] = None if text is None else self._index(name, text)
        return self.modules[name]

    def _index(self, name: str, text: str) -> Module:
        tree = ast.parse(text)
        module = Module(name, tree)
        package = name if self._is_package(name) else name.rpartition(".")[0]
        for node in ast.walk(tree):  # imports inside functions and TYPE_CHECKING blocks too
            if isinstance(node, ast.ImportFrom):
                origin = self._absolute(package, node.module or "", node.level)
                for alias in node.names:
                    module.imports.setdefault(alias.asname or alias.name, (origin, alias.name))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                module.classes[node.name] = node
            elif isinstance(node, ast.FunctionDef):
                module.functions[node.name] = node
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    module.aliases[target.id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if node.value is not None:
                    module.aliases[node.target.id] = node.value
            elif getattr(ast, "TypeAlias", None) and isinstance(node, ast.TypeAlias):
                module.aliases[node.name.id] = node.value
        return module

    def _is_package(self, name: str) -> bool:
        return self.source.read(name.replace(".", "/") + "/__init__.py") is not None

    @staticmethod
    def _absolute(package: str, module: str, level: int) -> str:
        if not level:
            return module
        parts = package.split(".")
        base = parts[: len(parts) - (level - 1)]
        return ".".join(base + ([module] if module else []))

    def resolve(self, module_name: str, name: str, depth: int = 0) -> tuple[str, str] | None:
        """Where `name`, as seen from `module_name`, is defined: (module, name)."""
        module = self.module(module_name)
        if module is None or depth > 10:
            return None
        if name in module.classes or name in module.functions or name in module.aliases:
            return module_name, name
        if name in module.imports:
            origin, original = module.imports[name]
            return self.resolve(origin, original, depth + 1)
        return None

    def class_ref(self, module_name: str, name: str) -> ClassRef | None:
        found = self.resolve(module_name, name)
        if found and found[1] in (self.module(found[0]) or Module("", ast.Module([], []))).classes:
            return ClassRef(*found)
        return None

    def class_node(self, ref: ClassRef) -> ast.ClassDef:
        return self.module(ref.module).classes[ref.name]  # type: ignore[union-attr]

    def mro(self, ref: ClassRef) -> list[ClassRef]:
        """The class and its bases found in the release (depth first, like a simple MRO)."""
        order, stack = [], [ref]
        while stack:
            current = stack.pop(0)
            if current in order:
                continue
            order.append(current)
            for base in self.class_node(current).bases:
                name = base.id if isinstance(base, ast.Name) else None
                parent = self.class_ref(current.module, name) if name else None
                if parent:
                    stack.append(parent)
        return order

    def method(self, ref: ClassRef, name: str) -> tuple[ClassRef, ast.FunctionDef] | None:
        for owner in self.mro(ref):
            for node in self.class_node(owner).body:
                if isinstance(node, ast.FunctionDef) and node.name == name:
                    return owner, node
        return None

    def fields(self, ref: ClassRef) -> dict[str, tuple[str, ast.expr]]:
        """Dataclass fields, bases first: name -> (defining module, annotation)."""
        found: dict[str, tuple[str, ast.expr]] = {}
        for owner in reversed(self.mro(ref)):
            for node in self.class_node(owner).body:
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    if "ClassVar" in ast.unparse(node.annotation):
                        continue
                    found[node.target.id] = (owner.module, node.annotation)
        return found

    # ------------------------------------------------------------------ types

    def type_atoms(self, module_name: str, annotation: ast.expr, depth: int = 0) -> set[str]:
        """The members of a field's type union, as names: {'bool', 'None', 'str', 'Literal'}."""
        if depth > 8:
            return set()
        if isinstance(annotation, ast.Constant):
            if annotation.value is None:
                return {"None"}
            if isinstance(annotation.value, str):  # a string annotation
                return self.type_atoms(module_name, ast.parse(annotation.value, mode="eval").body)
            return set()
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
            return self.type_atoms(module_name, annotation.left, depth + 1) | self.type_atoms(
                module_name, annotation.right, depth + 1
            )
        if isinstance(annotation, ast.Subscript):
            head = _dotted(annotation.value).rpartition(".")[2]
            inner = annotation.slice
            members = inner.elts if isinstance(inner, ast.Tuple) else [inner]
            if head in ("Optional", "Union"):
                atoms = {"None"} if head == "Optional" else set()
                for member in members:
                    atoms |= self.type_atoms(module_name, member, depth + 1)
                return atoms
            if head == "Annotated":
                return self.type_atoms(module_name, members[0], depth + 1)
            return {head}
        name = _dotted(annotation).rpartition(".")[2]
        if not name:
            return set()
        if name in ("bool", "str", "int", "float", "dict", "list", "tuple", "set", "None"):
            return {name}
        found = self.resolve(module_name, name)
        if found:
            module = self.module(found[0])
            if module and found[1] in module.aliases and found[1] not in module.classes:
                return self.type_atoms(found[0], module.aliases[found[1]], depth + 1)
        return {name}

    def is_boolean(self, module_name: str, annotation: ast.expr) -> bool:
        """What get_kwargs gives BooleanOptionalAction: bool in the union, not bool|str|None."""
        atoms = self.type_atoms(module_name, annotation)
        return "bool" in atoms and (atoms - {"None"}) != {"bool", "str"}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


# ------------------------------------------------------------------ reading the parser


@dataclass(frozen=True)
class KwargsOf:
    """`get_kwargs(cls)`: every field's argparse keywords."""

    cls: ClassRef


@dataclass(frozen=True)
class FieldKwargs:
    """`get_kwargs(cls)["field"]`: one field's argparse keywords."""

    cls: ClassRef
    name: str


@dataclass(frozen=True)
class LoopField:
    """The loop variables of `for key, value in get_kwargs(cls).items()`."""

    cls: ClassRef


@dataclass
class Flags:
    options: set[str] = field(default_factory=set)
    negatable: set[str] = field(default_factory=set)  # --x that BooleanOptionalAction doubles


class ParserReader:
    """Walks the functions that build the serve parser and collects their option strings."""

    def __init__(self, project: Project):
        self.project = project
        self.flags = Flags()
        self.visited: set[tuple[str, str, str]] = set()

    def function(self, module: str, node: ast.FunctionDef, cls: ClassRef | None) -> None:
        key = (module, node.name, f"{cls}")
        if key in self.visited:
            return
        self.visited.add(key)
        env: dict[str, object] = {}
        overrides = self._overrides(node, cls)
        for statement in _statements(node.body):
            self._statement(module, statement, env, cls, overrides)

    # Assignments `kwargs["field"]["action"|"flags"] = ...` in the function and in the
    # customising methods of the class whose fields a loop adds.
    def _overrides(self, node: ast.AST, cls: ClassRef | None) -> dict[tuple[str, str], ast.expr]:
        found: dict[tuple[str, str], ast.expr] = {}
        scopes = [node]
        if cls is not None:
            for owner in self.project.mro(cls):
                scopes += [
                    n for n in self.project.class_node(owner).body if isinstance(n, ast.FunctionDef)
                ]
        for scope in scopes:
            for sub in ast.walk(scope):
                if isinstance(sub, ast.Assign) and len(sub.targets) == 1:
                    target = sub.targets[0]
                    if (
                        isinstance(target, ast.Subscript)
                        and isinstance(target.value, ast.Subscript)
                        and isinstance(target.slice, ast.Constant)
                        and isinstance(target.value.slice, ast.Constant)
                        and target.slice.value in ("action", "flags")
                    ):
                        found.setdefault((target.value.slice.value, target.slice.value), sub.value)
        return found

    def _statement(self, module, statement, env, cls, overrides) -> None:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            value = self._value(module, statement.value, env, cls)
            if isinstance(target, ast.Name) and value is not None:
                env[target.id] = value
        if isinstance(statement, ast.For):
            loop = self._value(module, _items_of(statement.iter), env, cls)
            if isinstance(loop, KwargsOf) and isinstance(statement.target, ast.Tuple):
                names = [e.id for e in statement.target.elts if isinstance(e, ast.Name)]
                for name in names:
                    env[name] = LoopField(loop.cls)
        for call in _calls(statement):
            self._call(module, call, env, cls, overrides)

    def _value(self, module, expr, env, cls) -> object | None:
        """What an expression holds, as far as flags go."""
        if expr is None:
            return None
        if isinstance(expr, ast.Name):
            return env.get(expr.id)
        if isinstance(expr, ast.Call):
            func = _dotted(expr.func)
            if func.rpartition(".")[2] == "get_kwargs" and expr.args:
                ref = self._class(module, expr.args[0], cls)
                return KwargsOf(ref) if ref else None
            # x = cls._customize_cli_kwargs(x): the same keywords, customised
            for arg in expr.args:
                held = self._value(module, arg, env, cls)
                if isinstance(held, KwargsOf):
                    return held
            return None
        if isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Constant):
            held = self._value(module, expr.value, env, cls)
            if isinstance(held, KwargsOf) and isinstance(expr.slice.value, str):
                return FieldKwargs(held.cls, expr.slice.value)
        return None

    def _class(self, module: str, expr: ast.expr, cls: ClassRef | None) -> ClassRef | None:
        if isinstance(expr, ast.Name):
            if expr.id == "cls" and cls is not None:
                return cls
            return self.project.class_ref(module, expr.id)
        return None

    def _call(self, module, call: ast.Call, env, cls, overrides) -> None:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "add_argument":
            self._add_argument(module, call, env, cls, overrides)
            return
        if isinstance(func, ast.Attribute) and func.attr == "add_cli_args":
            target = self._class(module, func.value, cls)
            found = self.project.method(target, "add_cli_args") if target else None
            if found:
                owner, node = found
                self.function(owner.module, node, target)
            return
        if (
            isinstance(func, ast.Attribute)
            and func.attr.startswith("add_")
            and func.attr.endswith("_args")
        ):
            target = self._class(module, func.value, cls)
            found = self.project.method(target, func.attr) if target else None
            if found:
                self.function(found[0].module, found[1], target)
            return
        if isinstance(func, ast.Name) and any(
            isinstance(a, ast.Name) and a.id == "parser" for a in call.args
        ):
            found = self.project.resolve(module, func.id)
            target = self.project.module(found[0]) if found else None
            if target and found[1] in target.functions:
                self.function(found[0], target.functions[found[1]], None)

    def _add_argument(self, module, call: ast.Call, env, cls, overrides) -> None:
        options: list[str] = []
        field_source: FieldKwargs | None = None
        boolean_action: bool | None = None
        for arg in call.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if arg.value.startswith("-"):
                    options.append(arg.value)
            elif isinstance(arg, ast.JoinedStr):
                loop = next(
                    (
                        env[n.id]
                        for n in ast.walk(arg)
                        if isinstance(n, ast.Name) and isinstance(env.get(n.id), LoopField)
                    ),
                    None,
                )
                if isinstance(loop, LoopField):
                    self._loop_flags(loop.cls, arg, overrides)
                    return
            elif isinstance(arg, ast.Starred):
                pass  # extra flags of a loop: handled in _loop_flags
        for keyword in call.keywords:
            if keyword.arg == "action":
                boolean_action = _is_boolean_action(keyword.value)
            elif keyword.arg is None:  # **kwargs
                field_source, spread_action = self._spread(module, keyword.value, env, cls)
                if spread_action is not None:
                    boolean_action = spread_action
        if boolean_action is None and field_source is not None:
            override = overrides.get((field_source.name, "action"))
            if override is not None:
                boolean_action = _is_boolean_action(override)
            else:
                boolean_action = self._field_is_boolean(field_source)
        self._add(options, bool(boolean_action))

    def _spread(self, module, expr, env, cls) -> tuple[FieldKwargs | None, bool | None]:
        """`**kwargs["field"]`, `**field_kwargs`, `**{**kwargs["field"], "action": ...}`."""
        held = self._value(module, expr, env, cls)
        if isinstance(held, FieldKwargs):
            return held, None
        if isinstance(expr, ast.Dict):
            source, action = None, None
            for key, value in zip(expr.keys, expr.values, strict=True):
                if key is None:
                    inner = self._value(module, value, env, cls)
                    source = inner if isinstance(inner, FieldKwargs) else source
                elif isinstance(key, ast.Constant) and key.value == "action":
                    action = _is_boolean_action(value)
            return source, action
        return None, None

    def _field_is_boolean(self, source: FieldKwargs) -> bool:
        fields = self.project.fields(source.cls)
        if source.name not in fields:
            return False
        module, annotation = fields[source.name]
        return self.project.is_boolean(module, annotation)

    def _loop_flags(self, cls: ClassRef, pattern: ast.JoinedStr, overrides) -> None:
        """`f"--{key.replace('_', '-')}"` for every field of `cls`."""
        fixed = "".join(
            str(part.value) for part in pattern.values if isinstance(part, ast.Constant)
        )
        dashes = "replace" in ast.unparse(pattern)
        for name, (module, annotation) in self.project.fields(cls).items():
            option = fixed + (name.replace("_", "-") if dashes else name)
            action = overrides.get((name, "action"))
            boolean = (
                _is_boolean_action(action)
                if action is not None
                else self.project.is_boolean(module, annotation)
            )
            extra = overrides.get((name, "flags"))
            extras = (
                [e.value for e in extra.elts if isinstance(e, ast.Constant)]
                if isinstance(extra, ast.List | ast.Tuple)
                else []
            )
            self._add([option, *extras], boolean)

    def _add(self, options: list[str], boolean: bool) -> None:
        self.flags.options.update(options)
        if boolean:
            self.flags.negatable.update(o for o in options if o.startswith("--"))


def _is_boolean_action(expr: ast.expr) -> bool:
    return _dotted(expr).rpartition(".")[2] == "BooleanOptionalAction"


def _items_of(expr: ast.expr) -> ast.expr | None:
    """`X` of `X.items()`."""
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "items"
    ):
        return expr.func.value
    return None


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements in order, into if/for/with/try blocks (every branch: flags of all)."""
    for statement in body:
        yield statement
        for name in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(statement, name, []) or [])
        for handler in getattr(statement, "handlers", []) or []:
            yield from _statements(handler.body)


def _calls(statement: ast.stmt) -> Iterator[ast.Call]:
    """Calls of a statement itself, not of the blocks nested in it (those come on their own)."""
    nested = {"body", "orelse", "finalbody", "handlers"}
    stack: list[ast.AST] = [
        value
        for name, value in ast.iter_fields(statement)
        if name not in nested
        for value in (value if isinstance(value, list) else [value])
        if isinstance(value, ast.AST)
    ]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Call):
            yield node
        stack.extend(ast.iter_child_nodes(node))


# ------------------------------------------------------------------ the flags


def _make_arg_parser(project: Project) -> tuple[str, ast.FunctionDef]:
    serve = project.module(SERVE_MODULE)
    candidates = []
    if serve and "make_arg_parser" in serve.imports:
        candidates.append(serve.imports["make_arg_parser"][0])
    candidates += list(reversed(PARSER_MODULES))
    for name in candidates:
        module = project.module(name)
        if module and "make_arg_parser" in module.functions:
            return name, module.functions["make_arg_parser"]
    raise SystemExit("no make_arg_parser found: is this a vLLM source tree?")


def _inverse_prefixes(project: Project) -> dict[str, str]:
    """EnableDisableAction's `_inverse_prefixes` where the parser registers it."""
    for name in ARGPARSE_UTILS:
        module = project.module(name)
        if not module or "EnableDisableAction" not in module.classes:
            continue
        if not re.search(
            r"register\(\s*[\"']action[\"'].*EnableDisableAction", ast.unparse(module.tree)
        ):
            continue
        for node in ast.walk(module.classes["EnableDisableAction"]):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "_inverse_prefixes" for t in node.targets
            ):
                return ast.literal_eval(node.value)
    return {}


def serve_flags(source: Source) -> list[str]:
    """Every option string `vllm serve` accepts in this release, sorted."""
    project = Project(source)
    module, function = _make_arg_parser(project)
    reader = ParserReader(project)
    reader.function(module, function, None)
    flags = set(reader.flags.options)
    inverses = _inverse_prefixes(project)
    for option in reader.flags.negatable:
        flags.add("--no-" + option[2:])
        for prefix, inverse in inverses.items():
            if option.startswith(prefix):
                flags.add(inverse + option[len(prefix) :])
    if not {"--port", "--tensor-parallel-size", "--served-model-name"} <= flags:
        raise SystemExit(f"implausible flag list ({len(flags)} flags): the reader lost its way")
    return sorted(flags)


def metric_names(source: Source) -> list[str]:
    """The Prometheus series vLLM exports in this release, as Prometheus stores them.

    Every `Gauge`/`Counter`/`Histogram` (prometheus_client's, or vLLM's `_gauge_cls`, ...)
    created with a literal `name="vllm:..."`: a gauge is its name, a counter its name with
    `_total`, a histogram `_bucket`, `_sum` and `_count`. Names built at run time are missed.
    """
    series: set[str] = set()
    for path in source.paths():
        text = source.read(path) or ""
        if '"vllm:' not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            name = next(
                (
                    k.value.value
                    for k in node.keywords
                    if k.arg == "name"
                    and isinstance(k.value, ast.Constant)
                    and str(k.value.value).startswith("vllm:")
                ),
                None,
            )
            kind = _dotted(node.func).rpartition(".")[2].lower()
            if name is None:
                continue
            if "histogram" in kind:
                series |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif "counter" in kind:
                series.add(name.removesuffix("_total") + "_total")
            elif "gauge" in kind:
                series.add(name)
    if "vllm:num_requests_waiting" not in series:
        raise SystemExit(f"implausible metric list ({len(series)} series): the reader lost its way")
    return sorted(series)


def quantization_methods(source: Source) -> list[str]:
    """The values `--quantization` takes in this release: the `QuantizationMethods` Literal of
    vllm/model_executor/layers/quantization/__init__.py (ModelConfig refuses any other at start,
    "Invalid quantization method"; plugins may register more at run time)."""
    text = source.read("vllm/model_executor/layers/quantization/__init__.py") or ""
    for node in ast.walk(ast.parse(text)):
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if (
            isinstance(target, ast.Name)
            and target.id == "QuantizationMethods"
            and isinstance(value, ast.Subscript)
        ):
            items = value.slice.elts if isinstance(value.slice, ast.Tuple) else [value.slice]
            methods = [i.value for i in items if isinstance(i, ast.Constant)]
            if methods:
                return sorted(set(methods))
    raise SystemExit("no QuantizationMethods Literal: the reader lost its way")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", type=Path, help="an unpacked release (checkout, sdist, wheel)")
    where.add_argument("--wheel", type=Path, help="a release wheel")
    where.add_argument("--git-dir", type=Path, help="a bare clone; with --ref")
    parser.add_argument("--ref", help="tag or commit, with --git-dir (e.g. v0.33.0)")
    parser.add_argument("-o", "--output", type=Path, help="the JSON file (default: stdout)")
    parser.add_argument("--metrics", type=Path, help="also write the release's metric series here")
    parser.add_argument(
        "--quantizations", type=Path, help="also write the methods --quantization takes here"
    )
    options = parser.parse_args(argv)
    if options.git_dir and not options.ref:
        parser.error("--git-dir needs --ref")
    if options.source:
        source: Source = DirSource(options.source)
    elif options.wheel:
        source = WheelSource(options.wheel)
    else:
        source = GitSource(options.git_dir, options.ref)
    flags = serve_flags(source)
    version, commit = release_of(source)
    if options.git_dir and version == "unknown":
        version = options.ref.removeprefix("v")
    print(
        f"vLLM {version} (commit {commit or 'unknown'}), from {source.describe()}: "
        f"{len(flags)} flags",
        file=sys.stderr,
    )
    text = json.dumps(flags, indent=1) + "\n"
    if options.output:
        options.output.write_text(text)
    else:
        sys.stdout.write(text)
    if options.metrics:
        series = metric_names(source)
        options.metrics.write_text(json.dumps(series, indent=1) + "\n")
        print(f"{len(series)} metric series", file=sys.stderr)
    if options.quantizations:
        methods = quantization_methods(source)
        options.quantizations.write_text(json.dumps(methods, indent=1) + "\n")
        print(f"{len(methods)} quantization methods", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
