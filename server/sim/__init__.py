"""The simulation: a synthetic month of support replayed through the real planning code.

`workload` makes the month (customers, tickets, messages, true efforts) from a seed; `engine`
replays it under a simulated clock with one queue policy (`policies`); `results` turns the
deliveries into the figures `mydiag-server simulate` prints. The planning decisions are made
by server.planning (admission.check, queue.pick, estimates.overrun), the very functions the
server runs. This package imports server.planning and server.support.calendar only: no
database, no clock, no network.
"""
