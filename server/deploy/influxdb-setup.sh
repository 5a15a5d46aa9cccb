#!/usr/bin/env bash
# Prepare the telemetry store the ingest writes to, and say what to put in server.env.
# Run as root on the server host (no sudo needed); safe to run again.
#
#   server/deploy/influxdb-setup.sh [--url http://127.0.0.1:8086] [--env-file /etc/epr/server.env]
#
# The ingest writes with influxdb-client's v2 write API (POST /api/v2/write). What
# answers it, and what else each store gives you:
#
#   store                      writer  dashboards (InfluxQL)  what this script does
#   InfluxDB 2.x               yes     yes, via DBRP mapping  org epr, bucket telemetry (400 d),
#                                                             a write token, a DBRP mapping and
#                                                             a v1 read user for Grafana
#   InfluxDB 1.8+ (1.x)        yes     yes, directly          database telemetry (400 d), users
#                                                             epr_writer and grafana (passwords
#                                                             generated); token user:password
#   InfluxDB 1.7 and older     NO      -                      stops: no /api/v2/write (Debian
#     (Debian 12's 1.6.7)                                     12 ships 1.6.7). Install 1.8+ or
#                                                             2.x from InfluxData's repository,
#                                                             or VictoriaMetrics
#   VictoriaMetrics            yes     no (PromQL/MetricsQL)  nothing to make; dashboards need a
#                                                             Prometheus-type datasource
#
# --env-file FILE sets EPR_INFLUX_URL, _TOKEN, _ORG and _BUCKET in FILE (other lines
# kept); without it they are printed. InfluxDB 2.x needs the `influx` CLI (from the
# same vendor package) and INFLUX_ADMIN_PASSWORD for its first setup; 1.x needs an
# admin user only if its auth is on (INFLUX_ADMIN_USER, INFLUX_ADMIN_PASSWORD).
set -euo pipefail

URL=http://127.0.0.1:8086
ENV_FILE=
DB=telemetry
RETENTION=400d
while [ $# -gt 0 ]; do
  case "$1" in
    --url) URL=${2%/}; shift 2 ;;
    --env-file) ENV_FILE=$2; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "influxdb-setup.sh: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done

