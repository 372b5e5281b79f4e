#!/usr/bin/env bash
# Makes a PostgreSQL 15 image available on a machine without a container registry.
#
#   scripts/build-offline-image.sh [--major 15|17] [--rebuild] [--no-pull]
#
# - postgres:<major>-alpine present, or pullable: says so, builds nothing, prints that tag
#   (--no-pull: the caller has just tried; go straight to the stand-in).
# - otherwise builds the stand-in ai-interviewer/postgres:<major>-offline from Debian's own
#   packages (debootstrap of bookworm + postgresql-15, or of trixie + postgresql-17, `docker
#   import`, then scripts/offline-image/), unless that tag exists already (--rebuild builds it
#   again). The major version is in the tag; 15 is the default.
# The last line printed is always the tag to use as POSTGRES_IMAGE.
#
# The stand-in is for CI and offline machines only. It honours the documented contract of the
# official image (see scripts/offline-image/docker-entrypoint.sh), but it is not a product image.
set -Eeuo pipefail

MAJOR=15
PULL_TIMEOUT_SECONDS=60
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

say() { printf 'build-offline-image: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

rebuild=0
pull=1
while [ $# -gt 0 ]; do
	case "$1" in
	--rebuild) rebuild=1 ;;
	--no-pull) pull=0 ;;
	--major) MAJOR="${2:-}"; shift ;;
	-h | --help) sed -n '2,14p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (usage: $0 [--major 15|17] [--rebuild] [--no-pull])" ;;
	esac
	shift
done
# The Debian release whose own packages carry this major version.
case "$MAJOR" in
15) SUITE="bookworm" ;;
17) SUITE="trixie" ;;
*) die "--major $MAJOR: a stand-in can be built for 15 (bookworm) or 17 (trixie)" ;;
esac
OFFICIAL_IMAGE="postgres:${MAJOR}-alpine"
STANDIN_IMAGE="ai-interviewer/postgres:${MAJOR}-offline"
BASE_IMAGE="ai-interviewer/postgres-rootfs:${SUITE}"

docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/provision-docker.sh first"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

if image_exists "$OFFICIAL_IMAGE"; then
	say "$OFFICIAL_IMAGE is present; nothing to build"
	echo "$OFFICIAL_IMAGE"
	exit 0
fi
if [ "$pull" = 1 ] && timeout "$PULL_TIMEOUT_SECONDS" docker pull -q "$OFFICIAL_IMAGE" >/dev/null 2>&1; then
	say "pulled $OFFICIAL_IMAGE; nothing to build"
	echo "$OFFICIAL_IMAGE"
	exit 0
fi
say "$OFFICIAL_IMAGE cannot be pulled here (no registry); using the stand-in $STANDIN_IMAGE"

if image_exists "$STANDIN_IMAGE" && [ "$rebuild" = 0 ]; then
	say "$STANDIN_IMAGE exists already (pass --rebuild to build it again)"
	echo "$STANDIN_IMAGE"
	exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
	say "installing debootstrap"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
rootfs="$workdir/rootfs"

started=$SECONDS
say "debootstrap $SUITE with postgresql-$MAJOR (about a minute)"
# debootstrap's default mirror: no registry or mirror address is written into this repository.
debootstrap --variant=minbase --include="postgresql-$MAJOR" "$SUITE" "$rootfs" >"$workdir/debootstrap.log" 2>&1 ||
	{ tail -n 20 "$workdir/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# Debian's package creates a cluster of its own; the image makes its cluster at first start.
rm -rf "$rootfs/var/lib/postgresql/$MAJOR" "$rootfs/etc/postgresql/$MAJOR"
# Keep the image small: package caches and documentation are not needed at run time.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
	"$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
	"$rootfs"/usr/share/locale/*

say "importing the root file system"
tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null

say "adding the entrypoint"
# The classic builder exists on every engine from 20.10 on; BuildKit may not be installed.
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg PG_MAJOR="$MAJOR" \
	-t "$STANDIN_IMAGE" \
	"$HERE/offline-image" >/dev/null
docker image rm "$BASE_IMAGE" >/dev/null 2>&1 || true

say "built $STANDIN_IMAGE in $((SECONDS - started)) s"
echo "$STANDIN_IMAGE"
