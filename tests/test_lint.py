"""The code stays lint-clean (ruff.toml: pyflakes, pycodestyle, bugbear, pylint errors)."""

from pathlib import Path
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -r requirements.txt)")
    out = subprocess.run([ruff, "check", "pruning", "app", "tests", "benchmarks", "docs"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
