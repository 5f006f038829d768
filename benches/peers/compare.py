#!/usr/bin/env python3
"""ekp against Python peers, side by side (run by hand, not in CI).

Forward part: the same Lorenz 96 ensemble integration as
`ekp-cli bench --backend threads` — 36 sites, dt = 1/64, RK4 with the forcing
F_m + A_m sin(omega t_j) evaluated at the end-of-step time t_j and held for the
four stages, omega = 2 pi / 72, F_m ~ U[7, 9], A_m ~ U[1, 3], every member
starting from the same small perturbation — in float64 with:

* DAPPER (`pip install dapper`): its ensemble-vectorised RK4
  (`dapper.mods.integration.rk4`) on its Lorenz 96 tendency
  (`dapper.mods.Lorenz96`, `shift`-based, members along axis 0), with the
  per-member forcing added the way its `dxdt` adds `Force`. If DAPPER is not
  installed, the same numpy code written out here is used and labelled so.
* numba (if installed): a compiled, parallel per-member RK4 loop
  (`@njit(parallel=True, fastmath=False)`), the fastest plain-Python route.

Update part: one EKI update (perturbed observations, EKP.jl's `Inversion`)
with N members, p parameters and each d of `--outputs` (diagonal Gamma), against
`ekp-cli bench --update --process inversion --perturb --members N --parameters P
--outputs D` (last line `seconds/update: X`), with:

* iterative_ensemble_smoother (`pip install iterative_ensemble_smoother`):
  one ESMDA assimilation with alpha = 1 (`ESMDA.prepare_assimilation` +
  `assimilate_batch`: perturbed observations, subspace inversion in the
  N x N space) — what a Python user would pick for large d;
* the dense numpy formula u + C_ug (C_gg + Gamma)^-1 (y + eta - g) only for
  d <= 5000 (it forms and solves a d x d system).

DAPPER's ETKF (`EnKF_analysis(..., "Sqrt svd")` with a diagonal `CovMat`) is
not included: it works with d x d matrices (101 s at d = 10^4 on a 2-core
machine), so it cannot run at these sizes.

Usage (with a venv holding numpy, and optionally dapper and numba):

    cargo build --release -p ekp-cli
    /path/to/venv/bin/python benches/peers/compare.py --cli target/release/ekp-cli \
        [--members 10000] [--steps 1000] [--rounds 3] [--forward-only | --update-only]
        [--update-members 100] [--parameters 100] [--outputs 100000 1000000]

Prints member-steps/s (forward) and seconds/update (update) of every
implementation, medians over the rounds, and ekp's speed-up over each.
"""

import argparse
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

SITES = 36
DT = 1.0 / 64.0
OMEGA = 2.0 * math.pi / 72.0


def ensemble(members, seed=2024):
    rng = np.random.default_rng(seed)
    f = rng.uniform(7.0, 9.0, members)
    a = rng.uniform(1.0, 3.0, members)
    x0 = np.random.default_rng(4137).normal(0.0, 0.01, SITES)
    return f, a, x0


# --- forward: numpy / DAPPER -------------------------------------------------

def numpy_forward(members, steps):
    """DAPPER's scheme, whether or not DAPPER is installed: (label, seconds)."""
    f_mean, f_amp, x0 = ensemble(members)
    try:
        from dapper.mods.integration import rk4
        from dapper.mods.Lorenz96 import shift

        label = "DAPPER (numpy, members vectorised)"
    except ImportError:
        label = "numpy, written as DAPPER does (DAPPER not installed)"

        def shift(x, n):
            return np.roll(x, -n, axis=-1)

        def rk4(f, x, t, dt):
            k1 = dt * f(x, t)
            k2 = dt * f(x + k1 / 2, t + dt / 2)
            k3 = dt * f(x + k2 / 2, t + dt / 2)
            k4 = dt * f(x + k3, t + dt)
            return x + (k1 + 2 * (k2 + k3) + k4) / 6

    x = np.tile(x0, (members, 1))
    start = time.perf_counter()
    for j in range(1, steps + 1):
        force = (f_mean + f_amp * math.sin(OMEGA * DT * j))[:, None]

        def dxdt(x, t, force=force):
            # dapper.mods.Lorenz96.dxdt with the per-member forcing.
            return (shift(x, 1) - shift(x, -2)) * shift(x, -1) - x + force

        x = rk4(dxdt, x, DT * (j - 1), DT)
    seconds = time.perf_counter() - start
    if not np.all(np.isfinite(x)):
        sys.exit("numpy forward diverged")
    return label, seconds


