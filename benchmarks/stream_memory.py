"""Peak memory of a stream as N grows: each run in a fresh process, its peak resident set
read from the kernel (``ru_maxrss``; tracemalloc would not see TensorFlow's or XLA's own
allocations). The bound: N = 20,000 peaks less than 100 MB above N = 2,000, for both backends,
for the three averages and with Deletion on (10 steps: 11 scores per sample, and the (N, 11)
curves a stream must not keep when ``keep_vectors`` is off).

    python benchmarks/stream_memory.py                       # the averages, then with Deletion
    python benchmarks/stream_memory.py --metrics averages    # one mode only
    python benchmarks/stream_memory.py --metrics deletion --backends tensorflow

The stream is ``evaluate_dataset`` over a generator of 64 px batches of 100 made on the fly
(a small untrained CNN, vectors not kept; ``bench_adapters.StreamingPeakMemory``), so no more
than one batch is ever held by the data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what each mode measures: the averages alone, or the averages and Deletion with 10 steps
MODES = {
    "averages": "None",
    "deletion": "['average_drop', 'average_increase', 'average_gain', deletion_metric(steps=10)]",
}
STREAMS = {
    "tensorflow": ("StreamingPeakMemory",
                   "from camavg_tf.streaming import evaluate_dataset\n"
                   "result = evaluate_dataset(bench.model, bench._batches({n}), metrics={metrics})"),
    "jax": ("JaxStreamingPeakMemory",
            "from camavg_jax import evaluate_dataset\n"
            "from benchmarks.bench_adapters import StreamingPeakMemory\n"
            "result = evaluate_dataset(bench.apply_fn, StreamingPeakMemory._batches(bench, {n}), metrics={metrics})"),
}
RUN = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from camavg_core.metrics import deletion_metric
from benchmarks.bench_adapters import {cls} as Bench
bench = Bench(); bench.setup({n})
started, cpu = time.perf_counter(), time.process_time()
{stream}
assert result.n == {n}, result.n
print(json.dumps({{"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu,
                  "values": result.values}}))
"""


def measure(backend: str, mode: str, n: int) -> dict:
    """Peak RSS (MB) of a fresh process that streams ``n`` samples, with the stream's time."""
    cls, stream = STREAMS[backend]
    code = RUN.format(root=str(ROOT), cls=cls, n=n, stream=stream.format(n=n, metrics=MODES[mode]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"TF_CPP_MIN_LOG_LEVEL": "3", **os.environ})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", choices=("all", *MODES), default="all")
    parser.add_argument("--backends", default="tensorflow,jax", help="comma-separated: tensorflow,jax")
    args = parser.parse_args(argv)
    modes = list(MODES) if args.metrics == "all" else [args.metrics]
    print(f"stream_memory: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 64 px, batches of 100, vectors not kept")
    for mode in modes:
        for backend in args.backends.split(","):
            small, large = measure(backend, mode, 2000), measure(backend, mode, 20000)
            growth = large["peak_mb"] - small["peak_mb"]
            print(f"{backend:<10} {mode:<9} N=2,000: {small['peak_mb']:7.1f} MB ({small['cpu_s']:5.1f} s CPU)  "
                  f"N=20,000: {large['peak_mb']:7.1f} MB ({large['cpu_s']:6.1f} s CPU)  growth {growth:+6.1f} MB  "
                  f"< 100 MB: {'yes' if growth < 100 else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
