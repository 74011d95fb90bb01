"""The browser console in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

One cluster for the module with the gateway and both demo collections (Debian from its bundled vectors; emoji
embedded live, a part of the set to keep it short). Screenshots go to the artefact folder
($SHOAL_TEST_ARTEFACTS, else pytest's temporary folder), never into the source tree.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

import shoal
from shoal.demo import DEMO_COLLECTION, load_demo
from shoal.demo_emoji import EMOJI_COLLECTION, MEDIA_NAME, load_emoji_demo, read_labels
from shoal.serve import LocalCluster

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Images embedded for the test (all 1,151 take minutes on two shared cores); CAT_FACE is among them.
EMOJI_SAMPLE = 400
WAIT_S = 60
KOREAN_QUERY = "체스 게임"   # "chess game"
QUERY_EMOJI = "CAT_FACE.png"


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go."""
    path = Path(os.environ.get("SHOAL_TEST_ARTEFACTS") or tmp_path_factory.mktemp("artefacts")) / "console"
    path.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots in {path}")
    return path


@pytest.fixture(scope="module")
def emoji_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The emoji images rendered by the project's script, into a temporary folder."""
    return tmp_path_factory.mktemp("emoji")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, emoji_dir: Path) -> Iterator[tuple[str, shoal.Client]]:
    """A cluster with the gateway and the demo collections: (console URL, SDK client)."""
    read_labels(emoji_dir)   # renders the set
    with LocalCluster(tmp_path_factory.mktemp("console-cluster"), gateway=True,
                      gateway_args=[f"--media={MEDIA_NAME}={emoji_dir}"]) as lc, shoal.Client(lc.address) as client:
        load_demo(client, progress=False)
        load_emoji_demo(client, emoji_dir, limit=EMOJI_SAMPLE, progress=False)
        yield f"{lc.gateway_url}/console/", client


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile, stopped at the end."""
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).is_file(), f"{path} is missing: `make chromium` installs Debian's chromium, chromium-driver"
    profile = tempfile.mkdtemp(prefix="shoal-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000", "--lang=en"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver: WebDriver, what: str, condition: object) -> object:
    return WebDriverWait(driver, WAIT_S).until(condition, message=f"waiting for {what}")


def _open(driver: WebDriver, url: str, collection: str) -> None:
    driver.get(f"{url}?collection={collection}")
    _wait(driver, f"{collection} selected",
          lambda d: d.find_element(By.ID, "current-collection").text == f"in {collection}")


def _cards(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#results .card")


def _card_ids(driver: WebDriver) -> list[str]:
    # Read in one script: the console replaces the cards while a search lands, so element handles go stale.
    return driver.execute_script("return [...document.querySelectorAll('#results .card')].map(c => c.dataset.id)")


def _results_change(driver: WebDriver, before: list[str]) -> list[str]:
    _wait(driver, "new results", lambda d: _card_ids(d) and _card_ids(d) != before)
    return _card_ids(driver)


def _search_text(driver: WebDriver, text: str) -> list[str]:
    before = _card_ids(driver)
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text, Keys.ENTER)
    return _results_change(driver, before)


def test_lists_collections_with_counts_and_shards(console: tuple[str, shoal.Client], browser: WebDriver,
                                                  artefacts: Path) -> None:
    """The collection list shows both demo collections with their live counts; selecting one shows its shards."""
    url, client = console
    _open(browser, url, DEMO_COLLECTION)
    rows = {r.get_attribute("data-name"): r for r in browser.find_elements(By.CSS_SELECTOR, "#collections tbody tr")}
    assert {DEMO_COLLECTION, EMOJI_COLLECTION} <= set(rows)
    for name in (DEMO_COLLECTION, EMOJI_COLLECTION):
        assert rows[name].find_element(By.CSS_SELECTOR, ".count").text == str(client.count(name))
    shard_rows = browser.find_elements(By.CSS_SELECTOR, "#shards tbody tr")
    info = client.describe_collection(DEMO_COLLECTION)
    assert len(shard_rows) == len(info.shard_info)
    # Shards list entries: a document with a Korean description holds two (its English and its Korean text).
    entries = sum(s["live"] for s in info.shard_info)
    assert sum(int(r.find_elements(By.TAG_NAME, "td")[2].text) for r in shard_rows) == entries >= info.count
    browser.save_screenshot(str(artefacts / "collections.png"))


def test_korean_query_shows_debian_results(console: tuple[str, shoal.Client], browser: WebDriver,
                                           artefacts: Path) -> None:
    """A Korean question typed into the one box finds English Debian package descriptions."""
    url, client = console
    _open(browser, url, DEMO_COLLECTION)
    ids = _search_text(browser, KOREAN_QUERY)
    assert ids == [h.id for h in client.search(DEMO_COLLECTION, text=KOREAN_QUERY, k=10)]
    # Chess programs, shown by their English descriptions: most of the top three say chess in their summary.
    snippets = [c.find_element(By.CSS_SELECTOR, ".snippet").text.lower() for c in _cards(browser)[:3]]
    assert sum("chess" in s for s in snippets) >= 2, snippets
    assert _cards(browser)[0].find_element(By.CSS_SELECTOR, ".score").text.startswith("score 0.")
    browser.save_screenshot(str(artefacts / "search-korean.png"))


def test_uploaded_image_shows_emoji_results(console: tuple[str, shoal.Client], browser: WebDriver,
                                            emoji_dir: Path, artefacts: Path) -> None:
    """An image picked in the file chooser finds emoji; their thumbnails load from the gateway."""
    url, _ = console
    _open(browser, url, EMOJI_COLLECTION)
    assert browser.find_element(By.ID, "drop").is_displayed()
    browser.find_element(By.ID, "image").send_keys(str(emoji_dir / QUERY_EMOJI))
    ids = _results_change(browser, [])
    assert ids[0] == "U+1F431"  # the cat face itself
    _wait(browser, "thumbnails loaded", lambda d: all(
        d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        for img in d.find_elements(By.CSS_SELECTOR, "#results .card img")))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results .card img")) == len(ids)
    browser.save_screenshot(str(artefacts / "search-image.png"))


def test_not_like_this_removes_the_hit_and_changes_the_query_string(console: tuple[str, shoal.Client],
                                                                    browser: WebDriver, artefacts: Path) -> None:
    """Pressing "not like this" (by keyboard) re-runs the search without the hit, and says so in the query string."""
    url, _ = console
    _open(browser, url, DEMO_COLLECTION)
    ids = _search_text(browser, "python http client library")
    assert browser.find_element(By.ID, "filter").get_attribute("value") == ""
    target = ids[0]
    button = _cards(browser)[0].find_element(By.CSS_SELECTOR, "button.not")
    button.send_keys(Keys.ENTER)
    after = _results_change(browser, ids)
    query_string = browser.find_element(By.ID, "filter").get_attribute("value")
    assert query_string.startswith("NOT near:[") and query_string.endswith("]@top:5"), query_string[:80]
    assert target not in after and len(after) == 10
    browser.save_screenshot(str(artefacts / "not-like-this.png"))


def test_more_like_this_ranks_by_the_hit(console: tuple[str, shoal.Client], browser: WebDriver) -> None:
    """"More like this" puts the hit's vector into the query string as the ranking clause; the hit comes first."""
    url, _ = console
    _open(browser, url, DEMO_COLLECTION)
    ids = _search_text(browser, "chess game")
    target = ids[3]
    _cards(browser)[3].find_element(By.CSS_SELECTOR, "button.more").click()
    after = _results_change(browser, ids)
    assert browser.find_element(By.ID, "q").get_attribute("value") == ""
    assert browser.find_element(By.ID, "filter").get_attribute("value").startswith("near:[")
    assert after[0] == target


