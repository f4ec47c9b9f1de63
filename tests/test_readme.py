"""The README's Python examples run verbatim (in a fresh folder), and its commands parse."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_examples():
    assert len(python_blocks()) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("i", range(len(python_blocks())))
def test_readme_python_example_runs_verbatim(tmp_path, i):
    code = python_blocks()[i]
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
