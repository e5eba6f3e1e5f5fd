#!/usr/bin/env bash
# The test command of README.md and CI: install what the tests need, then run the whole suite.
#   bash scripts/run_tests.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e '.[test,browser]'
# A real browser for the review page's end-to-end test; never fails the run (the test skips instead).
bash scripts/install_browser.sh || echo "browser install failed: the real-browser test will skip"
# MongoDB for the FiftyOne round trip, where fiftyone's own database package could not fetch it (never fails the run either).
bash scripts/install_mongod.sh || echo "mongod install failed: the FiftyOne tests will skip"
python -m pytest -q "$@"
