"""Remote sessions on the support side: the SSH gateway and the session records (records.py).

The gateway: server.py (the listener, which wires the rest), doorman.py, connection.py,
tunnels.py, relay.py, watch.py, hostkey.py.

May import: storage/, support/ (tickets, engineers), recording; never api/, cli/, intake/.
"""
