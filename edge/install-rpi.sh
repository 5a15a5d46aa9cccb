#!/usr/bin/env bash
# Install or update the EPR edge agent on Raspberry Pi OS or plain Debian (bookworm
# or later). Run as root (no sudo needed); safe to run again.
#
#   edge/install-rpi.sh --device-id rp-almaty-01 [options]
#
#   --device-id ID   this device's id (written into a new agent.toml); the only thing
#                    the install needs. The device key is made and its public key
#                    printed (public_key=…) for the operator to register.
#   --site-id ID     its site (default: kept from agent.toml, else the device id)
#   --source PATH    the project (directory, sdist or wheel) to install; default: the
#                    directory this script is in, one level up
#   --venv DIR       use this existing virtualenv instead of making /opt/epr-edge/venv
#   --enable-uart    turn on the GPIO UART for an RDM6300 on GPIO 15 (raspi-config)
#   --enable-1wire   turn on the 1-wire bus for a DS18B20 probe on GPIO 4
#   --no-apt         do not install Debian packages (they are already there)
#   --no-start       do not enable or start the service (it starts after enrolment)
#   --list-packages  print the Debian packages it would install here, and stop
#   --root DIR       install everything under DIR (tests): implies --no-apt and
#                    --no-start, makes no users or groups (files keep the caller's),
#                    and writes paths under DIR into agent.toml and the unit
#
# ROOT=DIR (environment) only stages files for packaging, with the real paths in them.
#
# What it does: Debian packages (python3-venv; python3-lgpio and python3-rpi-lgpio,
# gpiozero's pin drivers, only where apt-cache knows them: plain Debian has none), a
# system user epr-edge in the dialout and gpio groups, a venv in /opt/epr-edge with
# the project's [edge] extra, epr-edge on the PATH (/usr/local/bin), /etc/epr-edge
# (root:epr-edge 0750) with agent.toml made from the example if there is none, the
# systemd unit, and the device key. The broker password, the CA and the server's key
# come next, in the enrolment bundle (epr-edge enroll); the service starts once the
# configuration checks out.
set -euo pipefail

STAGE=${ROOT:-}
ROOT=
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE=$(dirname "$HERE")
VENV=
DEVICE_ID=
SITE_ID=
APT=1
START=1
UART=0
ONEWIRE=0
LIST_PACKAGES=0

while [ $# -gt 0 ]; do
  case "$1" in
    --device-id) DEVICE_ID=$2; shift 2 ;;
    --site-id) SITE_ID=$2; shift 2 ;;
    --source) SOURCE=$2; shift 2 ;;
    --venv) VENV=$2; shift 2 ;;
    --enable-uart) UART=1; shift ;;
    --enable-1wire) ONEWIRE=1; shift ;;
    --no-apt) APT=0; shift ;;
    --no-start) START=0; shift ;;
    --list-packages) LIST_PACKAGES=1; shift ;;
    --root) ROOT=$(mkdir -p "$2" && cd "$2" && pwd); APT=0; START=0; shift 2 ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-rpi.sh: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done

say() { echo "epr-edge install: $*"; }

debian_packages() {  # what this system's archive offers of what the agent uses
  local packages=(python3 python3-venv) gpio
  for gpio in python3-lgpio python3-rpi-lgpio; do
    if apt-cache show "$gpio" >/dev/null 2>&1; then packages+=("$gpio"); fi
  done
  echo "${packages[@]}"
}
if [ "$LIST_PACKAGES" -eq 1 ]; then
  debian_packages
  exit 0
fi

die() { echo "install-rpi.sh: $*" >&2; exit 1; }

PREFIX=/opt/epr-edge
ETC=/etc/epr-edge
STATE=/var/lib/epr-edge
UNIT_DIR=/etc/systemd/system
USER_NAME=epr-edge

if [ -n "$STAGE" ]; then
  # Packaging: the files under $STAGE, with the paths they will have on the device.
  install -d -m 0755 "$STAGE$PREFIX" "$STAGE$UNIT_DIR" "$STAGE/usr/local/bin"
  install -d -m 0750 "$STAGE$ETC"
  install -d -m 0700 "$STAGE$STATE"
  [ -e "$STAGE$ETC/agent.toml" ] || install -m 0640 "$HERE/agent.example.toml" "$STAGE$ETC/agent.toml"
  sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@ETC@|$ETC|g" "$HERE/systemd/epr-edge.service" \
    >"$STAGE$UNIT_DIR/epr-edge.service"
  chmod 0644 "$STAGE$UNIT_DIR/epr-edge.service"
  ln -sfn "$PREFIX/venv/bin/epr-edge" "$STAGE/usr/local/bin/epr-edge"
  say "staged under $STAGE"
  exit 0
fi

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (it makes a user and writes /etc)"
fi
R_PREFIX=$ROOT$PREFIX
R_ETC=$ROOT$ETC
R_STATE=$ROOT$STATE
CONFIG=$R_ETC/agent.toml
if [ -z "$DEVICE_ID" ] && [ -f "$CONFIG" ]; then
  DEVICE_ID=$(sed -n 's/^device_id *= *"\(.*\)".*/\1/p' "$CONFIG" | head -n 1)
fi
[ -n "$DEVICE_ID" ] || die "--device-id ID is needed (the id the operator registers)"
[[ "$DEVICE_ID" =~ ^[a-z0-9][a-z0-9_-]{1,62}$ ]] || die "--device-id $DEVICE_ID: lower-case letters, digits, - and _ (2-63)"

if [ -n "$ROOT" ]; then
  AGENT_USER=$(id -un); AGENT_GROUP=$(id -gn)
