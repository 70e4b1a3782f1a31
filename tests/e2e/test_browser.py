"""The app in a real browser: upload, live status, streamed cited answers,
the citation inspector (PDF page with word boxes, code with cited lines),
an encrypted PDF's password prompt and a corrupt file's error."""
from __future__ import annotations

import re

import pymupdf
import pytest

pytestmark = pytest.mark.slow

FACT = "The Aurora glacier moves forty metres every winter."
CODE = '''"""Pump control."""

MAX_PRESSURE = 42


def start_pump(rate):
    """Start the pump at the given rate in litres per minute."""
    if rate > MAX_PRESSURE:
        raise ValueError("rate too high")
    return rate * 2
'''

# Records every text the live answer shows, to prove it arrived in pieces.
WATCH_STREAM = """() => {
  window.__folioSeen = [];
  const chat = document.querySelector('#folio-chat');
  new MutationObserver(() => {
    const live = chat.querySelector('[data-turn="live"] .folio-a');
    const text = live ? live.innerText.trim() : '';
    const seen = window.__folioSeen;
    if (text && seen[seen.length - 1] !== text) seen.push(text);
  }).observe(chat, {subtree: true, childList: true, characterData: true});
}"""


def _pdf(path, text, *, password=None):
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_textbox(pymupdf.Rect(56, 56, 556, 400), text, fontsize=11)
    if password:
        doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password,
                 owner_pw=password + "-owner")
    else:
        doc.save(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    glacier = _pdf(folder / "glacier.pdf",
                   "The Aurora glacier is in Norway. " + FACT + " Scientists measured "
                   "the Aurora glacier with radar in 2019. The glacier feeds the Blue river.")
    pump = folder / "pump.py"
    pump.write_text(CODE)
    locked = _pdf(folder / "locked.pdf", "The vault code of the museum is kept in "
                  "the red ledger on the second floor.", password="opensesame")
    broken = folder / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 200)
    return {"glacier": glacier, "pump": pump, "locked": locked, "broken": broken}


@pytest.fixture(scope="module")
def page(playwright_browser, server):
    context = playwright_browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server["url"])
    page.wait_for_selector("#folio-chat .folio-empty")
    yield page
    context.close()


def _row(page, name):
    return page.locator(f"#folio-library tr:has(td.folio-name:text-is('{name}'))")


def _ask(page, question):
    page.evaluate(WATCH_STREAM)
    box = page.locator("#folio-question textarea, #folio-question input").first
    box.fill(question)
    box.press("Enter")   # keyboard submit
    turns = page.locator("#folio-chat .folio-turn")
    page.wait_for_function(
        "q => [...document.querySelectorAll('#folio-chat .folio-turn')].some(t =>"
        " t.dataset.turn !== 'live' && t.querySelector('.folio-q').innerText.trim() === q)",
        arg=question, timeout=120_000)
    return turns.last


