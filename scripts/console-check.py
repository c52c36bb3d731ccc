#!/usr/bin/env python3
"""Drives a node's privacy officer's console in headless Chromium (Debian's `chromium` and
`chromium-driver`) through WebDriver (Selenium), as an officer would, and checks it:

    scripts/console-check.py --base https://HOST:PORT --signin URL --out DIR \
        [--patient Patient/...] [--review REQUEST_ID --note TEXT]

1. Unauthorised: `/console/` without a session shows only the sign-in help, and the
   console's data calls answer 401; a forged sign-in link is refused.
2. The sign-in link (from `dualchain client console-signin`) signs in with a click (opening
   it alone does not); the datasets,
   grants, demands, access log and break-glass queue are shown.
3. With --patient, the access log filtered by that patient shows only rows touching it.
4. A full-page screenshot goes to DIR/console.png.
5. With --review, the break-glass request is reviewed as unjustified with the credential
   revoked (the one action the console allows), and the queue shows the verdict.
6. The used sign-in link is refused a second time; after sign-out the data calls answer 401.

The browser trusts the node's TLS key alone (`--ignore-certificate-errors-spki-list` with the
SHA-256 of the certificate's public key). Prints a JSON report; exit status 0 when every
check passed. `scripts/setup.sh` installs Selenium into ~/.cache/dualchain-py and Chromium.
"""

import argparse
import base64
import hashlib
import json
import os
import shutil
import ssl
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.environ.get("DUALCHAIN_PY_DIR", os.path.expanduser("~/.cache/dualchain-py")))

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:  # a missing library is a failure, never a pass
    sys.exit(f"selenium or cryptography is not installed ({e}): run scripts/setup.sh")

WAIT_S = 30


def spki_hash(base):
    """Base64 of the SHA-256 of the node's certificate's SubjectPublicKeyInfo."""
    u = urllib.parse.urlsplit(base)
    pem = ssl.get_server_certificate((u.hostname, u.port or 443))
    cert = x509.load_pem_x509_certificate(pem.encode())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def browser(base, profile):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1400,1800", f"--user-data-dir={profile}",
              f"--ignore-certificate-errors-spki-list={spki_hash(base)}"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)


def status_of(driver, path, method="GET"):
    """The HTTP status of a same-origin call made by the page (with its cookies)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: arguments[1], credentials: 'same-origin'})"
        ".then(r => done(r.status)).catch(e => done(String(e)));",
        path, method)


def header_of(driver, path, name):
    """A response header of a same-origin GET made by the page (with its cookies)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'})"
        ".then(r => done(r.headers.get(arguments[1]))).catch(e => done(String(e)));",
        path, name)


def sign_in(driver, link):
    """Opens a sign-in link and clicks its button (opening it alone spends nothing)."""
    driver.get(link)
    buttons = driver.find_elements(By.ID, "confirm-signin")
    if buttons:
        # The click posts a form: wait for the answer's page, not the one it replaces
        # (checks made before it arrives read the sign-in page, or a half-loaded answer).
        # The page being replaced is marked, and the wait asks the page itself: asking
        # chromedriver about an element of a page mid-navigation may fail with a generic
        # "node does not belong to the document" rather than a stale-element error.
        driver.execute_script("window.__dualchainReplaced = true;")
        try:
            buttons[0].click()
        except WebDriverException:
            pass  # the navigation raced the click's answer; the wait below decides
        WebDriverWait(driver, WAIT_S, ignored_exceptions=(WebDriverException,)).until(
            lambda d: d.execute_script(
                "return window.__dualchainReplaced !== true && document.readyState === 'complete'"))


