#!/usr/bin/env bash
# Creates (once) and prints the path of the Python environment of the Ray driver
# (scripts/ray/driver.py): Ray from PyPI, nothing else.
#
#   scripts/ray/env.sh          # prints the venv directory; its bin/python runs the driver
#
# The venv is ${SYNTHDEID_PYENV:-~/.cache/synthdeid/pyenv}/ray (scripts/lib/pyenv.sh).
set -euo pipefail
exec "$(dirname "$0")/../lib/pyenv.sh" ray "ray==2.60.0" "the Ray driver"
