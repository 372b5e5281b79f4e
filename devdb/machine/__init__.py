"""The machine layer: the Docker engine and the Docker CLI's own configuration.

Talking to the engine's socket directly (engine.py: milliseconds, no process) and reading the
CLI's config.json (dockercli.py: contexts, plugin folders). It may import the base layer only.
"""
