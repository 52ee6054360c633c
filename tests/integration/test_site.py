"""`bench report html` in a real headless Chromium: the site as a reader's browser shows it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from benchmark.publish.site import report_html
from benchmark.results.frame import records_to_frame
from benchmark.results.leaderboard import write_leaderboard
from benchmark.store.result_store import ResultStore
from tests.unit.test_site import write_store

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVERS = ("chromedriver", "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if Path(name).is_file() else None)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def driver():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    browser, chromedriver = _find(BROWSERS), _find(DRIVERS)
    if browser is None or chromedriver is None:
        pytest.skip(
            f"no headless browser: chromium {browser or 'not found'}, chromedriver {chromedriver or 'not found'} "
            "(apt-get install -y chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1600")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield session
    session.quit()


@pytest.fixture
def site(tmp_path) -> tuple[Path, pd.DataFrame]:
    write_store(tmp_path)
    frame = records_to_frame(ResultStore(tmp_path).records())
    write_leaderboard(frame, tmp_path, curves=False)
    report_html(tmp_path, frame)
    return tmp_path, pd.read_csv(tmp_path / "leaderboard.csv")


def _errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


def _defense_order(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    table = driver.find_elements(By.CSS_SELECTOR, "table.leaderboard")[0]
    return [row.get_attribute("data-defense") for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def _check_fits_1280(driver) -> None:
    """At 1,280 px neither the page nor any table scrolls sideways (columns that do not fit are elsewhere)."""
    assert driver.execute_script("return window.innerWidth") == 1280
    assert driver.execute_script("return document.documentElement.scrollWidth <= 1280")
    wide = driver.execute_script(
        "return Array.from(document.querySelectorAll('.scroll')).filter(e => e.scrollWidth > e.clientWidth)"
        ".map(e => e.querySelector('table').className + ': ' + e.scrollWidth + ' > ' + e.clientWidth)"
    )
    assert wide == []


def _check_phone_width(driver, screenshot: Path) -> None:
    """At 390 px the page itself never scrolls sideways (wide tables scroll in their container); back to 1280."""
    driver.set_window_size(390, 1600)
    driver.refresh()
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    driver.save_screenshot(str(screenshot))
    driver.set_window_size(1280, 1600)


def test_site_in_headless_chromium(driver, site):
    from selenium.webdriver.common.by import By

    root, leaderboard = site
    index = (root / "site" / "index.html").resolve()
    driver.set_window_size(1280, 1600)
    driver.get(index.as_uri())
    driver.get_log("browser")  # start from an empty log (the page's own messages are read below)
    driver.refresh()
    assert driver.title == "Robustness leaderboard"

    # The headline threat model leads (MNIST: L∞, then L2), and the page fits 1,280 px.
    headings = [h2.text for h2 in driver.find_elements(By.TAG_NAME, "h2")]
    assert headings[:3] == [
        "mnist, linf: worst case at ε = 0.3",
        "mnist, l2: worst case at ε = 1.5",
        "mnist, semantic: lowest robust accuracy over attacks",
    ]
    _check_fits_1280(driver)

    # One plot: the worst case against ε of the ranked defenses, in the headline section, drawn.
    (plot,) = driver.find_elements(By.CSS_SELECTOR, "svg.plot")
    assert plot.size["width"] > 400 and plot.size["height"] > 200
    series = [g.get_attribute("data-defense") for g in plot.find_elements(By.CSS_SELECTOR, "g.series")]
    assert sorted(series) == sorted(_defense_order(driver)) == ["cnn", "madry", "masked"]
    assert len(plot.find_elements(By.TAG_NAME, "polyline")) == 3
    first = driver.find_elements(By.TAG_NAME, "section")[0]
    assert first.find_elements(By.CSS_SELECTOR, "svg.plot") and "linf" in first.find_element(By.TAG_NAME, "h2").text

    # Every defense of leaderboard.csv appears; the worst-case number is the CSV's.
    listed = {row.get_attribute("data-defense") for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-defense]")}
    assert listed == set(leaderboard["defense"])
    worst = leaderboard[(leaderboard["attack"] == "worst") & (leaderboard["eps"] == 0.3)]
    assert len(worst) == 3
    for _, row in worst.iterrows():
        cell = driver.find_elements(By.CSS_SELECTOR, f'tr[data-defense="{row["defense"]}"] td.robust')[0]
        assert cell.text == f"{100 * row['robust_accuracy']:.1f}"

    # Clicking a column header reorders the rows and says so in aria-sort.
    ranked = _defense_order(driver)
    assert ranked == ["madry", "masked", "cnn"]
    header = driver.find_elements(By.CSS_SELECTOR, "table.leaderboard thead th")[1]
    header.find_element(By.TAG_NAME, "button").click()
    assert _defense_order(driver) == sorted(ranked)
    assert header.get_attribute("aria-sort") == "ascending"
    header.find_element(By.TAG_NAME, "button").click()
    assert _defense_order(driver) == sorted(ranked, reverse=True)
    assert header.get_attribute("aria-sort") == "descending"
    robust = driver.find_elements(By.CSS_SELECTOR, "table.leaderboard thead th")[2]
    robust.find_element(By.TAG_NAME, "button").click()
    assert _defense_order(driver) == ranked[::-1]  # ascending worst case: the least robust first
    driver.save_screenshot(str(root / "index-1280.png"))

    # No horizontal page scroll at a phone's width: the wide table scrolls inside its container.
    _check_phone_width(driver, root / "index-390.png")
    driver.refresh()

    # Nothing is fetched from the network, and every link and plot resolves.
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [name for name in resources if not name.startswith(("file:", "data:"))]
    links = sorted({a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")})
    assert len(links) == 5  # three defense pages, the attack-quality page and the store's folder
    assert not _errors(driver)
    for link in links:
        assert link.startswith("file://")
        assert Path(link[len("file://") :]).is_file(), link
        driver.get(link)
        defense = link.rsplit("/", 1)[1].removesuffix(".html")
        if defense == "attacks":  # which attack to trust: its tables, within the page's width
            assert driver.find_element(By.TAG_NAME, "h1").text == "Which attack to trust"
            assert driver.find_elements(By.CSS_SELECTOR, "table.sortable tbody tr")
            _check_fits_1280(driver)
            driver.find_element(By.LINK_TEXT, "← Leaderboard").click()
            assert not _errors(driver)
            continue
        assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Defense")
        _check_fits_1280(driver)
        plots = driver.find_elements(By.CSS_SELECTOR, "svg.plot")
        if defense != "vae_arch=cnn":  # only an ε-free semantic cell: nothing to plot
            assert plots, defense
        for plot in plots:
            assert plot.size["width"] > 200 and plot.size["height"] > 100
            assert plot.get_attribute("aria-label")
            assert plot.find_elements(By.TAG_NAME, "polyline")
        if defense == "cnn":
            driver.save_screenshot(str(root / "cnn-1280.png"))
            _check_phone_width(driver, root / "cnn-390.png")
        driver.find_element(By.LINK_TEXT, "← Leaderboard").click()
        assert driver.title == "Robustness leaderboard"
        assert not _errors(driver), defense
    for name in ("index-1280", "index-390", "cnn-1280", "cnn-390"):
        assert (root / f"{name}.png").stat().st_size > 1000
