#!/usr/bin/env bash
# The story's review asked for an automated check of the database setup. It is the acceptance
# suite; this script only runs it (arguments go to pytest: -k persistence, -x, ...).
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec nox -s acceptance -- "$@"
