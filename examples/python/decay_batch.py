#!/usr/bin/env python3
"""`batch` model: every member of a batch in one process.

Usage (ekp's default args): decay_batch.py PARAMETERS_CSV OUTPUTS_CSV
parameters.csv: `member,rate,initial` then one row per member;
outputs.csv: `member,y1,...,y5` then one row per member."""

import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decay import TIMES, decay  # noqa: E402


def main(parameters, outputs):
    with open(parameters, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(outputs, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["member"] + [f"y{i + 1}" for i in range(len(TIMES))])
        for row in rows:
            ys = decay(float(row["rate"]), float(row["initial"]))
            w.writerow([row["member"]] + [repr(y) for y in ys])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
