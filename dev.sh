#!/usr/bin/env bash
# Developer entry point for a fresh Debian 12 machine:
#   ./dev.sh demo   install everything, start a 2-site local XRootD lake and the daemon
#   ./dev.sh test   install everything, then lint, type-check and run the test suite
#   ./dev.sh install
set -euo pipefail
cd "$(dirname "$0")"

VENV=${VENV:-.venv}
APT_PACKAGES=(
  xrootd-server xrootd-server-plugins xrootd-client xrootd-client-http-plugins
  xrootd-scitokens-plugins python3-xrootd python3-gfal2 gfal2 gfal2-plugin-http
  gfal2-plugin-xrootd gfal2-plugin-file davix python3-venv openssl curl
  prometheus prometheus-alertmanager nginx libnginx-mod-http-dav-ext iperf3
)

system_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # No init system here: keep package scripts from starting services.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
  fi
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

python_env() {
  # Debian's interpreter, so Debian's XRootD and gfal2 bindings are importable.
  if [ ! -x "$VENV/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
  fi
  if [ ! -e "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e '.[test]'
    touch "$VENV/.installed"
  fi
}

install() { system_packages; python_env; }

case "${1:-}" in
  install) install ;;
  demo)
    install
    shift
    exec "$VENV/bin/lakeprobe" demo "$@"
    ;;
  test)
    install
    shift
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy"  # files and paths: pyproject.toml [tool.mypy]
    exec "$VENV/bin/pytest" "$@"
    ;;
  *)
    echo "usage: $0 demo|test|install" >&2
    exit 2
    ;;
esac
