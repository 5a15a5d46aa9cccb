#!/usr/bin/env bash
# Install the EPR edge agent on Raspberry Pi OS (Bookworm or later). Run as root:
#
#   sudo ./install-rpi.sh [--source PATH] [--enable-uart] [--enable-1wire] [--server-key KEY]
#
#   --source PATH    the project (directory, sdist or wheel) to install; default: the
#                    directory this script is in, one level up
#   --enable-uart    turn on the GPIO UART for an RDM6300 on GPIO 15 (raspi-config)
#   --enable-1wire   turn on the 1-wire bus for a DS18B20 probe on GPIO 4
#   --no-apt         do not install Debian packages (they are already there)
#   --no-start       install and provision, but do not enable or start the service
#   --server-key KEY pin the server's configuration key (`epr-server config-key show`);
#                    without one the agent applies no remote configuration
#
# ROOT=/some/dir stages every file under that directory instead (for packaging and
# tests): no packages, no user, no venv, no systemctl.
#
# What it does: Debian packages (python3-venv, python3-lgpio for gpiozero), a system
# user epr-edge in the dialout and gpio groups, a venv in /opt/epr-edge with the
# project's [edge] extra, /etc/epr-edge/agent.toml (the example, if none exists), the
# systemd unit, the device key (its public key is printed for registration), and
# finally `systemctl enable --now` once the configuration checks out.
set -euo pipefail

ROOT=${ROOT:-}
PREFIX=/opt/epr-edge
ETC=/etc/epr-edge
STATE=/var/lib/epr-edge
UNIT_DIR=/etc/systemd/system
USER_NAME=epr-edge
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE=$(dirname "$HERE")
APT=1
START=1
UART=0
ONEWIRE=0
SERVER_KEY=

while [ $# -gt 0 ]; do
  case "$1" in
    --source) SOURCE=$2; shift 2 ;;
    --enable-uart) UART=1; shift ;;
    --enable-1wire) ONEWIRE=1; shift ;;
    --no-apt) APT=0; shift ;;
    --no-start) START=0; shift ;;
    --server-key) SERVER_KEY=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "install-rpi.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

staged() { [ -n "$ROOT" ]; }
say() { echo "epr-edge install: $*"; }

if ! staged && [ "$(id -u)" -ne 0 ]; then
  echo "install-rpi.sh: run as root (sudo)" >&2
  exit 1
fi

if ! staged && [ "$APT" -eq 1 ]; then
  say "Debian packages"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-venv python3-lgpio >/dev/null
fi

if ! staged; then
  getent group gpio >/dev/null || groupadd --system gpio
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    say "system user $USER_NAME"
    useradd --system --home-dir "$STATE" --shell /usr/sbin/nologin \
      --groups dialout,gpio "$USER_NAME"
  else
    usermod -a -G dialout,gpio "$USER_NAME"
  fi
fi

install -d -m 0755 "$ROOT$PREFIX" "$ROOT$UNIT_DIR"
install -d -m 0750 "$ROOT$ETC"
install -d -m 0700 "$ROOT$STATE"

if ! staged; then
  say "virtual environment in $PREFIX/venv"
  # System site packages: python3-lgpio from Debian is gpiozero's pin driver on a Pi 5.
  python3 -m venv --system-site-packages "$PREFIX/venv"
  "$PREFIX/venv/bin/pip" install --quiet --upgrade pip
  "$PREFIX/venv/bin/pip" install --quiet "${SOURCE}[edge]"
fi

if [ ! -e "$ROOT$ETC/agent.toml" ]; then
  say "example configuration in $ETC/agent.toml (edit it)"
  install -m 0640 "$HERE/agent.example.toml" "$ROOT$ETC/agent.toml"
fi

say "systemd unit"
sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@ETC@|$ETC|g" "$HERE/systemd/epr-edge.service" \
  >"$ROOT$UNIT_DIR/epr-edge.service"
chmod 0644 "$ROOT$UNIT_DIR/epr-edge.service"

if staged; then
  say "staged under $ROOT"
  exit 0
fi

chown -R root:"$USER_NAME" "$ETC"
chown "$USER_NAME":"$USER_NAME" "$STATE"

if [ "$UART" -eq 1 ] && command -v raspi-config >/dev/null; then
  say "enabling the GPIO UART (reboot needed)"
  raspi-config nonint do_serial_hw 0
  raspi-config nonint do_serial_cons 1
fi
if [ "$ONEWIRE" -eq 1 ] && command -v raspi-config >/dev/null; then
  say "enabling 1-wire on GPIO 4 (reboot needed)"
  raspi-config nonint do_onewire 0
fi

say "device key"
runuser -u "$USER_NAME" -- "$PREFIX/venv/bin/epr-edge" provision "$ETC/agent.toml" \
  ${SERVER_KEY:+--server-key "$SERVER_KEY"} || {
  echo "provisioning failed: fix $ETC/agent.toml (epr-edge check-config) and run again" >&2
  exit 1
}

systemctl daemon-reload
if [ "$START" -eq 1 ] && "$PREFIX/venv/bin/epr-edge" check-config "$ETC/agent.toml"; then
  systemctl enable --now epr-edge.service
  say "running: journalctl -u epr-edge -f"
else
  say "not started; when $ETC/agent.toml is ready: systemctl enable --now epr-edge"
fi
