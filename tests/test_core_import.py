"""camavg_core never imports a framework: checked in a fresh interpreter, since this test
process has usually imported TensorFlow and JAX already."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

FRAMEWORKS = ("tensorflow", "jax", "jaxlib", "keras", "tf_keras", "torch", "camavg_tf", "camavg_jax")

USE_THE_CORE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import camavg_core
    from camavg_core import (
        MetricState, apply_cams, avg_drop, avg_gain, avg_increase, get_backend, mask_inputs,
        resolve_backend, summarize,
    )

    y, o = np.array([0.8, 0.5, 0.0]), np.array([0.2, 0.6, 0.0])
    avg_drop(y, o); avg_increase(y, o); avg_gain(y, o)
    avg_drop([0.8, 0.5], [0.2, 0.6])  # Python lists go through the backend lookup too
    summarize(y, o)
    MetricState.empty().update(y, o).result()
    # masking with a resize and a normalisation
    apply_cams(np.ones((2, 4, 4, 3)), np.random.default_rng(0).random((2, 2, 2)), normalize=True)
    mask_inputs(np.ones((2, 3, 4, 4)), np.ones((2, 4, 4)), data_format="channels_first")
    resolve_backend("numpy")
    try:
        get_backend(object())
    except TypeError:
        pass
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in FRAMEWORKS)
    print(json.dumps(loaded))
    """
)


def run_fresh(code: str) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "-c", f"FRAMEWORKS = {FRAMEWORKS!r}\n{code}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_importing_and_using_the_core_imports_no_framework():
    assert run_fresh(USE_THE_CORE) == []


@pytest.mark.slow
def test_the_check_would_see_a_framework():
    # the same probe, after the user imports a framework, does list it: the check is live
    pytest.importorskip("jax")
    assert "jax" in run_fresh("import jax\n" + USE_THE_CORE)
