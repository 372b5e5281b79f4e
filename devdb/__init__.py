"""Local PostgreSQL tooling for the AI Interviewer: the logic behind the Invoke tasks.

Seven layers, bottom to top; a module imports its own layer and those below it, never one above
(tests/unit/test_layers.py checks it): base, machine, compose, stack, data, testdb, edge. Each
layer's `__init__.py` says what lives there; docs/design.md shows the whole and where a new task
goes. Imports stay lazy so that `inv --list` starts fast.
"""
