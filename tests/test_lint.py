"""The tree passes the ruff configuration of pyproject.toml (imports, line length,
unused names); ruff comes with the ``tests`` extra, so CI always runs this."""

import importlib.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PATHS = ["sklearn_robust", "tests", "benchmarks", "conftest.py", "examples", "docs",
         "scripts"]


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None,
                    reason="ruff is not installed (pip install .[tests])")
def test_ruff_is_clean():
    paths = [p for p in PATHS if (ROOT / p).exists()]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *paths],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
