"""Test-only: a Python process the tests start (an RQ worker, `flask worker`) lives on the tests' clock.

The tests put this folder on the child's PYTHONPATH with PORTAIL_TRAVEL_TO (the parent's clock at the
moment it starts the child, see tests/conftest.py::travelling): Python imports `sitecustomize` at
start-up, so the whole child process travels there before anything reads the time."""

import os

if os.environ.get("PORTAIL_TRAVEL_TO"):
    from datetime import datetime

    import time_machine

    time_machine.travel(datetime.fromisoformat(os.environ["PORTAIL_TRAVEL_TO"]), tick=True).start()
