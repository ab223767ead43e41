"""Peak memory of a stream as N grows: each run in a fresh process, its peak resident set
read from the kernel (``ru_maxrss``). The bound: N = 20,000 peaks less than 100 MB above
N = 2,000, for both backends.

    python benchmarks/stream_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = """
import json, resource, sys
sys.path.insert(0, {root!r})
from benchmarks.bench_adapters import {cls} as Bench
bench = Bench(); bench.setup({n}); bench.peakmem_evaluate_dataset({n})
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
"""


def peak_mb(cls: str, n: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", RUN.format(root=str(ROOT), cls=cls, n=n)],
        capture_output=True, text=True, check=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", **__import__("os").environ},
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    for cls in ("StreamingPeakMemory", "JaxStreamingPeakMemory"):
        small, large = peak_mb(cls, 2000), peak_mb(cls, 20000)
        verdict = "yes" if large - small < 100 else "NO"
        print(f"{cls:<24} N=2,000: {small:7.1f} MB  N=20,000: {large:7.1f} MB  growth {large - small:+6.1f} MB  < 100 MB: {verdict}")


if __name__ == "__main__":
    main()
