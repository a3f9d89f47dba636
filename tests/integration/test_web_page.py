"""The web page in a real browser (headless Chromium via Selenium): sign in, create a study, upload,
watch the job finish, see the battery and the report. Skipped where Chromium is not installed."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest

from tests.integration.test_service import Server, metadata

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("Chromium and chromedriver not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,2000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_page_signs_in_uploads_and_shows_results(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from behavior.synthetic import simulate_clip, write_clip

    clip = simulate_clip("hargreaves", seed=5, latencies_s=[2.0], session_fields={"side": "right"})
    paths = write_clip(clip, tmp_path / "clip")
    server = Server(tmp_path / "svc", "sqlite")
    worker = server.worker()
    try:
        _, headers = server.lab("web-lab")
        token = headers["Authorization"].split()[1]
        wait = WebDriverWait(browser, 60)
        browser.get(server.url)
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.ID, "signin-btn").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "who"), "web-lab"))
        browser.find_element(By.ID, "study-name").send_keys("browser study")
        browser.find_element(By.ID, "create-study").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "studies"), "browser study"))
        browser.find_element(By.CSS_SELECTOR, "#studies button").click()
        wait.until(ec.visibility_of_element_located((By.ID, "study-section")))
        meta = metadata(clip, "web-1")
        for field, value in (
            ("m-session", "web-1"),
            ("m-animal", meta["animal_id"]),
            ("m-group", meta["group"]),
            ("m-timepoint", meta["timepoint"]),
            ("m-fps", str(meta["fps"])),
            ("m-pxmm", str(meta["px_per_mm"])),
        ):
            browser.find_element(By.ID, field).send_keys(value)
        Select(browser.find_element(By.ID, "m-side")).select_by_visible_text("right")
        events = browser.find_element(By.ID, "m-events")
        events.clear()
        events.send_keys(json.dumps(meta["events"]))
        browser.find_element(By.ID, "file").send_keys(str(paths["pose"]))
        try:
            wait.until(ec.text_to_be_present_in_element((By.ID, "upload-msg"), "uploaded"))
        except Exception:
            raise AssertionError(f"upload message: {browser.find_element(By.ID, 'upload-msg').text!r}") from None
        assert browser.find_element(By.ID, "upload-progress").get_attribute("value") == "100"
        try:
            wait.until(ec.text_to_be_present_in_element((By.ID, "sessions"), "done"))
        except Exception:
            jobs = httpx.get(f"{server.url}/api/v1/jobs", headers=headers).json()
            raise AssertionError(f"sessions: {browser.find_element(By.ID, 'sessions').text!r}; jobs {jobs}") from None
        try:
            wait.until(ec.text_to_be_present_in_element((By.ID, "battery"), "evoked.latency_"))
        except Exception:
            battery = httpx.get(f"{server.url}/api/v1/studies/1/battery", headers=headers)
            logs = browser.get_log("browser")
            raise AssertionError(
                f"battery: {browser.find_element(By.ID, 'battery').text!r}; api {battery.status_code} "
                f"{battery.text[:300]}; logs {logs}"
            ) from None
        browser.find_element(By.ID, "show-report").click()
        wait.until(ec.visibility_of_element_located((By.ID, "report")))
        time.sleep(1.0)
        shot = tmp_path / "page.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000
        studies = httpx.get(f"{server.url}/api/v1/studies", headers=headers).json()
        assert [s["sessions"] for s in studies] == [1]
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        worker.terminate()
        server.stop()


def test_report_html_renders_in_chromium_without_errors(browser, tmp_path):
    """The study report is one self-contained file: it opens from disk with every plot embedded."""
    import pandas as pd
    from selenium.webdriver.common.by import By

    from behavior.report import write_outputs
    from tests.unit.test_stats import simulate

    df = simulate(effect=3.0, n_per_group=4, seed=4)
    measures = df.assign(
        session_id=[f"s{i}" for i in range(len(df))],
        assay="hargreaves",
        domain="evoked",
        measure="latency_ipsi_s",
        unit="s",
        n=2,
        quality="ok",
    )
    quality = pd.DataFrame(
        [
            {
                "session_id": s,
                "assay": "hargreaves",
                "frames": 300,
                "missing_point_fraction": 0.01,
                "low_confidence_fraction": 0.02,
                "trials": 2,
                "censored_trials": 0,
            }
            for s in measures["session_id"]
        ]
    )
    paths = write_outputs(tmp_path, measures, quality, pd.DataFrame(columns=["session_id", "assay", "error"]))
    browser.get(paths["report"].resolve().as_uri())
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) >= 2  # time course and heatmap
    assert all(browser.execute_script("return arguments[0].naturalWidth", img) > 100 for img in images)
    assert "Group x time" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 20_000
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
