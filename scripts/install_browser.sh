#!/usr/bin/env bash
# Install what tests/test_review_browser.py needs: Debian's chromium + chromium-driver and the
# selenium client (the `browser` extra). Idempotent, and it never fails the run: when something
# cannot be installed it says why and exits 0, and the browser test then skips with a reason.
#
#   bash scripts/install_browser.sh
#
# selenium is told to use /usr/bin/chromium and /usr/bin/chromedriver; nothing is downloaded
# by selenium-manager (browser downloads are blocked on the project's machines).
set -u

say() { echo "install_browser: $*" >&2; }

have_browser() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }

if have_browser; then
    say "chromium and chromedriver already installed"
elif ! command -v apt-get >/dev/null 2>&1; then
    say "no apt-get here; install chromium and chromedriver by hand (the browser test will skip)"
else
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        else
            say "not root and no password-less sudo; cannot apt-get install chromium (the browser test will skip)"
        fi
    fi
    if [ "$(id -u)" = "0" ] || [ -n "$SUDO" ]; then
        export DEBIAN_FRONTEND=noninteractive
        # An update first: a fresh machine may have no package lists at all.
        if ! $SUDO apt-get update -qq >/dev/null 2>&1; then
            say "apt-get update failed (offline?); trying the install with the lists present"
        fi
        if ! $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1; then
            say "apt-get install chromium chromium-driver failed; the browser test will skip"
        fi
    fi
    have_browser && say "installed chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}')"
fi

PYTHON="${PYTHON:-python3}"
if "$PYTHON" -c "import selenium" >/dev/null 2>&1; then
    say "selenium already installed"
elif ! "$PYTHON" -m pip install -q "selenium>=4.15" >/dev/null 2>&1; then
    say "pip install selenium failed; the browser test will skip"
else
    say "installed selenium"
fi
exit 0
