#!/usr/bin/env python3
"""`worker` model: the decay model served by a long-lived Python process."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decay import decay  # noqa: E402
from ekp_worker import serve  # noqa: E402

if __name__ == "__main__":
    serve(lambda p: decay(p["rate"], p["initial"]))
