"""Remote sessions on the support side: the SSH gateway (server.py) and the session records.

May import: storage/, support/ (tickets, engineers), recording; never api/, cli/, intake/.
"""
