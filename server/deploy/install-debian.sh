#!/usr/bin/env bash
# Install or update the EPR server on Debian 12 (bookworm). Run as root (no sudo
# needed); safe to run again: it keeps what exists (secrets, keys, the CA, the
# ledger) and puts owners, modes and generated files right.
#
#   server/deploy/install-debian.sh --host broker.example.kz [options]
#
#   --host NAME          name (or address) devices use for the broker; repeatable,
#                        the first is the certificate's CN (default: hostname -f)
#   --source PATH        the project to pip install (default: this checkout)
#   --venv DIR           use this existing virtualenv instead of making /opt/epr/venv
#   --workers N          ingest workers epr-ingest@0..N-1 (default 2)
#   --mqtt-port P        the broker's local plain listener for ingest (default 1883)
#   --mqtts-port P       the devices' TLS listener (default 8883)
#   --api-port P         epr-server serve (default 8000)
#   --metrics-port P     worker N's metrics on P + N (default 9310)
#   --pg-port P          PostgreSQL (default 5432)
#   --pg-admin-url URL   a superuser connection for making the role and database
#                        (default: psql as the postgres user over the local socket)
#   --database-url URL   use this database as it is (no role or database made)
#   --influx-url URL     telemetry store (InfluxDB 2.x, 1.8+, VictoriaMetrics; see
#                        docs/deploy.md); its token: --influx-token or later in server.env
#   --influx-token T
#   --broker-group G     group of the broker's files (default mosquitto)
#   --no-apt             do not install Debian packages
#   --no-systemctl       write the units but neither enable nor start anything
#   --root DIR           install everything under DIR (tests): implies --no-apt and
#                        --no-systemctl, makes no users (files keep the caller's
#                        user and group, the broker's files the caller's group
#                        unless --broker-group) and writes paths under DIR into
#                        every file
#   --with-systemctl     with --root: still run `systemctl` (a stand-in on PATH)
#
# What it does, in order: packages; the system user epr; /etc/epr, /var/lib/epr;
# the virtualenv; /etc/epr/server.env with generated secrets (EPR_SECRET_KEY, the
# database and ingest broker passwords); the PostgreSQL role and database;
# migrations; the configuration-signing key; the broker CA and certificate
# (epr-server tls init); the Mosquitto files (epr-server broker-config) linked into
# /etc/mosquitto/conf.d beside Debian's mosquitto.conf; the systemd units (the API,
# the ingest workers and the notification dispatcher), enabled and started. Every
# step prints one line.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE=$(cd "$HERE/../.." && pwd)
ROOT=
HOSTS=()
VENV=
WORKERS=2
MQTT_PORT=1883
MQTTS_PORT=8883
API_PORT=8000
METRICS_PORT=9310
PG_PORT=5432
PG_ADMIN_URL=
DATABASE_URL=
INFLUX_URL=
INFLUX_TOKEN=
APT=1
SYSTEMCTL=1
WITH_SYSTEMCTL=0
BROKER_GROUP=

usage() { sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --host) HOSTS+=("$2"); shift 2 ;;
    --source) SOURCE=$2; shift 2 ;;
    --venv) VENV=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --mqtt-port) MQTT_PORT=$2; shift 2 ;;
    --mqtts-port) MQTTS_PORT=$2; shift 2 ;;
    --api-port) API_PORT=$2; shift 2 ;;
    --metrics-port) METRICS_PORT=$2; shift 2 ;;
    --pg-port) PG_PORT=$2; shift 2 ;;
    --pg-admin-url) PG_ADMIN_URL=$2; shift 2 ;;
    --database-url) DATABASE_URL=$2; shift 2 ;;
    --influx-url) INFLUX_URL=$2; shift 2 ;;
    --influx-token) INFLUX_TOKEN=$2; shift 2 ;;
    --broker-group) BROKER_GROUP=$2; shift 2 ;;
    --no-apt) APT=0; shift ;;
    --no-systemctl) SYSTEMCTL=0; shift ;;
    --with-systemctl) WITH_SYSTEMCTL=1; shift ;;
    --root) ROOT=$(mkdir -p "$2" && cd "$2" && pwd); APT=0; SYSTEMCTL=0; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-debian.sh: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done

say() { echo "epr install: $*"; }
die() { echo "install-debian.sh: $*" >&2; exit 1; }

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (it makes users, writes /etc and starts services)"
fi
for port in "$WORKERS" "$MQTT_PORT" "$MQTTS_PORT" "$API_PORT" "$METRICS_PORT" "$PG_PORT"; do
  [[ "$port" =~ ^[0-9]+$ ]] || die "not a number: $port"
