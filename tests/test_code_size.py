"""The size rules of the codebase: no file in src/ over 300 lines, no function over 50 (from ``def`` to its last
line, docstring included), so every part stays readable at a glance."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

SOURCES = sorted((ROOT / "src").rglob("*.py"))


def test_files_and_functions_stay_small() -> None:
    assert SOURCES
    too_long = []
    for path in SOURCES:
        text = path.read_text()
        if len(text.splitlines()) > 300:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 50:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, too_long