def test_upload_ask_and_inspect(page, files, shots):
    page.get_by_role("tab", name="Library").click()
    page.locator("#folio-files input[type=file]").set_input_files(
        [str(files[k]) for k in ("glacier", "pump", "locked", "broken")])
    # Live status: every file gets a row; the good ones become ready.
    page.wait_for_function("""() => ['glacier.pdf', 'pump.py'].every(n =>
        [...document.querySelectorAll('#folio-library tr')].some(tr =>
          tr.querySelector('td.folio-name')?.innerText === n && tr.dataset.status === 'ready'))""",
                           timeout=150_000)
    # The corrupt file shows its specific error; the app keeps working.
    broken = _row(page, "broken.pdf")
    broken.wait_for()
    assert broken.get_attribute("data-status") == "error"
    assert "corrupt" in broken.inner_text().lower()
    # The encrypted PDF asks for its password.
    page.locator("#folio-password").wait_for(state="visible")
    assert "password required" in _row(page, "locked.pdf").inner_text()
    assert "11 lines" in _row(page, "pump.py").inner_text()
    page.screenshot(path=str(shots / "password-prompt.png"))
    page.locator("#folio-password input").fill("opensesame")
    page.locator("#folio-unlock").click()
    page.wait_for_function("""() => [...document.querySelectorAll('#folio-library tr')].some(tr =>
        tr.querySelector('td.folio-name')?.innerText === 'locked.pdf'
        && ['ready', 'embedding'].includes(tr.dataset.status))""")
    page.locator("#folio-locked").wait_for(state="hidden")
    page.screenshot(path=str(shots / "library.png"))

    # A streamed answer with a citation, then the PDF page with its word boxes.
    page.get_by_role("tab", name="Chat").click()
    turn = _ask(page, "How far does the Aurora glacier move every winter?")
    seen = page.evaluate("window.__folioSeen")
    assert len(seen) >= 2 and len(seen[-1]) > len(seen[0]), seen   # token by token
    chip = turn.locator(".folio-chip:not(.folio-chip-weak)").first
    chip.wait_for()
    assert re.fullmatch(r"\[\d+\]", chip.inner_text())
    assert "support" in turn.locator(".folio-sources").inner_text()
    page.screenshot(path=str(shots / "chat.png"))
    chip.click()
    page.locator("#folio-inspector .folio-page img").wait_for()
    boxes = page.locator("#folio-inspector .folio-hl")
    boxes.first.wait_for()
    image = page.locator("#folio-inspector .folio-page img").bounding_box()
    first = boxes.first.bounding_box()
    assert image["width"] > 300 and first["width"] > 5   # a real page, a real box on it
    assert image["y"] <= first["y"] <= image["y"] + image["height"]
    assert "glacier.pdf" in page.locator("#folio-inspector").inner_text()
    page.screenshot(path=str(shots / "inspector-pdf.png"))
    page.locator("#folio-zoom-in").click()
    page.wait_for_function("() => document.querySelector('#folio-inspector')"
                           ".innerText.includes('zoom 150%')")

    # Scoped to the code file: the code view highlights the cited lines.
    page.locator("#folio-scope input").click()
    page.get_by_role("option", name=re.compile(r"pump\.py")).click()
    page.keyboard.press("Escape")
    turn = _ask(page, "What does start_pump raise when the rate is too high?")
    target = turn.locator(".folio-chip:not(.folio-chip-weak)").first
    if not target.count():           # declined: the source itself is still inspectable
        target = turn.locator(".folio-source-link").first
    target.click()
    page.locator("#folio-inspector .folio-code").wait_for()
    caption = page.locator("#folio-inspector .folio-code-caption").inner_text()
    assert caption.startswith("pump.py")
    start, end = map(int, re.search(r"lines? (\d+)(?:-(\d+))?", caption).groups(default="0"))
    end = end or start
    cited = page.locator("#folio-inspector .folio-line.folio-cited")
    numbers = [int(n) for n in cited.evaluate_all("rows => rows.map(r => r.dataset.line)")]
    assert numbers == list(range(start, end + 1)) and numbers
    assert page.locator("#folio-inspector .folio-line").count() == CODE.count("\n") + 1
    highlighted = " ".join(cited.all_inner_texts())
    assert "start_pump" in highlighted or "raise" in highlighted or "MAX_PRESSURE" in highlighted
    page.screenshot(path=str(shots / "inspector-code.png"))


def test_history_persists_and_exports(page, server):
    page.reload()
    page.wait_for_selector("#folio-chat .folio-turn")
    questions = page.locator("#folio-chat .folio-q").all_inner_texts()
    assert any("Aurora glacier" in q for q in questions)
    with page.expect_download() as download:
        page.locator("#folio-export").click()
    text = open(download.value.path(), encoding="utf-8").read()
    assert "## How far does the Aurora glacier move every winter?" in text
    assert "glacier.pdf, p. 1" in text


def test_api_endpoints(server, files):
    from gradio_client import Client, handle_file

    client = Client(server["url"], verbose=False)
    listed = client.predict(api_name="/list")
    names = {d["name"]: d for d in listed}
    assert names["glacier.pdf"]["status"] == "ready" and names["broken.pdf"]["status"] == "error"
    outcome = client.predict(files=[handle_file(str(files["glacier"]))], password="",
                             api_name="/ingest")
    assert outcome[0]["state"] == "duplicate"
    info = client.view_api(return_format="dict", print_info=False)
    assert set(info["named_endpoints"]) == {"/ingest", "/ask", "/list"}


def test_two_tabs_ask_while_a_file_is_ingested(playwright_browser, server, files, tmp_path):
    """A second tab asks while the first uploads: both work, no lock errors."""
    import pymupdf

    long_pdf = tmp_path / "long.pdf"
    doc = pymupdf.open()
    for n in range(60):
        doc.new_page().insert_textbox(pymupdf.Rect(56, 56, 556, 760),
                                      f"Section {n}. " + "Survey notes about the valley. " * 60)
    doc.save(long_pdf)
    tabs = []
    for _ in range(2):
        context = playwright_browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(server["url"])
        tab.wait_for_selector("#folio-chat")
        tabs.append((context, tab))
    (_, first), (_, second) = tabs
    first.get_by_role("tab", name="Library").click()
    first.locator("#folio-files input[type=file]").set_input_files([str(long_pdf)])
    turn = _ask(second, "How far does the Aurora glacier move every winter?")
    assert "database is locked" not in turn.inner_text().lower()
    assert turn.locator(".folio-a").inner_text().strip()
    first.wait_for_function("""() => [...document.querySelectorAll('#folio-library tr')].some(tr =>
        tr.querySelector('td.folio-name')?.innerText === 'long.pdf'
        && ['ready', 'embedding', 'searchable'].includes(tr.dataset.status))""", timeout=150_000)
    for context, _ in tabs:
        context.close()


