"""Drives the running peer's page in headless Chromium (Selenium, Debian's chromedriver).

page.py LOGIN_URL MAGNET NAME2
  Opens LOGIN_URL (the link `peer page` prints), adds MAGNET through the page's box and
  waits until it is done; adds NAME2, pauses it once it is downloading, resumes it and
  waits until it is done. Prints one line per step ("ok ..."); exits non-zero with the page's
  text on any failure.
"""
import os, sys, time
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

login, magnet, name2 = sys.argv[1], sys.argv[2], sys.argv[3]
o = webdriver.ChromeOptions()
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]:
    o.add_argument(a)
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def fail(why):
    print("FAIL", why)
    print(d.find_element(By.TAG_NAME, "body").text)
    d.quit()
    sys.exit(1)


def row(name):
    for tr in d.find_elements(By.CSS_SELECTOR, "#downloads tbody tr"):
        if tr.find_element(By.CSS_SELECTOR, "td.name").text == name:
            return tr
    return None


def wait_state(name, states, secs=60):
    end = time.time() + secs
    while time.time() < end:
        try:
            tr = row(name)
            if tr is not None and tr.get_attribute("data-state") in states:
                return tr
        except Exception:
            pass  # the table was redrawn under us
        time.sleep(0.1)
    fail("%r never %s" % (name, states))


def click(name, action):
    for _ in range(50):
        try:
            row(name).find_element(By.CSS_SELECTOR, "button[data-action=%s]" % action).click()
            return
        except Exception:
            time.sleep(0.1)
    fail("no %s button for %r" % (action, name))


d.get(login)
if d.title != "p2p-share peer":
    fail("the login link did not open the page")
print("ok page opened")

box = d.find_element(By.ID, "target")
box.send_keys(magnet)
d.find_element(By.ID, "add-button").click()
name1 = None
end = time.time() + 30
while name1 is None and time.time() < end:
    try:
        rows = d.find_elements(By.CSS_SELECTOR, "#downloads tbody tr")
        if rows:
            name1 = rows[0].find_element(By.CSS_SELECTOR, "td.name").text
    except Exception:
        pass  # the table was redrawn under us
    time.sleep(0.1)
if name1 is None:
    fail("the magnet link was not added")
wait_state(name1, ["done"])
print("ok magnet done:", name1)
# The name is shown as text: no element was made from it.
html = d.find_element(By.ID, "downloads").get_attribute("innerHTML")
if "<img" in html or d.find_elements(By.CSS_SELECTOR, "#downloads img"):
    fail("a name made an element")
print("ok name as text")
if not d.find_elements(By.CSS_SELECTOR, "#pictures img"):
    time.sleep(1.5)
imgs = d.find_elements(By.CSS_SELECTOR, "#pictures img")
if not imgs or not d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", imgs[0]):
    fail("no swarm picture for the finished download")
print("ok swarm picture")

box.send_keys(name2)
d.find_element(By.ID, "add-button").click()
wait_state(name2, ["downloading"])
# Paused once part of it is in.
end = time.time() + 30
while time.time() < end:
    try:
        if int(row(name2).find_element(By.TAG_NAME, "progress").get_attribute("value") or 0) > 0:
            break
    except Exception:
        pass
    time.sleep(0.1)
# Its picture is drawn while it downloads.
end = time.time() + 10
drawn = "return arguments[0].complete && arguments[0].naturalWidth > 0"
while time.time() < end:
    try:
        imgs = d.find_elements(By.CSS_SELECTOR, "#pictures img")
        if len(imgs) >= 2 and all(d.execute_script(drawn, i) for i in imgs):
            break
    except Exception:
        pass
    time.sleep(0.1)
else:
    fail("no picture of the download in progress")
print("ok picture while downloading")
click(name2, "pause")
wait_state(name2, ["paused"])
print("ok paused")
click(name2, "resume")
wait_state(name2, ["downloading", "done"])
print("ok resumed")
wait_state(name2, ["done"])
print("ok second done")
# Remove the first, its data too: two questions, both answered yes.
click(name1, "remove")
for _ in range(2):
    end = time.time() + 10
    while True:
        try:
            d.switch_to.alert.accept()
            break
        except Exception:
            if time.time() > end:
                fail("no question asked on remove")
            time.sleep(0.1)
def listed(name):
    for _ in range(20):
        try:
            return row(name) is not None
        except Exception:
            time.sleep(0.05)  # the table was redrawn under us
    return True


end = time.time() + 10
while listed(name1) and time.time() < end:
    time.sleep(0.1)
if listed(name1):
    fail("the removed download is still listed")
print("ok removed")
if os.environ.get("P2P_SHARE_SCREENSHOT"):
    time.sleep(1.5)
    d.set_window_size(1200, 800)
    d.save_screenshot(os.environ["P2P_SHARE_SCREENSHOT"])
d.quit()
