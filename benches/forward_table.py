#!/usr/bin/env python3
"""Side-by-side forward benchmark of the ekp-cli backends (run by hand).

Runs each `ekp-cli bench` configuration below once per round, the rounds
interleaved so that machine noise hits every configuration alike, and prints
the median member-steps/s of each and its ratio to the plain per-member
serial loop. Usage:

    cargo build --release -p ekp-cli
    python3 benches/forward_table.py [--cli target/release/ekp-cli]
        [--members 10000] [--steps 1000] [--rounds 5] [--no-gpu]

The gpu rows need a Vulkan adapter (Mesa's lavapipe works; NODEVICE_SELECT=1
is set for them).
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def rate(cli, args, env=None):
    """(member-steps per wall second, member-steps per CPU second)."""
    cpu = cpu_seconds()
    out = subprocess.run(
        [cli, "bench", *args], capture_output=True, text=True, env=env, check=False
    )
    cpu = cpu_seconds() - cpu
    if out.returncode != 0:
        return None
    lines = out.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("member-steps/s:"):
        return None
    members = int(args[args.index("--members") + 1])
    steps = int(args[args.index("--steps") + 1])
    return float(lines[-1].split(":")[1]), members * steps / cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "release", "ekp-cli"))
    ap.add_argument("--members", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-gpu", action="store_true")
    a = ap.parse_args()
    size = ["--members", str(a.members), "--steps", str(a.steps)]
    configs = [
        ("serial, per-member kernel (reference)", ["--backend", "serial", "--kernel", "per-member"]),
        ("threads, per-member kernel", ["--backend", "threads", "--kernel", "per-member"]),
        ("serial, lanes kernel", ["--backend", "serial"]),
        ("threads, 1 thread, lanes", ["--backend", "threads", "--threads", "1"]),
        ("threads, lanes", ["--backend", "threads"]),
        ("serial, per-member kernel, f32 (f32 reference)",
         ["--backend", "serial", "--kernel", "per-member", "--precision", "f32"]),
        ("serial, lanes kernel, f32", ["--backend", "serial", "--precision", "f32"]),
        ("threads, 1 thread, lanes, f32",
         ["--backend", "threads", "--threads", "1", "--precision", "f32"]),
        ("threads, lanes, f32", ["--backend", "threads", "--precision", "f32"]),
    ]
    if not a.no_gpu:
        configs += [
            ("gpu f32", ["--backend", "gpu"]),
            ("gpu f64", ["--backend", "gpu", "--precision", "f64"]),
        ]
    gpu_env = dict(os.environ, NODEVICE_SELECT="1")
    rates = {name: [] for name, _ in configs}
    cpu_rates = {name: [] for name, _ in configs}
    for r in range(a.rounds):
        for name, args in configs:
            v = rate(a.cli, args + size, gpu_env if "gpu" in args else None)
            if v is not None:
                rates[name].append(v[0])
                cpu_rates[name].append(v[1])
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in rates.items() if v}
    cpu_med = {k: statistics.median(v) for k, v in cpu_rates.items() if v}
    base = med.get(configs[0][0])
    print(f"{a.members} members x {a.steps} steps, {a.rounds} rounds, medians")
    print("member-steps/s: per wall second as the bench reports it; per CPU second")
    print("(user+sys of the whole process, start-up included) is what a loaded")
    print("machine does not distort for one thread")
    print(f"{'configuration':42} {'member-steps/s':>15} {'vs reference':>13}  "
          f"{'per CPU s':>10} {'vs ref':>7}  (wall min..max)")
    for name, _ in configs:
        if name not in med:
            print(f"{name:42} {'n/a':>15}")
            continue
        ratio = f"{med[name] / base:.2f}x" if base else ""
        cbase = cpu_med.get(configs[0][0])
        cratio = f"{cpu_med[name] / cbase:.2f}x" if cbase else ""
        print(f"{name:42} {med[name]:15.3e} {ratio:>13}  {cpu_med[name]:10.3e} {cratio:>7}  "
              f"({min(rates[name]):.2e}..{max(rates[name]):.2e})")
    pairs = [
        ("threads, lanes", "threads, 1 thread, lanes", "threads scaling (all threads / 1 thread)"),
        ("threads, lanes, f32", "threads, 1 thread, lanes, f32", "threads scaling in f32"),
        ("serial, lanes kernel, f32", "serial, lanes kernel", "f32 lanes / f64 lanes, serial"),
        ("threads, lanes, f32", "threads, lanes", "f32 lanes / f64 lanes, threads"),
        ("threads, lanes", "gpu f32", "threads lanes / gpu f32"),
        ("threads, lanes", "gpu f64", "threads lanes / gpu f64"),
    ]
    # Each ratio also as the median of the rounds' own ratios (the two
    # configurations of a round ran seconds apart: less noise).
    for num, den, label in pairs:
        if num in med and den in med:
            paired = [x / y for x, y in zip(rates[num], rates[den])]
            print(f"{label}: {med[num] / med[den]:.2f} (per round: median "
                  f"{statistics.median(paired):.2f}, {min(paired):.2f}..{max(paired):.2f})")


if __name__ == "__main__":
    main()
