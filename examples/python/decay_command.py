#!/usr/bin/env python3
"""`command` model: one Python process per member (what `worker` avoids).

Usage (ekp's default args): decay_command.py PARAMETERS_TOML OUTPUT_TOML"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decay import decay  # noqa: E402


def read_parameters(path):
    # parameters.toml holds `name = value` lines (scalars here) and comments.
    values = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if "=" in line:
                name, value = line.split("=", 1)
                values[name.strip()] = float(value)
    return values


if __name__ == "__main__":
    p = read_parameters(sys.argv[1])
    ys = decay(p["rate"], p["initial"])
    with open(sys.argv[2], "w") as f:
        f.write("values = [" + ", ".join(repr(y) for y in ys) + "]\n")
