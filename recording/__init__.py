"""Session recordings (asciicast v2 + hash chain) and the session wire frames, for both ends.

May import: nothing of this project outside recording/ (never agent or server).
"""
