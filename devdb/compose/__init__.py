"""The Compose layer: Compose is the referee for what `.env` and the compose files mean.

Finding the Compose binary (binary.py), invoking it exactly as plain `docker compose` would run
in this folder (invocation.py), asking it for the resolved configuration (config.py, cached by
cache.py), reading its words (words.py), the settings built from its answer (settings.py), the
env file it reads (envfile.py), and the runner that spells every Compose command (runner.py).
Nothing here or above reads `.env` or a compose file itself. It may import base and machine.
"""
