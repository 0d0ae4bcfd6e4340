"""The support records every request is checked against: engineers, tickets, enrolled host keys.

May import: storage/, auth, bundle; never api/, cli/, intake/, gateway/.
"""
