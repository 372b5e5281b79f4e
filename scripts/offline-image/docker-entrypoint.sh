#!/usr/bin/env bash
# Entrypoint of the offline stand-in for postgres:15-alpine (see build-offline-image.sh).
#
# It follows the contract documented for the official image, because our tasks and tests rely
# on it: on an empty data directory it runs initdb with POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB / POSTGRES_INITDB_ARGS (each also readable from a *_FILE), runs
# /docker-entrypoint-initdb.d/*.sql and *.sh against a temporary server that listens on the unix
# socket only, then starts the real server on all addresses. On an initialised directory those
# variables change nothing. Written for this project; it is not the official script.
set -Eeuo pipefail

log() { printf '%s\n' "$*" >&2; }

# VAR_FILE support: read VAR from the file named by VAR_FILE; setting both is an error.
file_env() {
	local var="$1" default="${2:-}"
	local file_var="${var}_FILE"
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		log "error: both $var and $file_var are set (but are exclusive)"
		exit 1
	fi
	local value="$default"
	if [ -n "${!var:-}" ]; then
		value="${!var}"
	elif [ -n "${!file_var:-}" ]; then
		value="$(<"${!file_var}")"
	fi
	export "$var"="$value"
	unset "$file_var"
}

data_dir_is_initialised() { [ -s "$PGDATA/PG_VERSION" ]; }

prepare_directories() {
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA"
	chmod 03775 /var/run/postgresql
	if [ "$(id -u)" = 0 ]; then
		chown -R postgres:postgres "$PGDATA" /var/run/postgresql
	fi
}

read_environment() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
}

require_password() {
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		log "Error: Database is uninitialized and superuser password is not specified."
		log "       You must specify POSTGRES_PASSWORD to a non-empty value for the"
		log "       superuser. For example, \"-e POSTGRES_PASSWORD=password\" on \"docker run\"."
		log "       (or set POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password)"
		exit 1
	fi
}

run_initdb() {
	local pwfile
	pwfile="$(mktemp)"
	printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words by contract
	initdb --username="$POSTGRES_USER" --pwfile="$pwfile" $POSTGRES_INITDB_ARGS
	rm -f "$pwfile"
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	# Local socket and loopback stay trusted (initdb's default), every other host must log in.
	printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
}

psql_init() { psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username "$POSTGRES_USER" "$@"; }

create_database() {
	if [ "$POSTGRES_DB" != postgres ]; then
		psql_init --dbname postgres --set db="$POSTGRES_DB" <<-'SQL'
			CREATE DATABASE :"db" ;
		SQL
	fi
}

run_init_scripts() {
	local f
	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] || continue
		case "$f" in
		*.sh)
			if [ -x "$f" ]; then
				log "$0: running $f"
				"$f"
			else
				log "$0: sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql)
			log "$0: running $f"
			psql_init --dbname "$POSTGRES_DB" -f "$f"
			;;
		*.sql.gz)
			log "$0: running $f"
			gunzip -c "$f" | psql_init --dbname "$POSTGRES_DB"
			;;
		*) log "$0: ignoring $f" ;;
		esac
	done
}

initialise() {
	require_password
	run_initdb
	# The temporary server listens on the unix socket only, so nothing outside the container
	# (and no TCP healthcheck) can mistake the init phase for readiness.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
	export PGPASSWORD="${POSTGRES_PASSWORD:-}"
	create_database
	run_init_scripts
	unset PGPASSWORD
	pg_ctl -D "$PGDATA" -m fast -w stop
	log
	log 'PostgreSQL init process complete; ready for start up.'
	log
}

main() {
	if [ "${1:0:1}" = '-' ]; then
		set -- postgres "$@"
	fi
	if [ "$1" != postgres ]; then
		exec "$@"
	fi
	prepare_directories
	if [ "$(id -u)" = 0 ]; then
		# Drop root before anything touches the data: the server never runs as root.
		exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
	fi
	read_environment
	if data_dir_is_initialised; then
		log 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
	else
		initialise
	fi
	exec "$@"
}

main "$@"
