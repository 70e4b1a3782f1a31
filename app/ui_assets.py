"""The page's CSS and the small scripts that connect custom HTML to Gradio.

Colours come from Gradio's theme variables, so light and dark both work.
The scripts only forward user gestures (a chip clicked, a row's button, a
drop anywhere on the page) to Python through the HTML component's
`trigger`; nothing is decided in the browser.
"""
from __future__ import annotations

from .code_view import pygments_css

CSS = """
.gradio-container { max-width: 1500px !important; }
#folio-title h1 { margin: 0; font-size: 1.5rem; }
#folio-summary { opacity: .8; font-size: .9rem; }
.folio-empty { padding: 1.5rem; border: 2px dashed var(--border-color-primary);
  border-radius: 12px; text-align: center; color: var(--body-text-color-subdued); }
.folio-empty h3 { margin-top: 0; color: var(--body-text-color); }

/* library */
table.folio-library { width: 100%; border-collapse: collapse; font-size: .9rem; }
.folio-library th, .folio-library td { padding: 6px 8px; text-align: left; vertical-align: top;
  border-bottom: 1px solid var(--border-color-primary); }
.folio-library .folio-name { max-width: 22rem; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; font-weight: 600; }
.folio-status.folio-ready { color: var(--color-green-600, #16a34a); }
.folio-status.folio-error { color: var(--error-text-color, #dc2626); }
.folio-status.folio-duplicate { color: var(--body-text-color-subdued); }
.folio-bar { height: 4px; background: var(--border-color-primary); border-radius: 2px;
  margin-top: 4px; width: 10rem; }
.folio-bar span { display: block; height: 100%; background: var(--color-accent);
  border-radius: 2px; }
.folio-note { font-size: .8rem; color: var(--body-text-color-subdued); }
.folio-act { font-size: .75rem; padding: 2px 8px; margin-right: 4px; border-radius: 6px;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary);
  cursor: pointer; }
.folio-danger:hover { color: var(--error-text-color, #dc2626); }

/* chat */
.folio-chat { display: flex; flex-direction: column; gap: 14px; }
.folio-turn { display: flex; flex-direction: column; gap: 6px; }
.folio-q { align-self: flex-end; max-width: 85%; padding: 8px 12px; border-radius: 12px;
  background: var(--color-accent-soft); }
.folio-a { max-width: 95%; padding: 8px 12px; border-radius: 12px; line-height: 1.55;
  background: var(--background-fill-secondary); }
.folio-stage { font-size: .8rem; color: var(--body-text-color-subdued); font-style: italic; }
.folio-error { color: var(--error-text-color, #dc2626); }
.folio-chip { display: inline-block; font-size: .75rem; font-weight: 700; padding: 0 5px;
  margin: 0 1px; border-radius: 6px; cursor: pointer; vertical-align: baseline;
  color: var(--color-accent); border: 1px solid var(--color-accent);
  background: transparent; line-height: 1.3; }
.folio-chip:hover, .folio-chip.folio-active { background: var(--color-accent); color: white; }
.folio-chip-weak { opacity: .55; }
.folio-sources { font-size: .85rem; margin-left: 12px; }
.folio-sources ol { margin: 4px 0; padding-left: 1.2rem; list-style: none; }
.folio-source-link { background: none; border: none; padding: 0; cursor: pointer;
  color: var(--color-accent); font-weight: 600; }
.folio-support { font-weight: 600; margin-left: 6px; }
.folio-unused { opacity: .6; font-weight: 400; }
.folio-score, .folio-where { color: var(--body-text-color-subdued); margin-left: 6px; }

/* inspector */
#folio-inspector { min-height: 200px; }
.folio-page-caption, .folio-code-caption { font-size: .85rem; font-weight: 600;
  margin-bottom: 6px; }
.folio-page-scroll { max-height: 78vh; overflow: auto; border: 1px solid
  var(--border-color-primary); border-radius: 8px; background: #888; }
.folio-page { position: relative; margin: 0 auto; }
.folio-page img { display: block; max-width: none; }
.folio-hl { position: absolute; background: rgba(255, 213, 0, .38);
  outline: 2px solid rgba(230, 160, 0, .9); border-radius: 2px; mix-blend-mode: multiply;
  pointer-events: none; }
.folio-code { position: relative; max-height: 78vh; overflow: auto; font-family: var(--font-mono, monospace);
  font-size: .8rem; border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 4px 0; }
.folio-line { display: flex; white-space: pre; }
.folio-line.folio-cited { background: rgba(255, 213, 0, .28);
  box-shadow: inset 3px 0 0 rgba(230, 160, 0, .9); }
.folio-ln { display: inline-block; min-width: 3.5em; padding-right: 10px; text-align: right;
  color: var(--body-text-color-subdued); user-select: none; }
.folio-src { padding-right: 12px; }
.folio-quote { font-size: .85rem; border-left: 3px solid var(--color-accent);
  padding-left: 8px; margin: 6px 0; }

/* the page-wide drop target */
#folio-drop-overlay { position: fixed; inset: 0; z-index: 1000; display: none;
  align-items: center; justify-content: center; font-size: 1.6rem; font-weight: 700;
  background: rgba(30, 100, 255, .15); border: 4px dashed var(--color-accent);
  pointer-events: none; }
#folio-drop-overlay.folio-on { display: flex; }
""" + pygments_css()

