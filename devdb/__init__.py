"""Local PostgreSQL tooling for the AI Interviewer: the logic behind the Invoke tasks.

Modules, one concern each: settings (configuration and validation), compose (the only place
that spells a Compose command), readiness (when the database really accepts logins), urls
(connection strings), lifecycle (the tasks' operations), docker_check, render (output).
Imports stay lazy so that `inv --list` starts fast.
"""
