"""What the Python benchmarks share: the DeepSeek-V3 decode load and a median timer."""

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_TRACE = Path(os.environ.get("SWIFTBALANCER_TRACES_DIR", HERE.parent.parent / "shared" /
                                    "traces")) / "deepseek_v3r1" / "decode_in1000out1000.json"


def load(trace, dtype):
    """The 58 loaded layers of an SGLang dump as `dtype`, or a seeded synthetic skewed load
    (zipf(1.6) x 1000, 58 x 256) when the file is absent; and a description of it."""
    if trace.is_file():
        with open(trace) as f:
            w = np.asarray(json.load(f)["logical_count"], dtype=dtype)
        return w[w.sum(axis=1) > 0], str(trace)
    rng = np.random.default_rng(0)
    return rng.zipf(1.6, size=(58, 256)).astype(dtype) * 1000, "synthetic zipf(1.6), seed 0"


def median_ms(fn, repeat):
    """Median, min and max wall time in ms of `repeat` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times), max(times)
