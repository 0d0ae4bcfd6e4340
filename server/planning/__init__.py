"""Pure planning: the capacity model, admission control, the time-shared queue, estimates.

Stdlib only; nothing here imports `server` (tests/unit/test_architecture.py checks it), so the
server (server/support/capacity.py, admission.py, queue.py) and the simulation (server/sim/)
run the very same functions.
"""