def full_page(driver, path):
    """A PNG of the whole page, beyond the window (Chrome DevTools' captureScreenshot)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                  {"format": "png", "captureBeyondViewport": True, "clip": clip})
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))


def rows(driver, table):
    """The rows' text, read in the page in one step (the tables are re-rendered on loads)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(r => r.innerText);",
        f"#{table} tbody tr:not(.empty)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--signin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--patient")
    ap.add_argument("--review")
    ap.add_argument("--note", default="no emergency on record")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    report, failures = {}, []

    def check(name, ok, detail=""):
        report[name] = {"ok": bool(ok), "detail": detail}
        if not ok:
            failures.append(f"{name}: {detail}")

    profile = tempfile.mkdtemp(prefix="console-chromium-")
    driver = browser(args.base, profile)
    # The page re-renders its tables after each load; an element found before may be gone.
    wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))
    try:
        # 1. Unauthorised.
        driver.get(args.base + "/console/")
        wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
        time.sleep(0.5)
        check("no session: only the sign-in help",
              driver.find_element(By.ID, "signin").is_displayed()
              and not driver.find_element(By.ID, "console").is_displayed())
        check("no session: data calls refused", status_of(driver, "/console/api/overview") == 401,
              str(status_of(driver, "/console/api/overview")))
        sign_in(driver, args.base + "/console/signin?code=" + "00" * 32)
        check("forged sign-in link refused", driver.find_elements(By.ID, "refused") != [], driver.title)
        driver.get(args.base + "/console/signin?code=<b>")
        check("malformed sign-in link refused", driver.find_elements(By.ID, "refused") != [], driver.title)

        # 2. Opening the link (as a mail scanner would, twice) spends nothing; the click
        # signs in.
        driver.get(args.signin)
        driver.get(args.signin)
        check("opening the link does not sign in", status_of(driver, "/console/api/overview") == 401)
        sign_in(driver, args.signin)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body[data-loaded=true]")))
        check("console data never cached", header_of(driver, "/console/api/overview", "cache-control") == "no-store",
              str(header_of(driver, "/console/api/overview", "cache-control")))
        who = driver.find_element(By.ID, "who").text
        check("signed in as the institution", "Signed in as" in who, who)
        lists = {t: rows(driver, t) for t in ("datasets-table", "grants-table", "demands-table", "consent-table",
                                              "access-table", "bg-table")}
        for t, r in lists.items():
            check(f"{t} shown", len(r) > 0, f"{len(r)} rows")
        report["rows"] = {t: len(r) for t, r in lists.items()}

        # 3. The access log by patient.
        if args.patient:
            field = driver.find_element(By.ID, "f-patient")
            field.clear()
            field.send_keys(args.patient)
            driver.find_element(By.CSS_SELECTOR, "#filter button[type=submit]").click()
            wait.until(lambda d: all(args.patient in r for r in rows(d, "access-table")) and rows(d, "access-table"))
            filtered = rows(driver, "access-table")
            check("access log filtered by patient",
                  filtered and all(args.patient in r for r in filtered)
                  and len(filtered) < len(lists["access-table"]),
                  f"{len(filtered)} of {len(lists['access-table'])} rows")
            report["rows"]["access-table (patient)"] = len(filtered)

        # 4. The screenshot, of the whole page.
        shot = os.path.join(args.out, "console.png")
        full_page(driver, shot)
        check("screenshot", os.path.getsize(shot) > 10_000, shot)

        # 4b. An error after sign-in shows above the console (a filter the node refuses:
        # a dataset id that is none), and goes once the next call succeeds.
        error = lambda d: d.find_element(By.ID, "error")  # noqa: E731
        driver.execute_script("const s = document.getElementById('f-dataset');"
                              "s.add(new Option('not a dataset', 'zz')); s.value = 'zz';")
        driver.find_element(By.CSS_SELECTOR, "#filter button[type=submit]").click()
        wait.until(lambda d: error(d).is_displayed())
        check("an error after sign-in is shown", "refused" in error(driver).text, error(driver).text)
        driver.execute_script("document.getElementById('f-dataset').value = '';")
        driver.find_element(By.CSS_SELECTOR, "#filter button[type=submit]").click()
        wait.until(lambda d: not error(d).is_displayed())
        check("the error goes once a call succeeds", not error(driver).is_displayed())

        # 5. The review.
        if args.review:
            row = driver.find_element(By.CSS_SELECTOR, f"#bg-table tr[data-request='{args.review}']")
            row.find_element(By.CSS_SELECTOR, "input.note").send_keys(args.note)
            row.find_element(By.CSS_SELECTOR, "input.revoke").click()
            row.find_element(By.CSS_SELECTOR, "button.unjustified").click()
            cell = f"#bg-table tr[data-request='{args.review}'] td.review"
            # Read in the page, in one step: the table is re-rendered once the review is final.
            text = lambda d: d.execute_script(  # noqa: E731
                "const c = document.querySelector(arguments[0]); return c ? c.textContent : '';", cell)
            wait.until(lambda d: "unjustified" in text(d))
            check("review recorded", args.note in text(driver), text(driver))
            full_page(driver, os.path.join(args.out, "console-reviewed.png"))

        # 6. The link is spent; sign-out ends the session.
        driver.find_element(By.ID, "signout").click()
        wait.until(EC.visibility_of_element_located((By.ID, "signin")))
        check("signed out: data calls refused", status_of(driver, "/console/api/overview") == 401)
        sign_in(driver, args.signin)
        check("used sign-in link refused", driver.find_elements(By.ID, "refused") != [], driver.title)
    except Exception as e:  # noqa: BLE001 - any failure is reported with the page's state
        failures.append(f"{type(e).__name__}: {e}")
        try:
            driver.save_screenshot(os.path.join(args.out, "console-failure.png"))
        except Exception:  # noqa: BLE001
            pass
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    report["failures"] = failures
    print(json.dumps(report, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
