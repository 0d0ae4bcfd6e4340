"""What happens to what a customer sends: tus uploads, verification, acceptance or quarantine.

May import: storage/, support/ (tickets, host keys), auth, bundle; never api/, cli/, gateway/.
"""
