#!/usr/bin/env bash
# Installs the third-party stores that the adapters in this directory drive, with
# pinned versions, into adapters/.tools/ (ignored by git). Idempotent and quiet: a
# second run with everything in place only checks versions.
#
#   bash adapters/install.sh          # as root, apt-get installs sqlite3 and git too
#   CLOBBER_ADAPTER_TOOLS=DIR bash adapters/install.sh   # install somewhere else
#
# The adapters find the Python CLIs through `PATH = { prepend = ... }` in their [env]
# (same default directory, same CLOBBER_ADAPTER_TOOLS override).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tools="${CLOBBER_ADAPTER_TOOLS:-$here/.tools}"

# PyPI, pinned. Each line: package==version.
PYPI_PINS=(
    "python-dotenv==1.2.4"
    "crudini==0.9.6"
    "keyring==25.7.0"
    "keyrings.alt==5.0.2"
)

say() { echo "adapters/install.sh: $*"; }

# Debian: sqlite3 and git come from the distribution's release (their versions move
# with its security updates, so they are recorded, not pinned; see adapters/README.md).
need_apt=()
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "apt-get install ${need_apt[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        say "missing ${need_apt[*]}: install them (not root, or no apt-get)" >&2
    fi
fi

venv="$tools/venv"
stamp="$venv/.pins"
want="$(printf '%s\n' "${PYPI_PINS[@]}")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
    say "PyPI stores already installed in $venv"
else
    mkdir -p "$tools"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian's python3 without python3-venv: try to add it, then retry.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        fi
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "${PYPI_PINS[@]}" "python-dotenv[cli]==${PYPI_PINS[0]#*==}"
    echo "$want" >"$stamp"
    say "installed ${PYPI_PINS[*]} in $venv"
fi

# What the adapters will run, with versions (the README table records these).
"$venv/bin/dotenv" --version | sed 's/^/  /'
"$venv/bin/crudini" --version | sed 's/^/  crudini /'
"$venv/bin/python" -c 'import importlib.metadata as m; print("  keyring", m.version("keyring"), "keyrings.alt", m.version("keyrings.alt"))'
echo "  $(sqlite3 --version | cut -d' ' -f1 | sed 's/^/sqlite3 /')"
echo "  $(git --version)"