def test_stop_button_ends_an_answer_and_the_app_keeps_answering(page):
    page.get_by_role("tab", name="Chat").click()
    box = page.locator("#folio-question textarea, #folio-question input").first
    box.fill("Describe everything the documents say about the Aurora glacier in detail.")
    box.press("Enter")
    page.wait_for_selector("#folio-chat .folio-turn[data-turn='live']")
    page.locator("#folio-stop").click()
    page.wait_for_function(
        "() => !document.querySelector(\"#folio-chat .folio-turn[data-turn='live']\")",
        timeout=120_000)
    turn = _ask(page, "How far does the Aurora glacier move every winter?")
    assert turn.locator(".folio-a").inner_text().strip()


DROP = """name => {
  const dt = new DataTransfer();
  dt.items.add(new File(['def dropped_function(x):\\n    return x * 3\\n'], name,
                        {type: 'text/x-python'}));
  for (const type of ['dragenter', 'dragover', 'drop']) {
    document.body.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true,
                                                     cancelable: true}));
  }
}"""


def test_a_file_dropped_anywhere_on_the_page_is_ingested(playwright_browser, server):
    context = playwright_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server["url"])
    page.wait_for_selector("#folio-drop-overlay", state="attached")   # the drop script is live
    page.get_by_role("tab", name="Chat").click()      # not the library's own upload box
    page.evaluate(DROP, "dropped.py")
    page.get_by_role("tab", name="Library").click()
    page.wait_for_function("""() => [...document.querySelectorAll('#folio-library tr')].some(tr =>
        tr.querySelector('td.folio-name')?.innerText === 'dropped.py'
        && ['ready', 'embedding', 'searchable'].includes(tr.dataset.status))""", timeout=120_000)
    context.close()


DROP_ZIP = """([name, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, {type: 'application/zip'}));
  for (const type of ['dragenter', 'dragover', 'drop']) {
    document.body.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true,
                                                     cancelable: true}));
  }
}"""

# Chromium gives no way to build a directory entry from a script, so the
# test stands in for the browser's FileSystem entry API (the part the OS
# fills in on a real folder drop); reading it, uploading every file with its
# relative path and rebuilding the folder are the app's own code.
DROP_FOLDER = """([folder, files]) => {
  const fileEntry = (name, text) => ({isFile: true, isDirectory: false, name,
    file: (ok) => ok(new File([text], name, {type: 'text/plain'}))});
  const dirEntry = (name, children) => ({isFile: false, isDirectory: true, name,
    createReader: () => { let done = false;
      return {readEntries: (ok) => { const batch = done ? [] : children; done = true;
                                      ok(batch); }}; }});
  const sub = dirEntry('pkg', files.filter(([p]) => p.startsWith('pkg/'))
                                    .map(([p, t]) => fileEntry(p.slice(4), t)));
  const top = files.filter(([p]) => !p.includes('/')).map(([p, t]) => fileEntry(p, t));
  const root = dirEntry(folder, [...top, sub]);
  const dt = new DataTransfer();
  dt.items.add(new File(['x'], folder));
  const proto = Object.getPrototypeOf(dt.items[0]);
  const real = proto.webkitGetAsEntry;
  proto.webkitGetAsEntry = function () { return root; };
  for (const type of ['dragenter', 'dragover', 'drop']) {
    document.body.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true,
                                                     cancelable: true}));
  }
  setTimeout(() => { proto.webkitGetAsEntry = real; }, 0);
}"""


def _library_names(page) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
        '#folio-library tr')].filter(tr => tr.querySelector('td.folio-name')).map(tr =>
        [tr.querySelector('td.folio-name').innerText, tr.dataset.status]))""")


def _wait_for_names(page, names: list[str]) -> None:
    page.wait_for_function("""names => { const rows = [...document.querySelectorAll(
        '#folio-library tr')]; return names.every(n => rows.some(tr =>
        tr.querySelector('td.folio-name')?.innerText.endsWith(n)
        && ['ready', 'embedding', 'searchable'].includes(tr.dataset.status))); }""",
                           arg=names, timeout=120_000)


def test_a_dropped_zip_and_a_dropped_folder_are_unpacked_and_ingested(playwright_browser,
                                                                      server):
    import base64
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("zipped/alpha_tools.py", "def zipped_alpha(x):\n    return x + 11\n")
        archive.writestr("zipped/notes/beta.md", "# Beta\n\nThe beta notes mention a "
                                                 "zipped heron colony.\n")
    context = playwright_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server["url"])
    page.wait_for_selector("#folio-drop-overlay", state="attached")
    page.get_by_role("tab", name="Chat").click()
    page.evaluate(DROP_ZIP, ["bundle.zip", base64.b64encode(buffer.getvalue()).decode()])
    page.evaluate(DROP_FOLDER, ["dropped_folder", [
        ["gamma.py", "def gamma_from_folder():\n    return 'gamma'\n"],
        ["pkg/delta.py", "class DeltaFromFolder:\n    pass\n"]]])
    page.get_by_role("tab", name="Library").click()
    _wait_for_names(page, ["alpha_tools.py", "beta.md", "gamma.py", "delta.py"])
    names = _library_names(page)
    # The zip itself and the stand-in "x" file of the folder drop are not documents.
    assert not any(n.endswith((".zip", "dropped_folder")) for n in names), names
    context.close()
