#!/usr/bin/env bash
# Make a fresh Debian/Ubuntu machine ready for `make demo` and `make test`:
# the system packages Python venvs, Qt (offscreen) and the PostgreSQL tests need, then .venv.
# Safe to re-run: it installs only what is missing, and only as root with apt-get.
set -euo pipefail
PYTHON=${1:-python3}
VENV=${2:-.venv}

missing=()
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib 'libGL.so.1' || missing+=(libgl1)
have_lib 'libEGL.so.1' || missing+=(libegl1)
have_lib 'libxkbcommon.so.0' || missing+=(libxkbcommon0)
have_lib 'libfontconfig.so.1' || missing+=(libfontconfig1)
have_lib 'libdbus-1.so.3' || missing+=(libdbus-1-3)
have_lib 'libglib-2.0.so.0' || missing+=(libglib2.0-0)
if [ "${OMNITILL_WITH_POSTGRES:-1}" = 1 ] && ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages: ${missing[*]}" >&2
    echo "bootstrap: install them with: sudo apt-get install ${missing[*]}" >&2
    case " ${missing[*]} " in *" python3-venv "*) exit 1 ;; esac
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
