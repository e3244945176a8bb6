"""What every PyTorch twin of a benchmark shares: the timing rule and output format of
bench/timing.hpp (3 warm-up runs, then the median of runs over about `budget` seconds, at least 5
and at most 500; one tab-separated line per case: name, seconds, rate, unit)."""
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


def report(name, seconds, rate, unit):
    print(f"{name}\t{seconds:.6e}\t{rate:.3f}\t{unit}", flush=True)