def test_explain_shows_the_plan_and_timings_chart(console: tuple[str, shoal.Client], browser: WebDriver,
                                                  artefacts: Path) -> None:
    """With explain, the plan tree lists every shard and the chart draws one bar per stage and per shard."""
    url, client = console
    _open(browser, url, DEMO_COLLECTION)
    browser.find_element(By.ID, "explain").click()
    browser.find_element(By.ID, "filter").send_keys("section:python")
    _search_text(browser, "http client")
    _wait(browser, "the timings chart", lambda d: d.find_element(By.ID, "explain-view").is_displayed())
    shards = client.describe_collection(DEMO_COLLECTION).shards
    tree = browser.find_element(By.ID, "plan-tree").text
    assert 'section:"python"' in tree and all(f"shard {i}:" in tree for i in range(shards))
    bars = browser.find_elements(By.CSS_SELECTOR, "#timings-chart rect.bar")
    assert len(bars) == shards + 2
    widths = [float(b.get_attribute("width")) for b in bars]
    assert all(w >= 1 for w in widths) and max(widths) > 100
    assert all(float(b.get_attribute("data-ms")) > 0 for b in bars)
    browser.execute_script("document.getElementById('explain-view').scrollIntoView()")
    browser.save_screenshot(str(artefacts / "explain.png"))


def test_interactive_docs_render_offline(console: tuple[str, shoal.Client], browser: WebDriver,
                                         artefacts: Path) -> None:
    """/docs draws every REST operation from /openapi.json with the gateway's own Swagger UI files."""
    url, _ = console
    browser.get(url.replace("/console/", "/docs"))
    _wait(browser, "Swagger UI's operations", lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10)
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert "/v1/collections/{name}/search" in {p.replace("\u200b", "") for p in paths}
    browser.save_screenshot(str(artefacts / "docs.png"))