def numba_forward(members, steps):
    try:
        import numba
    except ImportError:
        return None
    f_mean, f_amp, x0 = ensemble(members)

    @numba.njit(fastmath=False, cache=False)
    def tend(x, force, out):
        # Periodic edges apart, so the interior loop has no modulo.
        n = x.shape[0]
        out[0] = (x[1] - x[n - 2]) * x[n - 1] - x[0] + force
        out[1] = (x[2] - x[n - 1]) * x[0] - x[1] + force
        for i in range(2, n - 1):
            out[i] = (x[i + 1] - x[i - 2]) * x[i - 1] - x[i] + force
        out[n - 1] = (x[0] - x[n - 3]) * x[n - 2] - x[n - 1] + force

    @numba.njit(parallel=True, fastmath=False, cache=False)
    def run(x0, f_mean, f_amp, steps, dt, omega):
        n = x0.shape[0]
        m = f_mean.shape[0]
        out = np.empty((m, n))
        for mem in numba.prange(m):
            x = x0.copy()
            k1 = np.empty(n)
            k2 = np.empty(n)
            k3 = np.empty(n)
            k4 = np.empty(n)
            s = np.empty(n)
            for j in range(1, steps + 1):
                force = f_mean[mem] + f_amp[mem] * math.sin(omega * dt * j)
                tend(x, force, k1)
                for i in range(n):
                    s[i] = x[i] + k1[i] * (dt / 2)
                tend(s, force, k2)
                for i in range(n):
                    s[i] = x[i] + k2[i] * (dt / 2)
                tend(s, force, k3)
                for i in range(n):
                    s[i] = x[i] + k3[i] * dt
                tend(s, force, k4)
                for i in range(n):
                    x[i] += dt / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i])
            out[mem] = x
        return out

    run(x0, f_mean[:2], f_amp[:2], 2, DT, OMEGA)  # compile outside the timing
    start = time.perf_counter()
    x = run(x0, f_mean, f_amp, steps, DT, OMEGA)
    seconds = time.perf_counter() - start
    if not np.all(np.isfinite(x)):
        sys.exit("numba forward diverged")
    return f"numba @njit(parallel), {numba.get_num_threads()} threads", seconds


# --- update: numpy EKI ---------------------------------------------------------

def numpy_update(n, p, d, rounds):
    rng = np.random.default_rng(7)
    u = rng.normal(size=(p, n))
    g = rng.uniform(-2, 2, size=(d, n))
    y = rng.uniform(-1, 1, size=d)
    sd = rng.uniform(0.5, 1.5, size=d)
    gamma = np.diag(sd**2)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        du = u - u.mean(axis=1, keepdims=True)
        dg = g - g.mean(axis=1, keepdims=True)
        c_ug = du @ dg.T / n
        c_gg = dg @ dg.T / n
        eta = sd[:, None] * rng.normal(size=(d, n))
        u_new = u + c_ug @ np.linalg.solve(c_gg + gamma, y[:, None] + eta - g)
        times.append(time.perf_counter() - start)
        if not np.all(np.isfinite(u_new)):
            sys.exit("numpy update is not finite")
    return statistics.median(times)


