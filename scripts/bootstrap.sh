#!/usr/bin/env bash
# Bootstrap a fresh machine: system packages (espeak-ng, libportaudio2) and the .venv with the given extras.
# Usage: scripts/bootstrap.sh [extras]   e.g. scripts/bootstrap.sh train,export,dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

need=()
[ -e /usr/lib/x86_64-linux-gnu/libespeak-ng.so.1 ] || ldconfig -p 2>/dev/null | grep -q libespeak-ng.so.1 || need+=(espeak-ng)
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || need+=(libportaudio2)
ldconfig -p 2>/dev/null | grep -q libsndfile.so.1 || need+=(libsndfile1)
# chromium + chromium-driver (dev: tests/test_viewer.py drives the browser viewer in headless Chromium)
case ",$extras," in *,dev,*) [ -x /usr/bin/chromium ] || need+=(chromium); [ -x /usr/bin/chromedriver ] || need+=(chromium-driver) ;; esac
# nginx (dev: tests/test_deploy.py, python -m deploy.cluster): only the binary, run by a user from a run dir
case ",$extras," in *,dev,*) command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx) ;; esac
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing system packages: ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  # the nginx package starts its own service (a default site on port 80) where systemd runs: not needed
  if [[ " ${need[*]} " == *" nginx "* ]] && [ -d /run/systemd/system ]; then $sudo systemctl disable --now nginx >/dev/null 2>&1 || true; fi
fi

py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null || py=python3
stamp=".venv/.installed-${extras:-base}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($py --version)"
  "$py" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  spec="."; [ -n "$extras" ] && spec=".[$extras]"
  echo "bootstrap: installing $spec into .venv"
  .venv/bin/pip install -q -e "$spec"
  touch "$stamp"
fi
