"""Every ```python example in README.md runs as written, in a fresh interpreter (```py marks a
fragment that needs your own files)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path):
    code = BLOCKS[index]
    for module in re.findall(r"^(?:from|import) (\w+)", code, flags=re.MULTILINE):
        if module in ("tensorflow", "keras", "tf_keras_vis", "jax"):
            pytest.importorskip(module)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CAMAVG_CACHE": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