else
  AGENT_USER=$USER_NAME; AGENT_GROUP=$USER_NAME
fi

# 1. Packages: the GPIO drivers only where this system's archive has them.
if [ "$APT" -eq 1 ]; then
  say "Debian packages"
  apt-get update -qq
  read -r -a packages <<<"$(debian_packages)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null
  say "installed ${packages[*]}"
fi

# 2. The agent's user, in the groups that own serial ports and GPIO chips.
if [ -z "$ROOT" ]; then
  getent group gpio >/dev/null || groupadd --system gpio
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    say "system user $USER_NAME"
    useradd --system --user-group --home-dir "$STATE" --no-create-home \
      --shell /usr/sbin/nologin --groups dialout,gpio "$USER_NAME"
  else
    usermod -a -G dialout,gpio "$USER_NAME"
  fi
fi

# 3. Directories: owners and modes put right on every run (the agent reads
# /etc/epr-edge through its group and owns its state).
install -d -m 0755 "$ROOT/etc" "$ROOT/opt" "$R_PREFIX" "$ROOT$UNIT_DIR" "$ROOT/usr/local/bin"
install -d -m 0755 "$ROOT/var/lib"
install -d -m 0750 "$R_ETC"
install -d -m 0700 "$R_STATE"
chown "root:$AGENT_GROUP" "$R_ETC" 2>/dev/null || chgrp "$AGENT_GROUP" "$R_ETC"
chown "$AGENT_USER:$AGENT_GROUP" "$R_STATE"
# Keys and journal inside the state directory belong to the agent, whoever ran
# commands there (a provision run as root must not lock the agent out).
find "$R_STATE" -mindepth 1 -maxdepth 1 -exec chown "$AGENT_USER:$AGENT_GROUP" {} +

# 4. The program, and epr-edge on the PATH.
if [ -z "$VENV" ]; then
  VENV=$R_PREFIX/venv
  say "virtual environment in $VENV"
  # System site packages: python3-lgpio from Debian is gpiozero's pin driver on a Pi 5.
  [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet "${SOURCE}[edge]"
fi
[ -x "$VENV/bin/epr-edge" ] || die "$VENV/bin/epr-edge missing: --venv names a virtualenv with the project"
ln -sfn "$VENV/bin/epr-edge" "$ROOT/usr/local/bin/epr-edge"

# 5. The configuration: the example with this device's id, if there is none yet.
if [ ! -e "$CONFIG" ]; then
  say "configuration $ETC/agent.toml for $DEVICE_ID (edit its devices)"
  sed -e "s|^device_id = .*|device_id = \"$DEVICE_ID\"|" \
      -e "s|^site_id = .*|site_id = \"${SITE_ID:-$DEVICE_ID}\"|" \
      -e "s|^username = .*|username = \"$DEVICE_ID\"|" \
      -e "s|\"/etc/epr-edge/|\"$R_ETC/|g" -e "s|\"/var/lib/epr-edge\"|\"$R_STATE\"|g" \
      "$HERE/agent.example.toml" >"$CONFIG.new"
  mv "$CONFIG.new" "$CONFIG"
elif [ -n "$SITE_ID" ]; then
  sed -i "s|^site_id = .*|site_id = \"$SITE_ID\"|" "$CONFIG"
fi
chown "root:$AGENT_GROUP" "$CONFIG" 2>/dev/null || chgrp "$AGENT_GROUP" "$CONFIG"
chmod 0640 "$CONFIG"
for secret in "$R_ETC/mqtt.pass" "$R_ETC/ca.pem"; do
  if [ -e "$secret" ]; then
    chown "root:$AGENT_GROUP" "$secret" 2>/dev/null || chgrp "$AGENT_GROUP" "$secret"
    chmod 0640 "$secret"
  fi
done

# 6. The unit.
say "systemd unit"
sed -e "s|@PREFIX@/venv|$VENV|g" -e "s|@PREFIX@|$R_PREFIX|g" -e "s|@ETC@|$R_ETC|g" \
  "$HERE/systemd/epr-edge.service" >"$ROOT$UNIT_DIR/epr-edge.service.new"
chmod 0644 "$ROOT$UNIT_DIR/epr-edge.service.new"
mv "$ROOT$UNIT_DIR/epr-edge.service.new" "$ROOT$UNIT_DIR/epr-edge.service"

if [ -z "$ROOT" ]; then
  if [ "$UART" -eq 1 ] && command -v raspi-config >/dev/null; then
    say "enabling the GPIO UART (reboot needed)"
    raspi-config nonint do_serial_hw 0
    raspi-config nonint do_serial_cons 1
  fi
  if [ "$ONEWIRE" -eq 1 ] && command -v raspi-config >/dev/null; then
    say "enabling 1-wire on GPIO 4 (reboot needed)"
    raspi-config nonint do_onewire 0
  fi
fi

# 7. The device key (needs only the device id), made as the agent's user.
say "device key"
if [ -n "$ROOT" ]; then
  "$VENV/bin/epr-edge" provision "$CONFIG"
else
  runuser -u "$USER_NAME" -- "$VENV/bin/epr-edge" provision "$CONFIG"
fi

if [ "$START" -eq 1 ]; then
  systemctl daemon-reload
  if "$VENV/bin/epr-edge" check-config "$CONFIG" >/dev/null 2>&1; then
    systemctl enable --now epr-edge.service
    say "running (journalctl -u epr-edge -f)"
  else
    systemctl enable epr-edge.service
    say "enabled; it starts after enrolment: epr-edge enroll BUNDLE, then systemctl start epr-edge"
  fi
fi
