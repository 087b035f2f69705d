"""docs/python.md's examples run as they are: every ```python block, in the page's order, in one
namespace (the page reads as one session), in a fresh folder, with the CLI built here on PATH."""

import os
import re

import pytest

from conftest import CLI, SOURCE_DIR


def python_blocks(path):
    blocks, code, start = [], None, 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if code is None and re.match(r"^```python\s*$", line):
                code, start = [], n
            elif code is not None and line.startswith("```"):
                blocks.append((start, "".join(code)))
                code = None
            elif code is not None:
                code.append(line)
    return blocks


def test_every_python_example_of_docs_python_md_runs(tmp_path, monkeypatch):
    doc = os.path.join(SOURCE_DIR, "docs", "python.md")
    blocks = python_blocks(doc)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", os.path.dirname(CLI) + os.pathsep + os.environ["PATH"])
    namespace = {"__name__": "__main__"}
    for line, code in blocks:
        try:
            exec(compile(code, f"docs/python.md:{line}", "exec"), namespace)
        except Exception as e:  # name the block
            pytest.fail(f"docs/python.md:{line}: {type(e).__name__}: {e}")
