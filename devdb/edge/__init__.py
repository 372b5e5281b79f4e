"""The edge: what the user meets, and the glue that tasks.py calls.

Errors turned into exit codes and one line each (cli.py), doctor, check-docker and setup. It
may import every layer; nothing imports it but tasks.py.
"""
