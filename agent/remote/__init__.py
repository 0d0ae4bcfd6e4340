"""The support-server client: one HTTP(S) transport, tus upload, ticket and enrolment calls, pins.

May import: agent.home and the shared packages; never commands/, collect/, daemon/, session/.
"""
