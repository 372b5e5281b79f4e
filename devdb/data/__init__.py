"""The data layer: whole databases, and everything that moves them.

Copies and swaps by rename (databases.py, with space.py, sessions.py and grants.py), snapshots,
backup, reset, `restore/` (a dump is untrusted: recognised, read whole, checked, loaded beside
and swapped in) and `upgrade/` (plan, copy, prove, switch, rollback and finish). All or nothing,
proven before any swap. It may import every layer below it: base, machine, compose, stack.
"""
