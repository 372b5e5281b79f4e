"""Test databases for the backend's pytest suite: a throwaway server, a template, clones.

server.py starts and finds the test server (the `postgres-test` service of docker-compose.yml)
and logins.py makes a login to it cheap (a one-iteration SCRAM verifier);
config.py reads `[tool.devdb.test]`; key.py and names.py are the pure rules; catalog.py is the
SQL; template.py builds the template once; pool.py keeps clones ready; provider.py ties them
together for one pytest process; plugin.py is the pytest face. Importing this package imports
nothing heavy (the pytest11 entry point loads plugin.py in every pytest run of the backend).

A layer of its own, above data and below the edge: it may import base, machine, compose and
stack (the Compose runner, the settings, readiness); only tasks.py's test-db tasks use it.
"""