done
[ -z "$ROOT" ] || [ "$WITH_SYSTEMCTL" -eq 0 ] || SYSTEMCTL=1
[ ${#HOSTS[@]} -gt 0 ] || HOSTS=("$(hostname -f 2>/dev/null || hostname)")

ETC=$ROOT/etc/epr
STATE=$ROOT/var/lib/epr
MOSQ=$ROOT/etc/mosquitto
CERTS=$MOSQ/certs/epr
UNITS=$ROOT/etc/systemd/system
ENV_FILE=$ETC/server.env
PREFIX=$ROOT/opt/epr

if [ -n "$ROOT" ]; then
  EPR_USER=$(id -un); EPR_GROUP=$(id -gn); MOSQ_GROUP=${BROKER_GROUP:-$(id -gn)}
else
  EPR_USER=epr; EPR_GROUP=epr; MOSQ_GROUP=${BROKER_GROUP:-mosquitto}
fi

# 1. Packages -----------------------------------------------------------------
if [ "$APT" -eq 1 ]; then
  say "Debian packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3 python3-venv mosquitto mosquitto-clients postgresql postgresql-client curl \
    >/dev/null
fi

# 2. System user --------------------------------------------------------------
if [ -z "$ROOT" ] && ! id epr >/dev/null 2>&1; then
  say "system user epr"
  adduser --system --group --home /var/lib/epr --no-create-home epr >/dev/null
fi

# 3. Directories (owners and modes set again on every run) ---------------------
say "directories"
install -d -m 0755 "$ROOT/etc" "$ROOT/var/lib" "$MOSQ" "$MOSQ/conf.d" "$MOSQ/certs" "$UNITS"
install -d -o root -g "$EPR_GROUP" -m 0750 "$ETC" 2>/dev/null || install -d -m 0750 "$ETC"
install -d -o "$EPR_USER" -g "$EPR_GROUP" -m 0750 "$STATE"
install -d -o root -g "$MOSQ_GROUP" -m 0750 "$MOSQ/epr" "$CERTS" 2>/dev/null \
  || install -d -m 0750 "$MOSQ/epr" "$CERTS"

# 4. The application ------------------------------------------------------------
if [ -z "$VENV" ]; then
  VENV=$PREFIX/venv
  if [ ! -x "$VENV/bin/epr-server" ]; then
    say "virtualenv $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
  fi
  say "installing $SOURCE[server]"
  "$VENV/bin/pip" install --quiet "$SOURCE[server]"
fi
EPR=$VENV/bin/epr-server
[ -x "$EPR" ] || die "$EPR missing: --venv names a virtualenv with the project installed"
install -d -m 0755 "$ROOT/usr/local/bin"
ln -sfn "$EPR" "$ROOT/usr/local/bin/epr-server"

# 5. The settings, with generated secrets (kept on re-runs) ----------------------
secret() { "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))'; }
setting() {  # setting KEY: its value in the env file, empty if none
  [ -f "$ENV_FILE" ] && sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1 || true
}
DB_PASSWORD=$(setting EPR_DATABASE_URL | sed -n 's|^postgresql[^:]*://epr:\([^@]*\)@.*|\1|p')
[ -n "$DB_PASSWORD" ] || DB_PASSWORD=$(secret)
INGEST_PASSWORD=$(setting EPR_BROKER_URL | sed -n 's|^mqtt://epr-ingest:\([^@]*\)@.*|\1|p')
[ -n "$INGEST_PASSWORD" ] || INGEST_PASSWORD=$(secret)
SECRET_KEY=$(setting EPR_SECRET_KEY)
[ -n "$SECRET_KEY" ] || SECRET_KEY=$(secret)
[ -n "$DATABASE_URL" ] || DATABASE_URL=$(setting EPR_DATABASE_URL)
[ -n "$DATABASE_URL" ] || DATABASE_URL="postgresql+psycopg://epr:$DB_PASSWORD@127.0.0.1:$PG_PORT/epr"
[ -n "$INFLUX_URL" ] || INFLUX_URL=$(setting EPR_INFLUX_URL)
[ -n "$INFLUX_TOKEN" ] || INFLUX_TOKEN=$(setting EPR_INFLUX_TOKEN)
say "settings $ENV_FILE"
umask 077
{
  echo "# Written by install-debian.sh; its secrets are kept when it runs again."
  echo "# Every setting: server/config.py. Commands read it: set -a; . $ENV_FILE; set +a"
  echo "EPR_DATABASE_URL=$DATABASE_URL"
  echo "EPR_BROKER_URL=mqtt://epr-ingest:$INGEST_PASSWORD@127.0.0.1:$MQTT_PORT"
  echo "EPR_SHARE_GROUP=ingest"
  echo "EPR_CONFIG_KEY_FILE=$STATE/config-signing.key"
  echo "EPR_SECRET_KEY=$SECRET_KEY"
  echo "EPR_DEVICE_BROKER_URL=mqtts://${HOSTS[0]}:$MQTTS_PORT"
  echo "EPR_TLS_CA=$CERTS/ca.crt"
  echo "EPR_METRICS_PORT=$METRICS_PORT"
  echo "EPR_API_HOST=127.0.0.1"
  echo "EPR_API_PORT=$API_PORT"
  if [ -n "$INFLUX_URL" ]; then
    echo "EPR_INFLUX_URL=$INFLUX_URL"
    echo "EPR_INFLUX_TOKEN=$INFLUX_TOKEN"
    echo "EPR_INFLUX_ORG=epr"
    echo "EPR_INFLUX_BUCKET=telemetry"
  fi
  # Anything the operator added by hand stays.
  if [ -f "$ENV_FILE" ]; then
    grep -Ev '^(#|EPR_(DATABASE_URL|BROKER_URL|SHARE_GROUP|CONFIG_KEY_FILE|SECRET_KEY|DEVICE_BROKER_URL|TLS_CA|METRICS_PORT|API_HOST|API_PORT|INFLUX_URL|INFLUX_TOKEN|INFLUX_ORG|INFLUX_BUCKET)=|$)' "$ENV_FILE" || true
  fi
} >"$ENV_FILE.new"
chown "root:$EPR_GROUP" "$ENV_FILE.new" 2>/dev/null || true
chmod 0640 "$ENV_FILE.new"
mv "$ENV_FILE.new" "$ENV_FILE"
printf '%s\n' "$INGEST_PASSWORD" >"$ETC/ingest-broker-password.new"
chmod 0600 "$ETC/ingest-broker-password.new"
mv "$ETC/ingest-broker-password.new" "$ETC/ingest-broker-password"
umask 022

# Every command below reads the same settings as the services.
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
as_epr() {  # run a command as the service user (root mode: as the caller)
  if [ -n "$ROOT" ]; then "$@"; else runuser -u epr -- "$@"; fi
}

# 6. PostgreSQL role and database ------------------------------------------------
case "$DATABASE_URL" in
  postgresql*://epr:*@*/epr)
    say "PostgreSQL role and database epr"
    psql_admin() {
      if [ -n "$PG_ADMIN_URL" ]; then psql "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 -qAt "$@"
      else runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qAt "$@"; fi
    }
    # The password goes through a psql variable (quoted by psql), never into the SQL text.
    psql_admin -v pw="$DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE epr LOGIN PASSWORD %L', :'pw')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'epr') \gexec
SELECT format('ALTER ROLE epr LOGIN PASSWORD %L', :'pw') \gexec
SELECT 'CREATE DATABASE epr OWNER epr ENCODING ''UTF8'''
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'epr') \gexec
SQL
    ;;
  *) say "database $(echo "$DATABASE_URL" | sed 's|//[^@]*@|//|') as given" ;;
esac

# 7. Migrations, 8. the configuration-signing key -------------------------------
say "migrations"
as_epr "$EPR" migrate
if [ ! -e "$STATE/config-signing.key" ]; then
  say "configuration-signing key"
  as_epr "$EPR" config-key create >/dev/null
fi
chmod 0600 "$STATE/config-signing.key"

# 9. The broker's CA and certificate ---------------------------------------------
say "broker certificate for ${HOSTS[*]}"
host_args=()
for h in "${HOSTS[@]}"; do host_args+=(--host "$h"); done
"$EPR" tls init "$CERTS" "${host_args[@]}" --group "$MOSQ_GROUP" >/dev/null

# 10. Mosquitto, beside Debian's mosquitto.conf ----------------------------------
say "Mosquitto configuration $MOSQ/epr"
"$EPR" broker-config "$MOSQ/epr" --group "$MOSQ_GROUP" \
  --ingest-password-file "$ETC/ingest-broker-password" \
  --local-port "$MQTT_PORT" --tls-port "$MQTTS_PORT" \
  --tls-cert "$CERTS/server.crt" --tls-key "$CERTS/server.key" --ca "$CERTS/ca.crt" >/dev/null
ln -sfn "$MOSQ/epr/epr.conf" "$MOSQ/conf.d/epr.conf"

# 11. systemd units ------------------------------------------------------------------
say "systemd units (epr-serve, epr-ingest@0..$((WORKERS - 1)), epr-notify)"
for unit in epr-serve.service epr-ingest@.service epr-notify.service; do
  sed -e "s|/opt/epr/venv|$VENV|g" -e "s|/etc/epr/|$ETC/|g" -e "s|/var/lib/epr|$STATE|g" \
    "$SOURCE/server/systemd/$unit" >"$UNITS/$unit.new"
  chmod 0644 "$UNITS/$unit.new"
  mv "$UNITS/$unit.new" "$UNITS/$unit"
done
if [ "$SYSTEMCTL" -eq 1 ]; then
  systemctl daemon-reload
  systemctl restart mosquitto
  instances=()
  for ((i = 0; i < WORKERS; i++)); do instances+=("epr-ingest@$i"); done
  systemctl enable --now epr-serve "${instances[@]}" epr-notify >/dev/null
  systemctl restart epr-serve "${instances[@]}" epr-notify
fi
say "done: settings in $ENV_FILE; devices trust $CERTS/ca.crt"
