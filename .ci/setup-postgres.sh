#!/usr/bin/env bash
# Install (if needed) and start a local PostgreSQL from Debian's packages for the serving tests.
#
# Prints ONE line on stdout: the DSN of a database the tests may use; progress goes to stderr. Idempotent:
# running it again reuses the cluster, role and database. Usage from .ci/run:
#     export ATTNREC_TEST_POSTGRES_DSN="$(.ci/setup-postgres.sh)"
# Overridable: PGPORT (5432), ATTNREC_PG_USER (attnrec), ATTNREC_PG_PASSWORD (attnrec), ATTNREC_PG_DB (attnrec_test).
set -euo pipefail

PORT="${PGPORT:-5432}"
PG_USER="${ATTNREC_PG_USER:-attnrec}"
PG_PASSWORD="${ATTNREC_PG_PASSWORD:-attnrec}"
PG_DB="${ATTNREC_PG_DB:-attnrec_test}"
log() { echo "setup-postgres: $*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing Debian's postgresql package"
    as_root apt-get update >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y postgresql >&2
fi

VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$VERSION main"; then
    log "creating cluster $VERSION/main on port $PORT"
    as_root pg_createcluster "$VERSION" main --port "$PORT" >&2
fi

# listen on loopback only
CONF_DIR="/etc/postgresql/$VERSION/main"
as_root sed -i "s/^#\?listen_addresses\s*=.*/listen_addresses = '127.0.0.1'/" "$CONF_DIR/postgresql.conf"
as_root sed -i "s/^#\?port\s*=.*/port = $PORT/" "$CONF_DIR/postgresql.conf"

if ! pg_lsclusters -h | awk -v v="$VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; then
    log "starting cluster $VERSION/main"
    as_root pg_ctlcluster "$VERSION" main start >&2
fi

for _ in $(seq 1 30); do
    if as_postgres pg_isready -q -h 127.0.0.1 -p "$PORT"; then break; fi
    sleep 1
done
as_postgres pg_isready -h 127.0.0.1 -p "$PORT" >&2

psql_admin() { as_postgres psql -v ON_ERROR_STOP=1 -q -h /var/run/postgresql -p "$PORT" -d postgres "$@"; }
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != "1" ]; then
    log "creating role $PG_USER"
    psql_admin -c "CREATE ROLE \"$PG_USER\" LOGIN PASSWORD '$PG_PASSWORD'" >&2
fi
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]; then
    log "creating database $PG_DB"
    psql_admin -c "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_USER\"" >&2
fi

echo "postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PORT/$PG_DB"
