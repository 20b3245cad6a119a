// The ingress's login page, /ui/ingress/login?to=<URL of an instance port>. The ingress sends a browser here
// when it shows no session for that host. With the API token this browser keeps (the terminal page keeps
// it under the same key), it asks the API for a one-time ticket bound to that host and goes to the host's
// /__paddock/login (at the URL the gateway gives with the ticket), which sets the host's session cookie and
// returns to the page first asked for.
// The token itself never leaves this origin: the instance's host gets only the ticket.

const TOKEN_KEY = 'paddock.token';
const el = (id) => document.getElementById(id);

function setState(text) {
  el('state').textContent = text;
  el('state').hidden = text === '';
}

function showMessage(text) {
  el('message').textContent = text;
  el('message').hidden = text === '';
}

/** The URL to open, if `?to=` holds an http(s) URL. */
function targetUrl() {
  const raw = new URLSearchParams(location.search).get('to');
  if (!raw) return undefined;
  try {
    const url = new URL(raw);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

function askForToken(why = '') {
  setState('');
  showMessage(why);
  el('change-token').hidden = true;
  el('token-form').hidden = false;
  el('token').value = '';
  el('token').focus();
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

async function logIn(target) {
  const token = localStorage.getItem(TOKEN_KEY);
  if (!token) return askForToken();
  el('token-form').hidden = true;
  showMessage('');
  setState('Asking the gateway for a login ticket…');
  let res;
  try {
    res = await fetch('/api/v1/ingress/tickets', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ host: target.host }),
    });
  } catch (err) {
    setState('');
    showMessage(`Cannot reach the Paddock gateway (${err.message}).`);
    return;
  }
  if (res.status === 201) {
    // The gateway says where the ticket goes (the host's own login path, at the ingress's origin): never
    // the origin of ?to=, which whoever made the link chose.
    const { loginUrl } = await res.json();
    setState(`Logging in to ${target.hostname}…`);
    const login = new URL(loginUrl);
    login.searchParams.set('next', `${target.pathname}${target.search}`);
    // replace(): the login step stays out of the history, so Back returns to where the user came from.
    location.replace(login.href);
    return;
  }
  const said = await errorText(res);
  const detail = said ? ` The gateway said: ${said}` : '';
  el('change-token').hidden = false;
  setState('');
  if (res.status === 401) {
    localStorage.removeItem(TOKEN_KEY);
    return askForToken(`The API token was refused (401): it is wrong or has been revoked. Paste a valid token.${detail}`);
  }
  if (res.status === 404) {
    return showMessage(`This token cannot open ${target.host} (404): the instance does not exist, has ended, or belongs to another user.${detail}`);
  }
  if (res.status === 400) return showMessage(`${target.host} is not an address of this Paddock's instances (400).${detail}`);
  showMessage(`The gateway answered ${res.status} when asked for a login ticket.${detail}`);
}

const target = targetUrl();
el('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = el('token').value.trim();
  if (token === '' || !target) return;
  localStorage.setItem(TOKEN_KEY, token);
  void logIn(target);
});
el('change-token').addEventListener('click', () => askForToken());

if (target) {
  el('target').hidden = false;
  el('target-url').textContent = target.href;
  el('target-url').href = target.href;
  void logIn(target);
} else {
  setState('');
  showMessage('Nothing to open: this page is where Paddock sends you to log in to an instance port, with ?to=<its URL>.');
}
