// The terminal of one running instance, /ui/terminal/{id}: xterm.js over the gateway's WebSocket terminal.
// Protocol: binary frames are terminal bytes both ways; a text frame {"type":"resize","cols","rows"} resizes.
// The socket is opened with a one-time ticket, bought with the API token that this browser keeps.
import { Terminal } from '/ui/assets/xterm/xterm.mjs';
import { FitAddon } from '/ui/assets/addon-fit/addon-fit.mjs';

const TOKEN_KEY = 'paddock.token';
const instanceId = decodeURIComponent(location.pathname.split('/').pop() ?? '');
const el = (id) => document.getElementById(id);

const term = new Terminal({
  cursorBlink: true,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
  fontSize: 14,
  scrollback: 5000,
  theme: { background: '#1e1e1e' },
});
const fit = new FitAddon();
term.loadAddon(fit);
term.open(el('terminal'));

const encoder = new TextEncoder();
/** The socket of the current attempt; a socket that is no longer this one is ignored. */
let socket;

function setState(state, text = state) {
  el('state').dataset.state = state;
  el('state').textContent = text;
}

function showMessage(text) {
  el('message').textContent = text;
  el('message').hidden = text === '';
}

function showSize() {
  el('size').textContent = `${term.cols}×${term.rows}`;
}

function sendResize() {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
}

function sendBytes(bytes) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(bytes);
}

term.onData((data) => sendBytes(encoder.encode(data)));
// Some mouse reports are not UTF-8: xterm hands them over as one char per byte.
term.onBinary((data) => sendBytes(Uint8Array.from(data, (c) => c.charCodeAt(0))));
term.onResize(() => {
  showSize();
  sendResize();
});

// Refits when the window (or the space left by the banners above) changes, once per frame at most.
let fitScheduled = false;
new ResizeObserver(() => {
  if (fitScheduled) return;
  fitScheduled = true;
  requestAnimationFrame(() => {
    fitScheduled = false;
    fit.fit();
  });
}).observe(el('terminal'));

function askForToken(why = '') {
  closeSocket();
  setState('signed-out', 'no token');
  showMessage(why);
  el('change-token').hidden = true;
  el('reconnect').hidden = true;
  el('token-form').hidden = false;
  el('token').value = '';
  el('token').focus();
}

el('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = el('token').value.trim();
  if (token === '') return;
  localStorage.setItem(TOKEN_KEY, token);
  el('token-form').hidden = true;
  void connect();
});
el('change-token').addEventListener('click', () => askForToken());
el('reconnect').addEventListener('click', () => void connect());

function closeSocket() {
  const old = socket;
  socket = undefined;
  old?.close();
}

function fail(text, state = 'error', stateText = state) {
  setState(state, stateText);
  showMessage(text);
  el('reconnect').hidden = false;
  el('change-token').hidden = false;
}

/** What the gateway said in its {error: {code, message}} answer, if it said anything. */
async function errorText(res) {
  try {
    const body = await res.json();
    return body?.error?.message ?? '';
  } catch {
    return '';
  }
}

async function ticketRefused(res) {
  const detail = await errorText(res);
  const said = detail ? ` The gateway said: ${detail}` : '';
  if (res.status === 401) {
    localStorage.removeItem(TOKEN_KEY);
    return askForToken(`The API token was refused (401): it is wrong or has been revoked. Paste a valid token.${said}`);
  }
  if (res.status === 404) {
    return fail(`No instance ${instanceId} for this token (404): it does not exist, or it belongs to another user.${said}`);
  }
  if (res.status === 409) {
    return fail(`Instance ${instanceId} is not running (409), so there is no terminal to join: only a running agent or service can be joined.${said}`);
  }
  if (res.status === 400) return fail(`"${instanceId}" is not a valid instance id (400).${said}`);
  return fail(`The gateway answered ${res.status} when asked for a terminal ticket.${said}`);
}

/** A one-time ticket's path, or undefined once the page has said why there is none. */
async function requestTicket(token) {
  let res;
  try {
    res = await fetch(`/api/v1/instances/${encodeURIComponent(instanceId)}/terminal-ticket`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
  } catch (err) {
    fail(`Cannot reach the Paddock gateway (${err.message}).`);
    return undefined;
  }
  if (res.status !== 201) {
    await ticketRefused(res);
    return undefined;
  }
  return (await res.json()).path;
}

async function connect() {
  const token = localStorage.getItem(TOKEN_KEY);
  if (!token) return askForToken();
  closeSocket();
  el('reconnect').hidden = true;
  el('change-token').hidden = false;
  showMessage('');
  setState('connecting', 'connecting…');
  const path = await requestTicket(token);
  if (path === undefined) return;

  fit.fit();
  const url = new URL(path, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('cols', String(term.cols));
  url.searchParams.set('rows', String(term.rows));
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  socket = ws;
  let opened = false;
  let sized = false;

  ws.addEventListener('open', () => {
    if (socket !== ws) return;
    opened = true;
    // tmux redraws the whole screen for a new client: start from a clean one.
    term.reset();
    setState('connected');
    term.focus();
  });
  ws.addEventListener('message', (event) => {
    if (socket !== ws || !(event.data instanceof ArrayBuffer)) return;
    term.write(new Uint8Array(event.data));
    // The gateway drops a resize sent before its SSH shell is open, and output means it is: the size now
    // is sent once more, in case the window changed while connecting.
    if (!sized) {
      sized = true;
      sendResize();
    }
  });
  ws.addEventListener('close', async (event) => {
    if (socket !== ws) return;
    socket = undefined;
    const reason = event.reason ? `: ${event.reason}` : '';
    if (opened) {
      fail(`The terminal connection closed (code ${event.code}${reason}). Reconnect to join again.`, 'closed', 'disconnected');
      return;
    }
    // A browser sees a refused upgrade only as code 1006, without the HTTP answer: asking for another
    // ticket tells why (the instance stopped meanwhile, the token was revoked) when the gateway knows.
    if ((await requestTicket(token)) === undefined || socket !== undefined) return;
    fail(`The terminal connection could not be opened (code ${event.code}${reason}). Reconnect to try again.`, 'closed', 'disconnected');
  });
}

document.title = `Paddock terminal · ${instanceId}`;
el('instance').textContent = instanceId;
fit.fit();
showSize();
void connect();
