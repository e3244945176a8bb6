"""What every PyTorch twin of a benchmark shares: the timing rule and output format of
bench/timing.hpp (3 warm-up runs, then the median of runs over about `budget` seconds, at least 5
and at most 500; one tab-separated line per case: name, seconds, rate, unit, the model FLOPs of
one run (0: not a compute case) and the process's peak resident memory in MiB so far (0: not
reported))."""
import ctypes
import os
import resource
import statistics
import time


def median_seconds(fn, budget=0.4):
    for _ in range(3):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 500):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_mib():
    """The process's peak resident set so far, in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report(name, seconds, rate, unit, flops=0.0, rss=False):
    print(f"{name}\t{seconds:.6e}\t{rate:.3f}\t{unit}\t{flops:.6e}\t{peak_rss_mib() if rss else 0.0:.1f}", flush=True)


def loaded_blas():
    """Paths of every mapped library whose file name mentions blas."""
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and "blas" in os.path.basename(fields[-1]).lower():
                paths.add(fields[-1])
    return ", ".join(sorted(paths)) or "no BLAS library mapped"


# OpenBLAS cores without AVX: a CPU newer than OpenBLAS's tables gets one of these (autograd/blas.cpp).
_PRE_AVX_CORES = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Opteron", "Opteron(SSE3)",
                  "Barcelona", "Bobcat", "Nano", "Katmai", "Coppermine", "Northwood", "Banias", "Athlon"}


def better_openblas_core(library):
    """The OPENBLAS_CORETYPE Runestone's programs run with (autograd/blas.cpp): SkylakeX or Haswell
    when the OpenBLAS at `library` would pick a core without AVX on a CPU that has AVX-512 or AVX2,
    else None (its own choice stands). Call it before torch loads: OpenBLAS reads the variable only
    when it loads."""
    try:
        blas = ctypes.CDLL(library)
        blas.openblas_get_corename.restype = ctypes.c_char_p
        core = blas.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return None  # not OpenBLAS
    if core not in _PRE_AVX_CORES:
        return None
    with open("/proc/cpuinfo") as info:
        flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    if "avx512f" in flags:
        return "SkylakeX"
    return "Haswell" if "avx2" in flags and "fma" in flags else None