say() { echo "telemetry: $*"; }
die() { echo "influxdb-setup.sh: $*" >&2; exit 1; }
command -v curl >/dev/null || die "needs curl (apt-get install curl)"
secret() { head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='; }

set_env() {  # set_env TOKEN ORG BUCKET
  local lines
  lines=$(printf 'EPR_INFLUX_URL=%s\nEPR_INFLUX_TOKEN=%s\nEPR_INFLUX_ORG=%s\nEPR_INFLUX_BUCKET=%s\n' \
    "$URL" "$1" "$2" "$3")
  if [ -z "$ENV_FILE" ]; then
    say "put these in /etc/epr/server.env, then restart the ingest workers:"
    echo "$lines"
    return
  fi
  [ -f "$ENV_FILE" ] || die "$ENV_FILE: no such file"
  {
    grep -Ev '^EPR_INFLUX_(URL|TOKEN|ORG|BUCKET)=' "$ENV_FILE" || true
    echo "$lines"
  } >"$ENV_FILE.new"
  chmod --reference="$ENV_FILE" "$ENV_FILE.new"
  chown --reference="$ENV_FILE" "$ENV_FILE.new"
  mv "$ENV_FILE.new" "$ENV_FILE"
  say "wrote EPR_INFLUX_* into $ENV_FILE (restart the ingest workers to use them)"
}

headers=$(curl -fsS -o /dev/null -D - "$URL/ping" 2>/dev/null) \
  || die "$URL/ping does not answer: is the store running, and is --url right?"
version=$(printf '%s' "$headers" | tr -d '\r' | sed -n 's/^[Xx]-[Ii]nflux[Dd][Bb]-[Vv]ersion: *//p')

if [ -z "$version" ]; then
  metrics=$(curl -fsS "$URL/metrics" 2>/dev/null || true)
  if printf '%s\n' "$metrics" | grep '^vm_app_version' >/dev/null; then
    say "VictoriaMetrics at $URL: the writer needs nothing made; the dashboards' InfluxQL"
    say "is not answered here (use InfluxDB for them, or Prometheus-type panels)"
    set_env "unused" "epr" "$DB"
    exit 0
  fi
  die "$URL answers /ping but says no InfluxDB version: not a store this script knows"
fi

major=${version#v}; major=${major%%.*}
minor=${version#v}; minor=${minor#*.}; minor=${minor%%.*}
case "$major" in
  2)
    say "InfluxDB $version"
    command -v influx >/dev/null || die "InfluxDB 2.x needs its influx CLI (package influxdb2-cli)"
    export INFLUX_HOST=$URL
    if ! influx org list --name epr >/dev/null 2>&1; then
      influx setup --skip-verify --force --org epr --bucket "$DB" --retention "$RETENTION" \
        --username admin --password "${INFLUX_ADMIN_PASSWORD:?set INFLUX_ADMIN_PASSWORD for the first setup}" >/dev/null
    fi
    bucket_id=$(influx bucket list --org epr --name "$DB" --hide-headers | cut -f1)
    [ -n "$bucket_id" ] || bucket_id=$(influx bucket create --org epr --name "$DB" \
      --retention "$RETENTION" --hide-headers | cut -f1)
    token=$(influx auth create --org epr --write-bucket "$bucket_id" \
      --description "epr ingest" --hide-headers | cut -f3)
    # The dashboards speak InfluxQL: map the bucket to a database, and a v1 reader.
    influx v1 dbrp list --org epr --db "$DB" --hide-headers 2>/dev/null | grep -q . \
      || influx v1 dbrp create --org epr --db "$DB" --rp autogen --bucket-id "$bucket_id" --default >/dev/null
    reader=$(secret)
    influx v1 auth delete --org epr --username grafana >/dev/null 2>&1 || true
    influx v1 auth create --org epr --username grafana --password "$reader" \
      --read-bucket "$bucket_id" >/dev/null
    say "Grafana: EPR_GRAFANA_INFLUX_DB=$DB EPR_GRAFANA_INFLUX_USER=grafana EPR_GRAFANA_INFLUX_PASSWORD=$reader"
    set_env "$token" "epr" "$DB"
    ;;
  1)
    if [ "$minor" -lt 8 ]; then
      die "InfluxDB $version is too old: the writer needs /api/v2/write, which InfluxDB has
from 1.8 on (Debian 12 ships 1.6.7). Telemetry would wait in the spool forever. Install
InfluxDB 1.8+ or 2.x from InfluxData's repository, or VictoriaMetrics, and run this again."
    fi
    say "InfluxDB $version (v2 write API through its 1.8 compatibility endpoints)"
    q() {  # q STATEMENT: run InfluxQL as the admin (if auth is on)
      curl -fsS -XPOST "$URL/query" ${INFLUX_ADMIN_USER:+-u "$INFLUX_ADMIN_USER:${INFLUX_ADMIN_PASSWORD:-}"} \
        --data-urlencode "q=$1" >/dev/null || die "InfluxQL failed: ${1%% PASSWORD*}"
    }
    writer=$(secret); reader=$(secret)
    q "CREATE DATABASE $DB WITH DURATION $RETENTION NAME autogen"
    q "CREATE USER epr_writer WITH PASSWORD '$writer'"
    q "SET PASSWORD FOR epr_writer = '$writer'"
    q "GRANT WRITE ON $DB TO epr_writer"
    q "CREATE USER grafana WITH PASSWORD '$reader'"
    q "SET PASSWORD FOR grafana = '$reader'"
    q "GRANT READ ON $DB TO grafana"
    say "Grafana: EPR_GRAFANA_INFLUX_DB=$DB EPR_GRAFANA_INFLUX_USER=grafana EPR_GRAFANA_INFLUX_PASSWORD=$reader"
    # 1.8's v2 API: token "user:password", bucket "database/retention policy", any org.
    set_env "epr_writer:$writer" "-" "$DB/autogen"
    ;;
  *) die "InfluxDB $version: a version this script does not know" ;;
esac
