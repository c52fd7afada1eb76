"""What the benchmarks need to know about the machine: a description, its FP32 peak, and child-process peaks.

FP32 peak = cores x clock x FLOPs per cycle per core, where FLOPs per cycle =
2 (an FMA is a multiply and an add) x vector lanes x FMA units. Lanes: 16
with AVX-512, 8 with AVX2; AMD before Zen 5 (CPU family < 26) executes
AVX-512 on 256-bit datapaths, so 8. FMA units: 2 on the server cores of
this decade. The clock is the nominal one from /proc/cpuinfo; cores boost
above it, so the formula can understate the peak. `sgemm_gflops` measures a
practical ceiling as well: the faster of NumPy's BLAS and TensorFlow's
oneDNN on a large FP32 matrix product, on all cores. Benchmarks report the
fraction of both.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

INCEPTION_V3_GFLOP = 11.46  # FP32 operations per 299x299 image (2 per multiply-accumulate)


def cpu_info() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name", platform.processor() or platform.machine()),
            "vendor": fields.get("vendor_id", ""), "family": int(fields.get("cpu family", "0") or 0),
            "mhz": float(fields.get("cpu MHz", "0") or 0), "flags": flags, "cores": os.cpu_count() or 1}


def fp32_peak() -> dict:
    """Peak FP32 GFLOP/s of the cores this process may use, with the assumptions spelled out."""
    cpu = cpu_info()
    lanes = 16 if "avx512f" in cpu["flags"] else 8 if "avx2" in cpu["flags"] else 4
    if cpu["vendor"] == "AuthenticAMD" and cpu["family"] < 26:
        lanes = min(lanes, 8)
    fma_units = 2
    per_cycle = 2 * lanes * fma_units
    ghz = cpu["mhz"] / 1000
    gflops = cpu["cores"] * ghz * per_cycle
    return {"gflops": round(gflops, 1), "sgemm_gflops": sgemm_gflops(),
            "cores": cpu["cores"], "ghz": round(ghz, 2), "flops_per_cycle": per_cycle,
            "assumption": f"{cpu['cores']} cores x {ghz:.2f} GHz x {per_cycle} FP32 FLOP/cycle "
                          f"(2 x {lanes} lanes x {fma_units} FMA units)"}


def sgemm_gflops(n: int = 4096, repeats: int = 6) -> float:
    """FP32 GFLOP/s of the best of NumPy's BLAS and TensorFlow's matmul on n x n matrices, all cores."""
    import numpy as np
    import tensorflow as tf

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    t = tf.constant(a)
    tf_matmul = tf.function(lambda x: tf.matmul(x, x))
    best = 0.0
    for product, done in ((lambda: a @ a, lambda r: r), (lambda: tf_matmul(t), lambda r: r.numpy())):
        done(product())  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            result = product()
        done(result)
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9)
    return round(best, 1)


def describe() -> str:
    cpu = cpu_info()
    try:
        import tensorflow as tf

        gpus = len(tf.config.list_physical_devices("GPU"))
    except Exception:
        gpus = 0
    vector = " ".join(sorted(f for f in cpu["flags"] if f.startswith(("avx", "amx", "fma", "f16c"))))
    return (f"{cpu['model']}, {cpu['cores']} cores, {platform.machine()}, {'%d GPU' % gpus if gpus else 'no GPU'}; "
            f"flags: {vector or 'none of avx/amx/fma'}")


# A small interpreter runs the command and reports RUSAGE_CHILDREN: measured from a big parent
# (TensorFlow loaded), a child's ru_maxrss would include the parent's pages from before its exec.
_LAUNCHER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
             "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
             "sys.exit(code)")


def run_measured(cmd: list[str], **popen) -> dict:
    """Run a command; its wall seconds and its own peak resident memory (from the kernel)."""
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", _LAUNCHER, report.name, *cmd], check=True, **popen)
        seconds = time.perf_counter() - start
        peak_kib = int(Path(report.name).read_text())
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_kib / 1024, 1)}


def peak_rss_mib(pid: int) -> float:
    """A live process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")
