"""Look at an `ics report` page in a real browser: screenshots of its top and of chosen sections.

A developer's check, not part of the test suite (it needs Debian's chromium and chromium-driver and
the `selenium` package, none of which `ics` depends on):

    apt-get install chromium chromium-driver
    python3 -m venv /tmp/shot && /tmp/shot/bin/pip install selenium
    /tmp/shot/bin/python scripts/screenshot.py results/report.html /tmp/shots top results-study-wu2021

Each name after the output folder is an element id of the page (`top` is the top of the page); one
PNG per name is written, 1280 px wide. The browser runs headless with no network (the page needs
none) and reports any console error, such as a script error in the sorting code, on stderr. It also
clicks the first sortable column heading and checks that the table was reordered.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def browser(profile: str) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1280,1600", "--hide-scrollbars"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def main(page: str, out: str, *ids: str) -> int:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        driver = browser(profile)
        try:
            driver.get(Path(page).absolute().as_uri())
            for ident in ids or ("top",):
                if ident == "top":
                    driver.execute_script("window.scrollTo(0, 0)")
                else:
                    driver.execute_script("document.getElementById(arguments[0]).scrollIntoView()", ident)
                driver.execute_script("return new Promise(r => setTimeout(r, 500))")
                path = out_dir / f"{ident}.png"
                driver.save_screenshot(str(path))
                print(f"wrote {path}")
            tables = driver.find_elements(By.CSS_SELECTOR, "table.sortable")
            if tables:
                rows = lambda: [r.text for r in tables[0].find_elements(By.CSS_SELECTOR, "tbody tr")]  # noqa: E731
                before = rows()
                button = tables[0].find_element(By.CSS_SELECTOR, "th button")
                driver.execute_script("arguments[0].click()", button)
                driver.execute_script("arguments[0].click()", button)    # descending: a change unless sorted
                after = rows()
                print(f"sorting: first table has {len(before)} rows; clicking its first heading twice "
                      f"{'reordered' if after != before else 'left'} them"
                      f"{'' if sorted(after) == sorted(before) else ' and LOST rows'}")
            errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
            for e in errors:
                print(f"console error: {e.get('message')}", file=sys.stderr)
            return 1 if errors else 0
        finally:
            driver.quit()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
