"""The review page in a real headless Chromium: review a batch with the keyboard, check the database.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` client (the ``browser``
extra); ``bash scripts/install_browser.sh`` installs them. Skipped with the reason when missing.
The first test starts a real server process (``coreclean review --no-browser``) and takes a
screenshot at 1400x1000; with ``CORECLEAN_SCREENSHOT=1`` it overwrites the README's
``docs/review-page.png``. The second types 30 decisions with no pause between keys against a
server in a thread whose round close is slowed down, and checks every decision landed, in order,
on the card focused when its key was pressed, and that the busy state lasts until the server answers.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent))
from conftest import CLASS_NAMES, build_review_session as build_session  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
README_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "review-page.png"
INSTALL_HINT = "run `bash scripts/install_browser.sh` (apt chromium chromium-driver, pip selenium)"

pytestmark = pytest.mark.browser


def _draw_shape(path: Path, class_index: int, rng: np.random.Generator) -> None:
    """A 96 px picture a person can judge: a dark disc, an orange square or a blue triangle on noise."""
    size = 96
    background = rng.integers(200, 250, size=(size, size, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    half = int(rng.integers(20, 34))
    cx, cy = (int(v) for v in rng.integers(half + 4, size - half - 4, size=2))
    box = (cx - half, cy - half, cx + half, cy + half)
    jitter = int(rng.integers(-20, 20))
    if class_index == 0:
        draw.ellipse(box, fill=(40 + jitter, 40 + jitter, 50 + jitter))
    elif class_index == 1:
        draw.rectangle(box, fill=(230, 140 + jitter, 40))
    else:
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=(50, 90 + jitter, 220))
    image.save(path)


def _browser_or_skip():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"no system browser ({', '.join(missing)} missing): {INSTALL_HINT}")
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium is not installed: {INSTALL_HINT}")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="coreclean-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    except Exception as err:  # selenium raises many kinds; any of them means "no usable browser here"
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"cannot start headless chromium: {type(err).__name__}: {str(err).splitlines()[0]}")
    return driver, profile


def _start_server(session: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "coreclean", "-q", "review", str(session), "--no-browser", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = process.stdout.readline().strip()  # the first line of output is the URL
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        raise AssertionError(f"expected the URL first, got {url!r}; stderr: {process.stderr.read()}")
    return process, url


def _wait(driver, script: str, *, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {script}; page says: "
                                 f"{driver.execute_script('return document.body.innerText')[:500]}")
        time.sleep(0.05)


READY = "return window.corecleanReview && window.corecleanReview.ready()"
STATE = "return window.corecleanReview.state()"


def _press(driver, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    for key in keys:
        ActionChains(driver).send_keys(key).perform()
        _wait(driver, READY)


def _focused(driver) -> dict:
    state = driver.execute_script(STATE)
    return state["data"]["batch"][state["focus"]]


def _live_decisions(session: Path) -> dict[str, tuple[str, str | None]]:
    """The decisions in force, read straight from the session file: id -> (action, new label)."""
    from coreclean.sessions.session import CleaningSession

    with CleaningSession.open(session, read_only=True) as reader:
        log = reader.decisions()
    live = log[(log["action"] != "undo") & ~log["revoked"]].drop_duplicates("id", keep="last")
    return {row.id: (row.action, row.new_label or None) for row in live.itertuples()}


def test_review_a_batch_with_the_keyboard(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver, profile = _browser_or_skip()
    process = None
    try:
        session = build_session(tmp_path, per_class=10, batch_size=3, draw=_draw_shape)
        process, url = _start_server(session)
        driver.get(url)
        _wait(driver, READY)
        batch = driver.execute_script(STATE)["data"]["batch"]
        assert len(batch) == 6 and driver.find_elements("css selector", ".card.focused")
        _wait(driver, "return [...document.images].every((img) => img.complete && img.naturalWidth > 0)")

        # 1: relabel to any class by typing part of its name (completion), Enter.
        target = _focused(driver)
        other = next(name for name in CLASS_NAMES if name not in (target["label"], target["suggested_label"]))
        _press(driver, "l")
        driver.find_element("id", "relabel-input").send_keys(other[:2], Keys.ENTER)
        _wait(driver, READY)
        expected = {target["id"]: ("relabel", other)}
        # 2: drop, 3: skip (unsure).
        expected[_focused(driver)["id"]] = ("drop", None)
        _press(driver, "d")
        expected[_focused(driver)["id"]] = ("skip", None)
        _press(driver, "s")
        # 4: keep, then undo it; the focus goes back to it.
        kept = _focused(driver)["id"]
        _press(driver, "k")
        assert _live_decisions(session).get(kept) == ("keep", None)
        _press(driver, "u")
        assert _focused(driver)["id"] == kept and kept not in _live_decisions(session)
        # Arrow keys move; back to the undecided one.
        _press(driver, Keys.ARROW_LEFT)
        assert _focused(driver)["id"] != kept
        _press(driver, Keys.ARROW_RIGHT)
        assert _focused(driver)["id"] == kept
        row = _focused(driver)
        if row["suggested_label"] != row["label"]:
            expected[kept] = ("relabel", row["suggested_label"])
            _press(driver, "r")
        else:
            expected[kept] = ("keep", None)
            _press(driver, "k")
        assert _live_decisions(session) == expected  # every decision is in the file as it is made

        # Closing the tab loses nothing: a fresh page shows the batch where it was left.
        driver.get(url)
        _wait(driver, READY)
        state = driver.execute_script(STATE)
        assert state["data"]["n_decided"] == 4 and not state["data"]["batch"][state["focus"]]["decision"]
        assert len(driver.find_elements("css selector", ".card .badge")) == 4
        assert driver.find_element("id", "progress-text").text == "4 / 6 decided"

        # The last two in one burst with a change of mind: keep, drop, undo (the drop), downweight.
        # The page then closes the round by itself.
        state = driver.execute_script(STATE)
        undecided = [row["id"] for row in state["data"]["batch"] if not row["decision"]]
        expected[undecided[0]] = ("keep", None)
        expected[undecided[1]] = ("downweight", None)
        ActionChains(driver).send_keys("kduw").perform()
        _wait(driver, "return !document.getElementById('round-panel').hidden")
        assert _live_decisions(session) == expected
        verdict = driver.find_element("id", "round-verdict").text
        assert verdict and "Round 1 closed" in driver.find_element("id", "round-title").text
        assert driver.find_elements("css selector", "#round-chart svg circle")
        driver.execute_script("window.scrollTo(0, 0)")
        screenshot = README_SCREENSHOT if os.environ.get("CORECLEAN_SCREENSHOT") else tmp_path / "review-page.png"
        assert driver.save_screenshot(str(screenshot))

        with sqlite3.connect(session) as conn:
            closes = conn.execute("SELECT round, hit_rate, auroc FROM rounds WHERE event = 'close'").fetchall()
        assert [r[0] for r in closes] == [0, 1] and closes[1][1] is not None

        # n: the next batch, new samples.
        _press(driver, "n")
        state = driver.execute_script(STATE)
        assert state["round"] is None and state["data"]["round"] == 2
        assert not {r["id"] for r in state["data"]["batch"]} & {r["id"] for r in batch}
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def _visible(driver, selector: str) -> list[dict]:
    """The elements matching ``selector`` that lie wholly in the viewport, below the sticky header."""
    return driver.execute_script("""
        const header = document.querySelector('.topbar').getBoundingClientRect().bottom;
        return [...document.querySelectorAll(arguments[0])].map((el) => el.getBoundingClientRect())
          .filter((r) => r.top >= header - 1 && r.bottom <= window.innerHeight + 1)
          .map((r) => ({top: r.top, left: r.left}));""", selector)


def test_thirty_decisions_typed_without_pause_all_land_on_the_right_samples(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from coreclean.review import make_server
    from coreclean.sessions.session import CleaningSession

    driver, profile = _browser_or_skip()
    path = build_session(tmp_path, per_class=20, batch_size=15)  # 30 cards of 8-16 px images
    session = CleaningSession.open(path)
    close_round = session.close_round

    def slow_close_round(**kwargs):
        time.sleep(2.5)  # a long re-score: the busy state must outlast the old 1.8 s toast
        return close_round(**kwargs)

    session.close_round = slow_close_round
    server = make_server(session, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        driver.get(server.url)
        _wait(driver, READY)
        batch = [row["id"] for row in driver.execute_script(STATE)["data"]["batch"]]
        assert len(batch) == 30

        # 30 decisions in one burst, no pause between keys (was: 1 landed at 0 ms, 2 at 30 ms apart).
        keys = "kdsw" * 7 + "kd"
        ActionChains(driver).send_keys(keys).perform()
        actions = {"k": "keep", "d": "drop", "s": "skip", "w": "downweight"}
        _wait(driver, "return window.corecleanReview.state().data.n_decided === 30", timeout=15)
        # The page re-scores once all 30 are saved; its busy line stays up for the whole re-score.
        _wait(driver, "return window.corecleanReview.state().closing !== null", timeout=30)
        time.sleep(2.0)
        busy = driver.find_element("id", "busy")
        assert busy.is_displayed() and "re-scoring" in busy.text
        assert "busy" in driver.find_element("tag name", "body").get_attribute("class")
        _wait(driver, "return !document.getElementById('round-panel').hidden", timeout=60)
        assert not busy.is_displayed()
        assert "busy" not in driver.find_element("tag name", "body").get_attribute("class")

        # Small images get the compact grid: the whole batch fits in the 1400x1000 window.
        _wait(driver, "return [...document.images].every((img) => img.complete && img.naturalWidth > 0)")
        driver.execute_script("window.scrollTo(0, 0)")
        assert "compact" in driver.find_element("id", "batch").get_attribute("class")
        assert len(_visible(driver, ".card")) == 30
        # Decided cards are dimmed.
        opacity = driver.execute_script(
            "return getComputedStyle(document.querySelector('.card.decided:not(.focused) img')).opacity")
        assert float(opacity) < 0.6
        # In the comfortable grid (g) the batch scrolls; the focused card stays wholly in view.
        ActionChains(driver).send_keys("g", Keys.END).perform()
        assert "compact" not in driver.find_element("id", "batch").get_attribute("class")
        visible = len(_visible(driver, ".card"))
        assert 15 <= visible < 30 and _visible(driver, ".card.focused")  # was 8 of 30 at 1400x1000; 18 here
        ActionChains(driver).send_keys(Keys.HOME).perform()
        assert _visible(driver, ".card.focused")

        with CleaningSession.open(path, read_only=True) as reader:
            log = reader.decisions()
        live = log[(log["action"] != "undo") & ~log["revoked"]].sort_values("decision_id")
        assert list(zip(live["id"], live["action"])) == [(sample, actions[key]) for sample, key in zip(batch, keys)]
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        server.shutdown()
        server.server_close()
        thread.join(5)
        session.close()
