"""The base layer: what every other layer uses, and nothing of ours below it.

Errors and the one exit-code table (errors.py), files written whole and private (files.py),
findings and rendering for the user, confirmation of destructive steps, the project lock (one
lock per project: locks.py), libpq argument quoting. It imports only the standard library.
"""
