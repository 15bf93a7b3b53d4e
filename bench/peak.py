"""The machine's yardstick: GFLOP/s of a large fp32 matrix multiplication with numpy, per thread count.

Each thread count runs in its own process, because BLAS reads its thread limit once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SIZE = 1024
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_PROBE = """
import time, numpy as np
a = np.random.RandomState(0).standard_normal((SIZE, SIZE)).astype(np.float32)
b = a.T.copy()
a @ b
best = min(_time(a, b) for _ in range(5))
print(2 * SIZE**3 / best / 1e9)
""".replace("SIZE", str(SIZE))
_TIMER = "def _time(a, b):\n    t = time.perf_counter(); a @ b; return time.perf_counter() - t\n"


def peak_gflops(threads: int, timeout_s: float = 60) -> float | None:
    env = {**os.environ, **{v: str(threads) for v in THREAD_VARIABLES}}
    code = "import time\n" + _TIMER + _PROBE
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=True)
        return round(float(done.stdout.strip()), 2)
    except (subprocess.SubprocessError, ValueError):
        return None


def peaks(thread_counts: list[int]) -> str:
    return json.dumps({str(t): peak_gflops(t) for t in sorted(set(thread_counts))})
