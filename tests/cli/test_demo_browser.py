"""The pc3d-demo page in a real headless browser (Chromium driven by Selenium), opened from a local file.

Checks: no console error (``SEVERE`` entries of the browser log), no network request (every
request the page makes is ``file:`` / ``data:`` / ``blob:``, from Chrome's performance log), every
picture decoded (``naturalWidth > 0``), and every plotly 3D viewer drew its clouds (WebGL canvases
exist, and a screenshot of each plot has > 1 % of non-background pixels).

Needs the system's Chromium and its driver (Debian: ``apt-get install -y chromium chromium-driver``)
and ``pip install selenium``; Selenium's driver manager is bypassed (the driver path is given to a
``Service``; ``SE_OFFLINE=true``), so nothing is downloaded. Without them the test is skipped with
the reason, except under ``CI=true`` (.ci/run), where it fails: CI must run it.

WebGL in headless Chromium (no GPU): ``--enable-unsafe-swiftshader`` opts in to the software
(SwiftShader) WebGL that Chromium otherwise only uses as a deprecated automatic fallback (a console
warning today, no WebGL at all once the fallback is removed); ``--use-angle=swiftshader`` selects it
directly. ``--no-sandbox`` is needed as root in a container, ``--disable-dev-shm-usage`` where
/dev/shm is small.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cli.test_demo import demo_run, standin  # noqa: F401 - fixtures shared with the demo tests

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
                  "--enable-unsafe-swiftshader", "--window-size=1280,1000", "--hide-scrollbars",
                  "--disable-background-networking", "--disable-component-update", "--no-first-run"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "chrome-extension:", "devtools:")


def _which(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    if _which("chromium", "chromium-browser", "google-chrome") is None:
        return "no Chromium on PATH (apt-get install -y chromium chromium-driver)"
    if _which("chromedriver") is None:
        return "no chromedriver on PATH (apt-get install -y chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser():
    why = _missing()
    if why:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the browser test: {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download (not called anyway, see below)
    opts = webdriver.ChromeOptions()
    opts.binary_location = _which("chromium", "chromium-browser", "google-chrome")
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # a Service with the driver's path: Selenium skips its driver manager entirely
    driver = webdriver.Chrome(service=Service(executable_path=_which("chromedriver")), options=opts)
    driver.set_page_load_timeout(240)
    yield driver
    driver.quit()


def _wait(driver, script: str, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def test_page_renders_offline_in_headless_chromium(browser, demo_run):  # noqa: F811 - pytest fixtures
    from PIL import Image
    from selenium.webdriver.common.by import By

    page = Path(demo_run["page"]).resolve()
    browser.get(page.as_uri())
    n_plots = _wait(browser, "return document.readyState === 'complete' && "
                    "document.querySelectorAll('.js-plotly-plot').length", 60, "the plotly divs")
    assert n_plots == 2  # the samples' viewer and the reconstruction's
    # plotly draws asynchronously: wait until every 3D scene has its WebGL canvas
    n_scenes = demo_run["samples"].shape[0] + 2
    _wait(browser, f"return document.querySelectorAll('.js-plotly-plot .gl-container canvas').length >= {n_scenes}",
          120, f"{n_scenes} WebGL canvases")
    time.sleep(1.0)  # let the last frame land

    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    for e in severe:
        print("browser console:", e)
    assert not severe, f"{len(severe)} console error(s), first: {severe[0]['message'][:500]}"

    webgl = browser.execute_script(
        "const c = document.createElement('canvas'); return !!(c.getContext('webgl') || c.getContext('webgl2'));")
    assert webgl, "no WebGL in this Chromium (flags: " + " ".join(CHROMIUM_FLAGS) + ")"

    sizes = browser.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth, "
                                   "i.naturalHeight, i.alt]);")
    assert len(sizes) == 4 and all(ok and w > 0 and h > 0 for ok, w, h, _ in sizes), sizes

    for k, plot in enumerate(browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")):
        browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", plot)
        time.sleep(0.5)
        shot = np.asarray(Image.open(io.BytesIO(plot.screenshot_as_png)).convert("RGB")).astype(int)
        assert shot.shape[0] > 200 and shot.shape[1] > 200, shot.shape  # the whole plot, not a clipped strip
        background = np.median(shot.reshape(-1, 3), axis=0)
        drawn = (np.abs(shot - background).sum(-1) > 40).mean()
        assert drawn > 0.01, f"plot {k} looks blank: {drawn:.2%} non-background pixels"
        # the clouds' own colours (the height ramp: blue to yellow), not only text and grid lines
        r, g, b = shot[..., 0], shot[..., 1], shot[..., 2]
        coloured = ((np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)) > 60).mean()
        assert coloured > 0.002, f"plot {k}: no coloured points drawn ({coloured:.3%})"

    remote = [u for u in _requests(browser) if not u.lower().startswith(LOCAL_SCHEMES)]
    assert not remote, f"the page made network requests: {remote[:5]}"
