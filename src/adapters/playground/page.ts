// The playground's single page: a chat that polls /api/messages and renders replies, progress, images, reactions.
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>StyleCLIP playground</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #f4f4f6; color: #222; }
  header { background: #3b3f8f; color: #fff; padding: 10px 16px; display: flex; gap: 12px; align-items: center; }
  header h1 { font-size: 17px; margin: 0; flex: 1; }
  header input { width: 120px; }
  #notice { background: #fff4cc; padding: 8px 16px; border-bottom: 1px solid #e5d58a; }
  #notice:empty { display: none; }
  #log { padding: 12px 16px 90px; max-width: 860px; margin: 0 auto; }
  .msg { background: #fff; border-radius: 8px; padding: 8px 12px; margin: 8px 0; box-shadow: 0 1px 2px #0001; }
  .msg.bot { border-left: 4px solid #3b3f8f; }
  .msg.error { border-left-color: #c0392b; background: #fdecea; }
  .who { font-weight: 600; margin-right: 6px; }
  .text { white-space: pre-wrap; }
  .meta { color: #777; font-size: 12px; }
  .result { display: block; margin-top: 6px; width: 256px; height: 256px; image-rendering: pixelated; border-radius: 4px; }
  .result.photo { width: auto; height: auto; max-width: 100%; max-height: 420px; image-rendering: auto; }
  .before-after { display: block; margin-top: 6px; width: 512px; max-width: 100%; height: auto; border-radius: 4px; }
  .attachment { color: #555; font-size: 13px; }
  form input[type=file] { max-width: 190px; font-size: 12px; align-self: center; }
  .preview { display: block; margin-top: 6px; width: 128px; height: 128px; image-rendering: pixelated; border-radius: 4px; opacity: 0.9; }
  .bar { height: 4px; background: #ddd; margin-top: 6px; border-radius: 2px; }
  .bar div { height: 4px; background: #3b3f8f; border-radius: 2px; }
  .reactions button { margin: 6px 6px 0 0; border: 1px solid #ccc; background: #fafafa; border-radius: 12px; padding: 2px 8px; cursor: pointer; }
  form { position: fixed; bottom: 0; left: 0; right: 0; background: #fff; border-top: 1px solid #ddd; padding: 10px 16px; display: flex; gap: 8px; }
  form input[name=text] { flex: 1; font-size: 15px; padding: 6px; }
  #replying { color: #555; font-size: 13px; align-self: center; }
</style>
</head>
<body>
<header><h1>StyleCLIP playground</h1><label>you are <input id="user" value="alice" aria-label="user name"></label></header>
<div id="notice"></div>
<div id="log" aria-live="polite"></div>
<form id="send">
  <span id="replying"></span>
  <input name="text" autocomplete="off" placeholder="/styleclip curly hair strength:3 seed:7   (try /styleclip-help)" aria-label="message">
  <input type="file" name="image" accept="image/*" aria-label="photo to edit" title="attach a photo with a face to /styleclip">
  <button type="submit">Send</button>
</form>
<script>
const log = document.getElementById('log');
const form = document.getElementById('send');
const userInput = document.getElementById('user');
const replying = document.getElementById('replying');
let version = -1, replyTo = null;
userInput.value = localStorage.getItem('styleclip-user') || 'alice';
userInput.addEventListener('change', () => localStorage.setItem('styleclip-user', userInput.value.trim()));

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// The bot's replies use chat markdown: **bold** and _italic_ (built as DOM nodes, never as HTML).
function formatted(text) {
  return text.split(/(\\*\\*[^*]+\\*\\*|\\b_[^_]+_\\b)/).map((part) => {
    if (/^\\*\\*[^*]+\\*\\*$/.test(part)) return el('strong', {}, part.slice(2, -2));
    if (/^_[^_]+_$/.test(part)) return el('em', {}, part.slice(1, -1));
    return part;
  });
}

async function api(path, body) {
  const res = await fetch(path, body ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {});
  const json = await res.json();
  if (!res.ok) throw new Error(json.error || res.statusText);
  return json;
}

function render(data) {
  document.getElementById('notice').textContent = data.notice || '';
  const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  log.replaceChildren(...data.messages.map((m) => {
    const cls = 'msg' + (m.bot ? ' bot' : '') + (m.status === 'error' || m.status === 'failed' ? ' error' : '');
    const parts = [el('span', { class: 'who' }, m.user), el('span', { class: 'text' }, ...(m.bot ? formatted(m.text) : [m.text]))];
    if (m.attachment) parts.push(el('div', { class: 'attachment' }, '📎 ' + m.attachment.name + ' (' + Math.round(m.attachment.size / 1024) + ' KB)'));
    if (m.status === 'running' && typeof m.progress === 'number') {
      const fill = el('div'); fill.style.width = m.progress + '%';
      parts.push(el('div', { class: 'bar' }, fill));
    }
    if (m.status === 'running' && m.previewUrl) parts.push(el('img', { class: 'preview', src: m.previewUrl, alt: 'progress of ' + m.jobId, width: '128' }));
    if (m.jobId && (m.status === 'running' || m.status === 'queued')) {
      parts.push(el('div', { class: 'reactions' }, el('button', { type: 'button', class: 'react', 'data-emoji': '❌', title: 'cancel',
        onclick: () => api('/api/messages/' + m.id + '/reactions', { user: userInput.value.trim(), emoji: '❌' }).then(poll).catch(alert) }, '❌ cancel')));
    }
    if (m.imageUrl) parts.push(el('img', { class: 'result' + (m.beforeAfterUrl ? ' photo' : ''), src: m.imageUrl, alt: 'result of ' + m.jobId, 'data-job': m.jobId }));
    if (m.beforeAfterUrl) parts.push(el('img', { class: 'before-after', src: m.beforeAfterUrl, alt: 'aligned face before and after' }));
    if (m.jobId && m.status === 'completed') {
      const count = (e) => (m.reactions[e] || []).length;
      parts.push(el('div', { class: 'reactions' },
        // The label is spelled out too: not every machine has an emoji font.
        ...(m.buttons || []).map(({ emoji: e, label }) => el('button', { type: 'button', class: 'react', 'data-emoji': e, title: label,
          onclick: () => api('/api/messages/' + m.id + '/reactions', { user: userInput.value.trim(), emoji: e }).then(poll).catch(alert) }, e + ' ' + label + (count(e) ? ' ' + count(e) : ''))),
        el('button', { type: 'button', class: 'edit-this', onclick: () => { replyTo = m.id; replying.textContent = 'editing ' + m.jobId; form.text.value = '/styleclip '; form.text.focus(); } }, 'edit this')));
    }
    parts.push(el('div', { class: 'meta' }, new Date(m.at).toLocaleTimeString() + (m.status ? ' · ' + m.status : '')));
    return el('div', { class: cls, 'data-id': m.id, 'data-status': m.status || '' }, ...parts);
  }));
  if (atBottom) window.scrollTo(0, document.body.scrollHeight);
}

async function poll() {
  try {
    const data = await api('/api/messages');
    if (data.version !== version) { version = data.version; render(data); }
  } catch (e) { /* server restarting */ }
}

function base64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = form.text.value.trim();
  if (!text) return;
  try {
    const file = form.image.files[0];
    const image = file ? { name: file.name, type: file.type, data: await base64(file) } : undefined;
    await api('/api/messages', { user: userInput.value.trim(), text, replyTo, image });
    form.text.value = ''; form.image.value = ''; replyTo = null; replying.textContent = '';
    poll();
  } catch (e) { alert(e.message); }
});
setInterval(poll, 400);
poll();
</script>
</body>
</html>`;
