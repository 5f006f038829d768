"""The model of examples/command-model, in Python: y(t) = initial * exp(-rate * t)
at t = 0, 1, 2, 3, 4. Shared by the worker, batch and command examples."""

import math

TIMES = [0.0, 1.0, 2.0, 3.0, 4.0]


def decay(rate, initial):
    return [initial * math.exp(-rate * t) for t in TIMES]