def esmda_update(n, p, d, rounds):
    """Median seconds of one ESMDA assimilation (alpha = 1), or None."""
    try:
        import iterative_ensemble_smoother as ies
    except ImportError:
        return None
    rng = np.random.default_rng(7)
    u = rng.normal(size=(p, n))
    g = rng.uniform(-2, 2, size=(d, n))
    y = rng.uniform(-1, 1, size=d)
    sd = rng.uniform(0.5, 1.5, size=d)
    times = []
    for r in range(rounds):
        start = time.perf_counter()
        smoother = ies.ESMDA(covariance=sd**2, observations=y, alpha=1, seed=r)
        smoother.prepare_assimilation(Y=g)
        u_new = smoother.assimilate_batch(X=u)
        times.append(time.perf_counter() - start)
        if not np.all(np.isfinite(u_new)):
            sys.exit("ESMDA update is not finite")
    return f"iterative_ensemble_smoother {ies.__version__} ESMDA", statistics.median(times)


# --- ekp-cli -------------------------------------------------------------------

def cli_last(cli, args, key):
    out = subprocess.run([cli, "bench", *args], capture_output=True, text=True, check=False)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines or not lines[-1].startswith(key):
        sys.exit(f"ekp-cli bench {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return float(lines[-1].split(":")[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "release", "ekp-cli"))
    ap.add_argument("--members", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--forward-only", action="store_true")
    ap.add_argument("--update-only", action="store_true")
    ap.add_argument("--update-members", type=int, default=100)
    ap.add_argument("--parameters", type=int, default=100)
    ap.add_argument("--outputs", type=int, nargs="+", default=[100_000, 1_000_000])
    a = ap.parse_args()

    if not a.update_only:
        ms = a.members * a.steps
        rates = {}
        for r in range(a.rounds):
            rates.setdefault("ekp threads (lanes kernel)", []).append(cli_last(
                a.cli, ["--backend", "threads", "--members", str(a.members),
                        "--steps", str(a.steps)], "member-steps/s:"))
            label, s = numpy_forward(a.members, a.steps)
            rates.setdefault(label, []).append(ms / s)
            nb = numba_forward(a.members, a.steps)
            if nb is not None:
                rates.setdefault(nb[0], []).append(ms / nb[1])
            print(f"forward round {r + 1}/{a.rounds} done", file=sys.stderr)
        med = {k: statistics.median(v) for k, v in rates.items()}
        ours = med["ekp threads (lanes kernel)"]
        print(f"Lorenz 96 forward: {a.members} members x {a.steps} steps, "
              f"{SITES} sites, f64, median of {a.rounds}")
        print(f"{'implementation':48} {'member-steps/s':>15} {'ekp speed-up':>13}")
        for k, v in med.items():
            print(f"{k:48} {v:15.3e} {ours / v:12.1f}x")

    if not a.forward_only:
        n, p = a.update_members, a.parameters
        for d in a.outputs:
            ours = statistics.median(cli_last(
                a.cli, ["--update", "--process", "inversion", "--perturb", "--members", str(n),
                        "--parameters", str(p), "--outputs", str(d)], "seconds/update:")
                for _ in range(a.rounds))
            peers = [esmda_update(n, p, d, a.rounds)]
            if d <= 5000:
                peers.append(("numpy (dense EKI formula, d x d solve)", numpy_update(n, p, d, a.rounds)))
            print(f"EKI update: N = {n}, p = {p}, d = {d}, median of {a.rounds}")
            print(f"{'implementation':48} {'seconds/update':>15} {'ekp speed-up':>13}")
            print(f"{'ekp-cli bench --update --process inversion --perturb':48} {ours:15.3e} {'1.0x':>13}")
            for peer in peers:
                if peer is None:
                    print("iterative_ensemble_smoother not installed: ESMDA skipped")
                    continue
                label, secs = peer
                print(f"{label:48} {secs:15.3e} {secs / ours:12.1f}x")


if __name__ == "__main__":
    main()