# The drop zone: any drop on the page (files, folders) is uploaded to
# Gradio's cache and announced to Python as one `upload` event.
DROP_JS = r"""
const overlay = document.createElement('div');
overlay.id = 'folio-drop-overlay';
overlay.textContent = 'Drop to add to the library';
document.body.appendChild(overlay);
let depth = 0;
const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
const ownZone = (e) => e.target && e.target.closest && e.target.closest('#folio-files');
document.addEventListener('dragenter', (e) => { if (hasFiles(e)) { depth++; overlay.classList.add('folio-on'); } });
document.addEventListener('dragleave', () => { depth = Math.max(0, depth - 1); if (!depth) overlay.classList.remove('folio-on'); });
document.addEventListener('dragover', (e) => { if (hasFiles(e) && !ownZone(e)) e.preventDefault(); });
function readEntry(entry, prefix, out) {
  if (entry.isFile) {
    return new Promise((res) => entry.file((f) => { out.push([f, prefix + f.name]); res(); }, () => res()));
  }
  if (entry.isDirectory) {
    const reader = entry.createReader();
    return new Promise((res) => {
      const all = [];
      const more = () => reader.readEntries(async (batch) => {
        if (!batch.length) {
          for (const child of all) await readEntry(child, prefix + entry.name + '/', out);
          res();
        } else { all.push(...batch); more(); }
      }, () => res());
      more();
    });
  }
  return Promise.resolve();
}
document.addEventListener('drop', async (e) => {
  depth = 0; overlay.classList.remove('folio-on');
  if (!hasFiles(e) || ownZone(e)) return;
  e.preventDefault();
  const found = [];
  const items = Array.from(e.dataTransfer.items || []);
  const entries = items.map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  if (entries.length) {
    for (const entry of entries) await readEntry(entry, '', found);
  } else {
    for (const f of Array.from(e.dataTransfer.files)) found.push([f, f.name]);
  }
  if (!found.length) return;
  element.textContent = `Uploading ${found.length} file(s)...`;
  const files = [];
  for (const [file, rel] of found) {
    try {
      const up = await upload(file);
      files.push({path: up.path, name: file.name, rel: rel});
    } catch (err) {
      files.push({path: null, name: file.name, rel: rel, error: String(err)});
    }
  }
  element.textContent = '';
  trigger('upload', {files: files});
});
"""

# Chips and source links in the chat: send the citation key to Python.
CHAT_JS = r"""
element.addEventListener('click', (e) => {
  const hit = e.target.closest('[data-cite]');
  if (!hit) return;
  element.querySelectorAll('.folio-chip.folio-active').forEach((c) => c.classList.remove('folio-active'));
  if (hit.classList.contains('folio-chip')) hit.classList.add('folio-active');
  trigger('click', {cite: hit.dataset.cite});
});
"""

# Library row buttons: remove (after a confirmation) and re-index.
LIBRARY_JS = r"""
element.addEventListener('click', (e) => {
  const hit = e.target.closest('[data-action]');
  if (!hit) return;
  const action = hit.dataset.action;
  if (action.startsWith('remove:') && !window.confirm('Remove this document from the library?')) return;
  trigger('click', {action: action});
});
"""

# The inspector: bring the first highlight into view whenever it changes.
INSPECTOR_JS = r"""
const reveal = () => {
  const target = element.querySelector('.folio-cited, .folio-hl');
  if (!target) return;
  const box = target.closest('.folio-code, .folio-page-scroll');
  if (box) {
    const top = target.offsetTop - box.clientHeight / 3;
    box.scrollTop = Math.max(0, top);
    const right = target.offsetLeft + target.offsetWidth;
    if (right > box.scrollLeft + box.clientWidth) box.scrollLeft = Math.max(0, target.offsetLeft - 20);
  }
};
watch('value', () => setTimeout(reveal, 30));
setTimeout(reveal, 30);
"""

# Enter sends the question, Shift+Enter starts a new line.
HEAD = """
<meta name="color-scheme" content="light dark">
"""
