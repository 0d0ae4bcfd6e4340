"""The support records every request is checked against: engineers, tickets, enrolled host
keys, customer people, and the conversations with their reply clocks and breaches.

May import: storage/, auth, bundle; never api/, cli/, intake/, gateway/, mail/, web/.
"""
