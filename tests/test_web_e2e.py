"""End to end: the real page in headless Chromium against a real `jukesep serve` on loopback.

Needs Debian's chromium (/usr/bin/chromium) and Playwright for Python (no downloaded browsers).
Takes screenshots of the home and result views into the test's temporary folder; to refresh the
README's pictures, name the result one: JUKESEP_SCREENSHOT=docs/web/result.png (home.png goes beside it).
"""
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import soundfile as sf

from jukesep.checkpoint import save_model
from tests.conftest import RATE, music, random_separator

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


def serve(model, data_dir):
    """`jukesep serve` on a free loopback port; yields its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "jukesep.web", "serve", "--model", str(model), "--port", "0",
                             "--data-dir", str(data_dir), "--max-upload-mb", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("jukesep: serving http://127.0.0.1:"), (line, proc.poll() and proc.stderr.read())
        yield line.split()[2]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path):
    # the real thing, as a user sees it: the shipped default model (and, below, the example song)
    yield from serve("default", tmp_path / "data")


@pytest.fixture
def tiny_server(tmp_path):
    # a tiny random model: separation takes a moment, so the page's controls can be exercised at length
    model = tmp_path / "tiny.pt"
    save_model(model, "separator", random_separator(), {"trained_on": "nothing (random test model)"})
    yield from serve(model, tmp_path / "data")


def open_browser(p):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1200, "height": 860}, device_scale_factor=1)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return browser, page, errors


@contextmanager
def song_on_page(url, song):
    """A browser on the page at `url`, `song` uploaded and its player ready; yields (page, errors)."""
    with sync_playwright() as p:
        browser, page, errors = open_browser(p)
        try:
            page.goto(url)
            page.set_input_files("#file-input", str(song))
            page.wait_for_selector("#player[data-ready='1']", timeout=60_000)
            yield page, errors
        finally:
            browser.close()


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
            # the model card says what the shipped model is, plainly a demo, with its measured scores
            page.wait_for_selector("#model-card:not([hidden])")
            assert page.inner_text("#mc-name") == "default" and page.is_visible("#mc-demo-badge")
            assert "demo" in page.inner_text("#mc-demo").lower()
            assert "Trained on" in page.inner_text("#mc-facts")
            assert page.is_visible("#mc-scores") and "vocals" in page.inner_text("#mc-scores").lower()
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
            # what plays is the compressed preview, decoded by the browser
            assert page.eval_on_selector_all(".track", "els => els.map(e => e.dataset.source)") == ["preview"] * 5
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


def song_file(path, seconds=3.0):
    sf.write(path, music(seconds).T, RATE)
    return path


def wait_playing(page, playing):
    page.wait_for_function(f"() => document.getElementById('play').classList.contains('playing') === {playing}",
                           timeout=5_000)


def state_of(page):
    """{stem: (muted, soloed, silenced)} as the page shows them."""
    return page.eval_on_selector_all(
        ".track:not(.mixture)", "els => Object.fromEntries(els.map(e => [e.dataset.name, ["
        "e.querySelector('.mute').classList.contains('on'), e.querySelector('.solo').classList.contains('on'),"
        "e.classList.contains('silenced')]]))")


def test_keyboard_shortcuts_do_what_the_hint_says(tiny_server, tmp_path):
    song = song_file(tmp_path / "Keys.wav")
    with song_on_page(tiny_server, song) as (page, errors):
        hint = page.inner_text("#keys-hint")
        for words in ("Space play / pause", "M mute / unmute and S solo / unsolo the selected stem",
                      "1–9 hear only stem N", "0 clears every solo"):
            assert words in " ".join(hint.split()), hint
        numbers = page.eval_on_selector_all(".track:not(.mixture) .track-number",
                                            "els => els.map(e => e.textContent)")
        assert numbers == ["1", "2", "3", "4"]

        # Space plays and pauses, with the focus anywhere
        page.keyboard.press("Space")
        wait_playing(page, "true")
        page.keyboard.press("Space")
        wait_playing(page, "false")

        # after clicking Mute, Space still plays: the focused button must not take it
        page.click(".track[data-name='vocals'] .mute")
        assert state_of(page)["vocals"][0]
        page.keyboard.press("Space")
        wait_playing(page, "true")
        assert state_of(page)["vocals"][0], "Space toggled the focused Mute button"
        page.focus(".track[data-name='bass'] .volume")
        page.keyboard.press("Space")
        wait_playing(page, "false")
        assert state_of(page)["vocals"][0]

        # M and S act on the hovered (selected) stem
        page.hover(".track[data-name='drums'] .wave")
        page.keyboard.press("m")
        assert state_of(page)["drums"][:2] == [True, False]
        page.keyboard.press("m")
        page.keyboard.press("s")
        assert state_of(page)["drums"][:2] == [False, True]
        page.keyboard.press("s")
        page.mouse.move(0, 0)
        # ↑ ↓ pick the stem without the mouse (from where the mouse left it); a focused volume
        # slider keeps its arrows
        page.keyboard.press("ArrowDown")
        assert page.eval_on_selector(".track.selected", "e => e.dataset.name") == "drums"
        page.evaluate("document.activeElement.blur()")
        page.keyboard.press("ArrowDown")
        assert page.eval_on_selector(".track.selected", "e => e.dataset.name") == "bass"
        page.keyboard.press("m")
        assert state_of(page)["bass"][0]
        page.keyboard.press("m")
        page.click(".track[data-name='vocals'] .mute")  # unmute vocals again
        assert not any(m or s for m, s, _ in state_of(page).values())

        # number keys: only stem N is heard; N again brings all back; 0 clears solos
        page.keyboard.press("2")
        st = state_of(page)
        assert [n for n, (m, s, silent) in st.items() if not silent] == ["drums"] and st["drums"][1]
        page.keyboard.press("3")
        assert [n for n, (m, s, silent) in state_of(page).items() if not silent] == ["bass"]
        page.keyboard.press("3")
        assert not any(silent for _, _, silent in state_of(page).values())
        page.keyboard.press("1")
        page.keyboard.press("0")
        assert not any(s or silent for _, s, silent in state_of(page).values())

        # the mix download follows what is heard, in the chosen format
        page.hover(".track[data-name='vocals'] .wave")
        page.keyboard.press("m")
        page.select_option("#format", "flac")
        href = page.get_attribute("#mix-link", "href")
        assert "/mix.flac?gains=" in href and "vocals" not in href and "drums:1.00" in href, href
        links = page.eval_on_selector_all(".track a.download", "els => els.map(e => e.getAttribute('href'))")
        assert all(h.endswith(".flac?download=1") for h in links), links
        assert page.get_attribute("#no-vocals-link", "href").endswith("/audio/no_vocals.flac?download=1")
        r = page.request.get(tiny_server.rstrip("/") + href)
        assert r.status == 200 and r.headers["content-type"] == "audio/flac"
        page.click("#mode-original")
        assert "?gains=mixture:1.00" in page.get_attribute("#mix-link", "href")
        page.reload()  # the format is remembered
        page.wait_for_selector("#player[data-ready='1']", timeout=30_000)
        assert page.input_value("#format") == "flac"
        assert not errors, errors


def drag(page, selector, start, end):
    """Press on `selector` at fraction `start` of its width and release at `end`."""
    box = page.locator(selector).bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, y, steps=6)
    page.mouse.up()


def test_loop_a_region_and_zoom_the_waveforms(tiny_server, tmp_path):
    song = song_file(tmp_path / "Loop.wav", 4.0)
    with song_on_page(tiny_server, song) as (page, errors):
        hint = " ".join(page.inner_text("#keys-hint").split())
        assert "drag across it to loop that part" in hint and "L loop on / off" in hint
        assert "+ − zoom in / out" in hint
        assert page.get_attribute("#player", "data-loop") == "" and page.is_disabled("#loop")

        # a drag over a quarter of the song sets a loop there, and playback stays inside it
        drag(page, ".track[data-name='drums'] .wave", 0.25, 0.5)
        assert page.get_attribute("#player", "data-loop") == "on"
        start, end = page.evaluate("[state.engine.loop.start, state.engine.loop.end]")
        assert abs(start - 1.0) < 0.1 and abs(end - 2.0) < 0.1, (start, end)
        page.keyboard.press("Space")
        wait_playing(page, "true")
        seen = []
        for _ in range(12):  # 2.4 s of playing: past the loop's end at least once
            page.wait_for_timeout(200)
            seen.append(page.evaluate("state.engine.position()"))
        assert all(start - 0.05 <= pos <= end + 0.05 for pos in seen), seen
        assert max(seen) - min(seen) > 0.5
        page.keyboard.press("l")  # loop off: it plays on past the region
        assert page.get_attribute("#player", "data-loop") == "off"
        page.wait_for_timeout(1500)
        assert page.evaluate("state.engine.position()") > end
        page.keyboard.press("Space")
        wait_playing(page, "false")
        page.click("#loop")  # the button does the same as L
        assert page.get_attribute("#player", "data-loop") == "on"

        # + and − zoom the waveforms; a click seeks in the zoomed view
        page.keyboard.press("+")
        assert page.get_attribute("#player", "data-zoom") == "2"
        page.keyboard.press("+")
        assert page.get_attribute("#player", "data-zoom") == "4"
        view = page.evaluate("[state.engine.view.start, state.engine.view.end]")
        assert abs(view[1] - view[0] - 1.0) < 0.01
        page.keyboard.press("l")  # a seek outside a running loop would end it; keep this one off
        box = page.locator(".track[data-name='bass'] .wave").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        assert abs(page.evaluate("state.engine.position()") - (view[0] + 0.5)) < 0.05
        page.click("#zoom-out")
        page.keyboard.press("-")
        assert page.get_attribute("#player", "data-zoom") == "1"
        view = page.evaluate("[state.engine.view.start, state.engine.view.end]")
        assert view == [0, pytest.approx(4.0, abs=0.01)]

        # G shows the spectrogram of the selected track, over the view; it follows zoom and selection
        assert page.is_hidden("#spectrogram") and "G spectrogram of the selected stem on / off" in hint
        page.hover(".track[data-name='drums'] .wave")
        page.mouse.move(0, 0)
        page.keyboard.press("g")
        assert page.is_visible("#spectrogram-canvas")
        assert page.get_attribute("#spectrogram", "data-track") == "drums"
        assert page.get_attribute("#spectrogram", "data-view") == "0.00-4.00"
        spread = page.evaluate("""() => {
            const c = document.getElementById('spectrogram-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let lo = 255, hi = 0;
            for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
            return hi - lo; }""")
        assert spread > 50  # not a blank picture
        page.keyboard.press("+")
        assert page.get_attribute("#spectrogram", "data-view") != "0.00-4.00"
        page.hover(".track[data-name='vocals'] .wave")
        assert page.get_attribute("#spectrogram", "data-track") == "vocals"
        page.click("#spectrogram-toggle")
        assert page.is_hidden("#spectrogram")
        assert not errors, errors


def test_karaoke_upload_and_model_card_of_an_unknown_model(tiny_server, tmp_path):
    song = song_file(tmp_path / "Sing.wav", 2.0)
    with sync_playwright() as p:
        browser, page, errors = open_browser(p)
        try:
            page.goto(tiny_server)
            page.wait_for_selector("#model-card:not([hidden])")
            assert page.inner_text("#mc-name") == "tiny" and not page.is_visible("#mc-demo-badge")
            assert "nothing (random test model)" in page.inner_text("#mc-facts")
            assert not page.is_visible("#mc-scores-box") and not page.is_visible("#mc-demo")
            page.select_option("#stems-choice", "vocals")
            page.set_input_files("#file-input", str(song))
            page.wait_for_selector("#player[data-ready='1']", timeout=60_000)
            names = page.eval_on_selector_all(".track", "els => els.map(e => e.dataset.name)")
            assert names == ["mixture", "vocals", "no_vocals"]
            assert page.text_content(".track[data-name='no_vocals'] .track-label") == "No vocals"
            page.keyboard.press("2")  # the accompaniment alone
            assert page.eval_on_selector(".track[data-name='vocals']", "e => e.classList.contains('silenced')")
            assert not errors, errors
        finally:
            browser.close()
