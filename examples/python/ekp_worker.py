"""Serve an ekp `worker` model from Python: load the model once, answer members.

    # my_worker.py
    from ekp_worker import serve

    def model(parameters):            # {"F": 8.1, "theta": [0.1, 0.2]}
        return [parameters["F"] * 2.0, sum(parameters["theta"])]

    if __name__ == "__main__":
        serve(model)

and in the calibration file:

    [model]
    kind = "worker"
    program = "./my_worker.py"        # executable, with a `#!/usr/bin/env python3` line
    # or: program = "python3", args = ["my_worker.py"]   (python3 found on PATH)

The protocol (ekp's contract): ekp writes one JSON object per line on the
worker's stdin, `{"iteration": 0, "member": 1, "parameters": {...},
"folder": "/abs/DIR/iteration_000/member_001"}`; the worker answers one line
on stdout, `{"values": [...]}` or `{"error": "why"}`. End of input: exit.

`serve` keeps stdout for the protocol: whatever the model prints goes to
stderr (ekp keeps it, per worker and in the member's `stderr.log`). An
exception in the model becomes `{"error": ...}` (the member fails, the worker
goes on); a value that is not finite becomes `null` (the member fails).
Standard library only; numpy arrays and scalars are fine as return values.
"""

import json
import math
import sys
import traceback

__all__ = ["serve"]


def _number(v):
    v = float(v)
    return v if math.isfinite(v) else None


def _answer(fn, request, whole_request):
    try:
        values = fn(request if whole_request else request["parameters"])
        return {"values": [_number(v) for v in values]}
    except Exception as e:  # the member fails; the worker goes on
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(e).__name__}: {e}"}


def serve(fn, whole_request=False):
    """Answer ekp's requests with `fn(parameters) -> list of floats` until
    ekp closes stdin. With `whole_request=True`, `fn` gets the whole request
    (`iteration`, `member`, `parameters`, `folder`)."""
    protocol = sys.stdout
    sys.stdout = sys.stderr  # a stray print() must not break the protocol
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
        except ValueError as e:
            answer = {"error": f"ekp_worker: a request that is not JSON: {e}"}
        else:
            answer = _answer(fn, request, whole_request)
        protocol.write(json.dumps(answer, allow_nan=False) + "\n")
        protocol.flush()
