"""Every Python file of the project stays valid on Python 3.10 (ROS 2 Humble's Ubuntu 22.04).

This machine has no 3.10 interpreter, so the check is static: the 3.10 grammar (``ast.parse`` with
``feature_version``), plus the standard-library names that 3.11 added (importing them fails on 3.10 only
at run time, on the robot).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("ckd_ros", "test", "benchmarks", "launch", "scripts", "tools")

# 3.11 additions that a 3.10 interpreter lacks (module -> names; None: the whole module)
NEW_IN_311: dict[str, frozenset[str] | None] = {
    "tomllib": None,
    "wsgiref.types": None,
    "typing": frozenset({"Self", "LiteralString", "Never", "assert_never", "assert_type", "reveal_type",
                         "Required", "NotRequired", "TypeVarTuple", "Unpack", "dataclass_transform",
                         "get_overloads", "clear_overloads"}),
    "enum": frozenset({"StrEnum", "ReprEnum", "EnumCheck", "FlagBoundary", "verify", "member", "nonmember",
                       "global_enum", "show_flag_values"}),
    "datetime": frozenset({"UTC"}),
    "asyncio": frozenset({"TaskGroup", "Runner", "timeout", "timeout_at", "Timeout"}),
    "contextlib": frozenset({"chdir"}),
    "operator": frozenset({"call"}),
    "hashlib": frozenset({"file_digest"}),
}
NEW_BUILTINS_311 = frozenset({"ExceptionGroup", "BaseExceptionGroup"})


def python_files() -> list[Path]:
    files = [REPO / "setup.py"]
    for top in SOURCE_DIRS:
        for path in sorted((REPO / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            if path.suffix == ".py" or (not path.suffix and path.read_bytes()[:64].startswith(b"#!")
                                        and b"python" in path.read_bytes()[:64]):
                files.append(path)
    return files


def problems_for_310(source: str, filename: str = "<source>") -> list[str]:
    """What in ``source`` a Python 3.10 interpreter refuses: syntax errors first, then 3.11-only names."""
    try:
        tree = ast.parse(source, filename, feature_version=(3, 10))
    except SyntaxError as exc:
        return [f"{filename}:{exc.lineno}: not Python 3.10 syntax: {exc.msg}"]
    found = []
    for node in ast.walk(tree):
        # PEP 646 star expressions, which ``feature_version`` lets through on 3.11
        if isinstance(node, ast.arguments) and node.vararg and isinstance(node.vararg.annotation, ast.Starred):
            found.append(f"{filename}:{node.vararg.lineno}: not Python 3.10 syntax: *args: *Ts")
        elif (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple)
              and any(isinstance(e, ast.Starred) for e in node.slice.elts)
              and not (ast.get_source_segment(source, node.slice) or "").startswith("(")):  # a[(*b,)] is older
            found.append(f"{filename}:{node.lineno}: not Python 3.10 syntax: star expression in a subscript")
        elif isinstance(node, ast.Import):
            found += [f"{filename}:{node.lineno}: import {a.name} (new in 3.11)" for a in node.names
                      if a.name in NEW_IN_311 and NEW_IN_311[a.name] is None]
        elif isinstance(node, ast.ImportFrom) and node.module in NEW_IN_311:
            names = NEW_IN_311[node.module]
            found += [f"{filename}:{node.lineno}: from {node.module} import {a.name} (new in 3.11)"
                      for a in node.names if names is None or a.name in names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names = NEW_IN_311.get(node.value.id)
            if names and node.attr in names:
                found.append(f"{filename}:{node.lineno}: {node.value.id}.{node.attr} (new in 3.11)")
        elif isinstance(node, ast.Name) and node.id in NEW_BUILTINS_311:
            found.append(f"{filename}:{node.lineno}: {node.id} (new in 3.11)")
    return found


def test_every_python_file_of_the_project_is_valid_python_310():
    files = python_files()
    assert len(files) > 50 and REPO / "launch" / "tracker.launch.py" in files  # the walk found the tree
    problems = [p for f in files for p in problems_for_310(f.read_text(encoding="utf-8"), str(f.relative_to(REPO)))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source, reason", [
    ("try:\n    pass\nexcept* ValueError:\n    pass\n", "not Python 3.10 syntax"),      # exception groups
    ("def f(*args: *Ts): ...\n", "not Python 3.10 syntax"),                             # PEP 646
    ("x: tuple[int, *Ts]\n", "not Python 3.10 syntax"),
    ("y = a[*b]\n", "not Python 3.10 syntax"),
    ("import tomllib\n", "import tomllib"),
    ("from typing import Self\n", "from typing import Self"),
    ("import typing\nx: typing.Self\n", "typing.Self"),
    ("from enum import StrEnum\n", "from enum import StrEnum"),
    ("import datetime\nnow = datetime.datetime.now(datetime.UTC)\n", "datetime.UTC"),
    ("raise ExceptionGroup('x', [ValueError()])\n", "ExceptionGroup"),
])
def test_the_check_names_what_python_310_lacks(source, reason):
    problems = problems_for_310(source, "sample.py")
    assert problems and reason in problems[0], problems


def test_the_check_accepts_what_python_310_has():
    source = ("from __future__ import annotations\nimport typing\nfrom typing import TypeAlias, ParamSpec\n"
              "def f(x: int | None) -> list[int]:\n    match x:\n        case None:\n            return []\n"
              "        case _:\n            return [x]\n"
              "with (open('a') as a, open('b') as b):\n    pass\n"
              "y = a[1:2, ...]\nz = a[(*b,)]\n")
    assert problems_for_310(source) == []
