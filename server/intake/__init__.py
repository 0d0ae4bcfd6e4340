"""What happens to what a customer sends: tus uploads, verification, acceptance or quarantine,
and the report of every accepted bundle (rendered once, in the background, and kept).

May import: storage/, support/ (tickets, host keys), auth, bundle, report; never api/, cli/,
gateway/, web/.
"""
