"""End to end: the real page in headless Chromium against a real `jukesep serve` on loopback.

Needs Debian's chromium (/usr/bin/chromium) and Playwright for Python (no downloaded browsers).
Takes screenshots of the home and result views into the test's temporary folder; to refresh the
README's pictures, name the result one: JUKESEP_SCREENSHOT=docs/web/result.png (home.png goes beside it).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

CHROMIUM = "/usr/bin/chromium"
try:
    from playwright.sync_api import sync_playwright
except ImportError:
    sync_playwright = None

pytestmark = pytest.mark.skipif(sync_playwright is None or not os.path.exists(CHROMIUM),
                                reason="needs /usr/bin/chromium and playwright")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "song.flac"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture
def server(tmp_path):
    # the real thing, as a user sees it: the shipped default model (and, below, the example song)
    proc = subprocess.Popen([sys.executable, "-m", "jukesep.web", "serve", "--model", "default", "--port", "0",
                             "--data-dir", str(tmp_path / "data"), "--max-upload-mb", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("jukesep: serving http://127.0.0.1:"), (line, proc.poll() and proc.stderr.read())
        yield line.split()[2]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_page_separates_plays_and_shows_stems(server, tmp_path):
    screenshot = Path(os.environ.get("JUKESEP_SCREENSHOT") or tmp_path / "screens" / "result.png")
    song = tmp_path / "Demo Song.flac"
    shutil.copy(EXAMPLE, song)
    seconds = sf.info(str(EXAMPLE)).duration
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("these are not sounds\n" * 50)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 860}, device_scale_factor=1)
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.goto(server)
            page.wait_for_selector("#dropzone")
            assert "up to 20 MB" in page.inner_text("#limits")
            page.screenshot(path=str(screenshot.with_name("home.png")))

            # a file that does not decode: the server's JSON error is shown on the page
            page.set_input_files("#file-input", str(not_audio))
            page.wait_for_selector("#home-error:not([hidden])", timeout=30_000)
            assert "not an audio file" in page.inner_text("#home-error")

            page.set_input_files("#file-input", str(song))
            page.wait_for_url("**/#/job/*", timeout=30_000)
            page.wait_for_selector("#player[data-ready='1']", timeout=90_000)
            assert page.inner_text("#job-name") == "Demo Song.flac"
            rows = page.eval_on_selector_all(
                ".track", "els => els.map(e => [e.dataset.name, parseFloat(e.dataset.duration || '0'),"
                          " e.querySelector('a.download').getAttribute('href')])")
            assert [r[0] for r in rows] == ["mixture", "vocals", "drums", "bass", "other"]
            for name, duration, href in rows:
                assert abs(duration - seconds) < 0.05, (name, duration)
                assert href.endswith(f"/audio/{name}.wav?download=1")
            assert page.get_attribute("#zip-link", "href").endswith("/zip")
            assert page.eval_on_selector(".wave-base", "c => c.width") > 100

            # playback: all stems start together and the clock moves; solo and mute toggle
            page.click("#play")
            page.wait_for_function("() => document.getElementById('time-now').textContent !== '0:00'", timeout=10_000)
            page.click(".track[data-name='drums'] .mute")
            page.click(".track[data-name='vocals'] .solo")
            page.wait_for_timeout(300)
            page.click("#play")  # pause
            assert page.eval_on_selector(".track[data-name='bass']", "e => e.classList.contains('silenced')")
            page.click(".track[data-name='vocals'] .solo")
            page.click(".track[data-name='drums'] .mute")
            assert not errors, errors
            page.mouse.move(0, 0)
            page.screenshot(path=str(screenshot), full_page=True)

            # back home, the song is listed as ready
            page.click("#new-song-link")
            page.wait_for_selector("#recent-list .badge.done", timeout=10_000)
        finally:
            browser.close()
