#!/usr/bin/env python3
"""numpy's bare Gram matrix of an EKI update's outputs, the floor to compare
ekp's update with (run by hand, side by side with
`cargo run --release -p ekp-core --example update_cost -- 100 1000000 3 noref`).

The outputs of N members and d data values (N x d, one member per row, as a
Python user holds them), centred, then G G^T (N x N) through numpy's BLAS
(OpenBLAS in the pip wheel, on every core). Prints the median of the repeats
and, last, `seconds/gram: X`.

    python3 benches/peers/numpy_gram.py [--members 100] [--outputs 1000000] [--repeats 5]
"""

import argparse
import statistics
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100)
    ap.add_argument("--outputs", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(3)
    g = rng.uniform(-1.0, 1.0, size=(a.members, a.outputs))
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        anomalies = g - g.mean(axis=0)
        gram = anomalies @ anomalies.T
        times.append(time.perf_counter() - t)
    bare = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        gram = g @ g.T
        bare.append(time.perf_counter() - t)
    assert gram.shape == (a.members, a.members)
    print(f"numpy {np.__version__}, N = {a.members}, d = {a.outputs}, medians of {a.repeats}")
    print(f"centred Gram (mean, subtract, G G^T): {statistics.median(times):.4f} s")
    print(f"seconds/gram: {statistics.median(bare):.4f}")


if __name__ == "__main__":
    main()
