// Rewind Broker operators' dashboard. Plain JavaScript, no build step, no third-party code.
//
// Every API call carries "Authorization: Bearer <admin key>"; the key lives in this tab's
// sessionStorage only. API data is rendered with textContent, never as HTML. Each panel owns
// its endpoint and degrades on its own: a 404 (an older broker without that endpoint) shows a
// message in that panel and leaves the others running; a 401 anywhere logs the operator out.
'use strict';

(() => {
  const keyName = 'rewind.adminKey';
  // The admin API is served beside the dashboard: /dashboard/ → /, /admin/dashboard/ → /admin/.
  const base = location.pathname.replace(/\/dashboard(\/.*)?$/, '');

  // Timings, each with its reason.
  const sessionsEvery = 2000; // the Sessions panel's poll, as operators expect from a live view
  const chartWindow = 5 * 60 * 1000; // the chart's span
  const metricsEvery = 5000; // /metrics is heavier (Go and process collectors): poll less often
  const healthEvery = 5000;
  const rateWindow = 60 * 1000; // pushes per minute are measured over the last minute
  const maxEvents = 200; // rows kept in the Events panel
  const reconnectMin = 1000; // event stream reconnect backoff, doubled up to reconnectMax
  const reconnectMax = 15000;
  const missingRetry = 60000; // a 404ing event stream is asked again after this (broker upgrade)

  const $ = (id) => document.getElementById(id);

  class HTTPError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }
  class AuthError extends Error {}

  // run holds the state of one logged-in period; logout aborts it and every loop ends.
  let run = null;

  // ---- API ------------------------------------------------------------------------------

  async function api(path, opts = {}) {
    const key = sessionStorage.getItem(keyName) || '';
    const headers = Object.assign({}, opts.headers || {}, { Authorization: 'Bearer ' + key });
    const resp = await fetch(base + path, Object.assign({ cache: 'no-store' }, opts, { headers }));
    if (resp.status === 401) {
      const msg = await errorText(resp);
      throw new AuthError(msg);
    }
    return resp;
  }

  async function errorText(resp) {
    try {
      const body = await resp.json();
      if (body && typeof body.error === 'string') return body.error;
    } catch (e) { /* not JSON */ }
    return resp.statusText || 'HTTP ' + resp.status;
  }

  async function getJSON(path, signal) {
    const resp = await api(path, { signal, headers: { Accept: 'application/json' } });
    if (!resp.ok) throw new HTTPError(resp.status, await errorText(resp));
    return resp.json();
  }

  // The admin API answers an unknown route with 404 "no such endpoint: …"; a known route for a
  // missing thing with another 404 message ("no such terminal").
  function missingEndpoint(err) {
    return err instanceof HTTPError && err.status === 404 && /^no such endpoint/.test(err.message);
  }

  // handleError reports err in a panel; a 401 ends the run and shows the login form.
  function handleError(err, show) {
    if (err && err.name === 'AbortError') return;
    if (err instanceof AuthError) {
      logout('The broker refused the admin key (401: ' + err.message + '). Log in again.');
      return;
    }
    show(err && err.message ? err.message : String(err));
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const t = setTimeout(resolve, ms);
      signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }

  // every runs f now and then every ms until the run ends, never two at once.
  async function every(ms, signal, f) {
    while (!signal.aborted) {
      const started = Date.now();
      await f();
      await sleep(Math.max(0, ms - (Date.now() - started)), signal);
    }
  }

  // ---- small DOM helpers --------------------------------------------------------------------

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function message(id, text, kind) {
    const p = $(id);
    if (!text) {
      p.hidden = true;
      p.textContent = '';
      return;
    }
    p.textContent = text;
    p.className = 'msg ' + (kind || 'warn');
    p.hidden = false;
  }

  function pill(id, text, kind) {
    const p = $(id);
    p.textContent = text;
    p.className = 'pill pill-' + kind;
  }

  function clock(t) {
    const d = t instanceof Date ? t : new Date(t);
    if (isNaN(d)) return String(t);
    return d.toISOString().slice(11, 19);
  }

  function isTime(v) {
    return typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(v);
  }

  function when(t) {
    const d = new Date(t);
    if (isNaN(d)) return String(t);
    return d.toISOString().slice(0, 19).replace('T', ' ') + 'Z';
  }

  function stamp() {
    $('updated').textContent = 'updated ' + clock(new Date()) + ' UTC';
  }

  function show(value) {
    if (value === null || value === undefined || value === '') return '—';
    if (Array.isArray(value)) return value.length ? value.map(show).join(', ') : '—';
    if (typeof value === 'object') return JSON.stringify(value);
    return String(value);
  }

  // ---- login --------------------------------------------------------------------------------

  function showLogin(error) {
    $('app').hidden = true;
    $('login').hidden = false;
    const p = $('login-error');
    p.textContent = error || '';
    p.hidden = !error;
    $('login-key').value = '';
    $('login-key').focus();
  }

  async function login(ev) {
    ev.preventDefault();
    const key = $('login-key').value.trim();
    if (!key) return;
    $('login-submit').disabled = true;
    sessionStorage.setItem(keyName, key);
    try {
      await getJSON('/v1/sessions?limit=1');
      start();
    } catch (err) {
      sessionStorage.removeItem(keyName);
      if (err instanceof AuthError) {
        showLogin('Wrong admin key: the broker answered 401 (' + err.message + ').');
      } else {
        showLogin('Could not reach the admin API: ' + err.message);
      }
    } finally {
      $('login-submit').disabled = false;
    }
  }

  function logout(reason) {
    sessionStorage.removeItem(keyName);
    if (run) run.abort.abort();
    run = null;
    showLogin(reason || '');
  }

  function start() {
    if (run) run.abort.abort();
    run = { abort: new AbortController() };
    const signal = run.abort.signal;
    $('login').hidden = true;
    $('app').hidden = false;
    resetPanels();
    every(healthEvery, signal, () => pollHealth(signal));
    every(sessionsEvery, signal, () => pollSessions(signal));
    every(metricsEvery, signal, () => pollMetrics(signal));
    streamEvents(signal);
  }

  function resetPanels() {
    sessionSamples.length = 0;
    pushSamples.length = 0;
    $('events-body').replaceChildren();
    eventIDs.clear();
    lastEventID = '';
    stream = '';
    $('events-count').textContent = '';
    $('lookup-result').hidden = true;
    message('lookup-msg', '');
  }

  // ---- health -------------------------------------------------------------------------------

  async function pollHealth(signal) {
    try {
      const resp = await fetch(base + '/healthz', { cache: 'no-store', signal });
      const body = await resp.json().catch(() => ({}));
      if (resp.ok && body.status === 'ok') pill('health', 'broker ok', 'ok');
      else pill('health', 'broker: ' + (body.status || 'HTTP ' + resp.status), 'bad');
    } catch (err) {
      if (err.name !== 'AbortError') pill('health', 'broker unreachable', 'bad');
    }
  }

  // ---- sessions -----------------------------------------------------------------------------

  const sessionSamples = []; // {t, active, idle}

  async function pollSessions(signal) {
    try {
      const page = await getJSON('/v1/sessions?limit=1000', signal);
      const counts = { active: 0, idle: 0, handshake: 0 };
      const items = page.items || [];
      for (const s of items) counts[s.state] = (counts[s.state] || 0) + 1;
      // More than a page: the counts are lower bounds.
      const capped = page.next !== undefined && page.next !== null;
      const fmt = (n) => (capped ? '≥' + n : String(n));
      $('sess-total').textContent = capped ? '≥1000' : String(items.length);
      $('sess-active').textContent = fmt(counts.active);
      $('sess-idle').textContent = fmt(counts.idle);
      $('sess-handshake').textContent = fmt(counts.handshake);
      const now = Date.now();
      sessionSamples.push({ t: now, active: counts.active, idle: counts.idle });
      while (sessionSamples.length && sessionSamples[0].t < now - chartWindow) sessionSamples.shift();
      drawChart();
      message('sessions-msg', capped ? 'More than 1000 sessions: counts are for the first 1000.' : '', 'info');
      stamp();
    } catch (err) {
      handleError(err, (m) => message('sessions-msg', 'GET /v1/sessions failed: ' + m, 'bad'));
    }
  }

  function drawChart() {
    const canvas = $('sess-chart');
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 400;
    const h = canvas.clientHeight || 120;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const color = (name, fallback) => css.getPropertyValue(name).trim() || fallback;

    const left = 34, right = 6, top = 8, bottom = 18;
    const pw = w - left - right, ph = h - top - bottom;
    let max = 1;
    for (const s of sessionSamples) max = Math.max(max, s.active, s.idle);
    max = niceCeil(max);
    const now = Date.now();
    const x = (t) => left + pw * (1 - (now - t) / chartWindow);
    const y = (v) => top + ph * (1 - v / max);

    g.font = '10px system-ui, sans-serif';
    g.fillStyle = color('--muted', '#777');
    g.strokeStyle = color('--grid', '#ddd');
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      const yy = Math.round(y(v)) + 0.5;
      g.beginPath();
      g.moveTo(left, yy);
      g.lineTo(w - right, yy);
      g.stroke();
      g.textAlign = 'right';
      g.textBaseline = 'middle';
      g.fillText(Number.isInteger(v) ? String(v) : v.toFixed(1), left - 4, yy);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (let m = 5; m >= 0; m--) {
      g.fillText(m === 0 ? 'now' : '-' + m + 'm', Math.min(w - right - 10, Math.max(left + 10, x(now - m * 60000))), h - bottom + 4);
    }
    const line = (key, stroke) => {
      if (!sessionSamples.length) return;
      g.strokeStyle = stroke;
      g.lineWidth = 2;
      g.beginPath();
      sessionSamples.forEach((s, i) => (i ? g.lineTo(x(s.t), y(s[key])) : g.moveTo(x(s.t), y(s[key]))));
      if (sessionSamples.length === 1) g.lineTo(x(now), y(sessionSamples[0][key]));
      g.stroke();
    };
    line('idle', color('--idle', '#c98a00'));
    line('active', color('--active', '#1f6feb'));
  }

  function niceCeil(v) {
    if (v <= 4) return 4;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // ---- pushes (from /metrics) ---------------------------------------------------------------

  const pushSamples = []; // {t, counts: {platform: {outcome: n}}}

  // parsePushes reads rewind_pushes_total{platform,outcome} from the Prometheus text exposition.
  function parsePushes(text) {
    const counts = {};
    for (const line of text.split('\n')) {
      if (!line.startsWith('rewind_pushes_total{')) continue;
      const close = line.lastIndexOf('}');
      const labels = {};
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let m;
      while ((m = re.exec(line.slice(20, close))) !== null) {
        labels[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      }
      const value = parseFloat(line.slice(close + 1).trim().split(/\s+/)[0]);
      if (isNaN(value)) continue;
      const platform = labels.platform || '?';
      const outcome = labels.outcome || '?';
      counts[platform] = counts[platform] || {};
      counts[platform][outcome] = (counts[platform][outcome] || 0) + value;
    }
    return counts;
  }

  async function pollMetrics(signal) {
    try {
      const resp = await api('/metrics', { signal, headers: { Accept: 'text/plain' } });
      if (resp.status === 404) {
        message('pushes-msg', 'This broker has no /metrics endpoint (404).', 'warn');
        return;
      }
      if (!resp.ok) throw new HTTPError(resp.status, await errorText(resp));
      const counts = parsePushes(await resp.text());
      const now = Date.now();
      pushSamples.push({ t: now, counts });
      while (pushSamples.length > 1 && pushSamples[1].t <= now - rateWindow) pushSamples.shift();
      renderPushes();
      message('pushes-msg', '');
    } catch (err) {
      handleError(err, (m) => message('pushes-msg', 'GET /metrics failed: ' + m, 'bad'));
    }
  }

  function renderPushes() {
    const cur = pushSamples[pushSamples.length - 1];
    const old = pushSamples[0];
    const platforms = Object.keys(cur.counts).sort();
    const outcomes = new Set();
    for (const p of platforms) for (const o of Object.keys(cur.counts[p])) outcomes.add(o);
    const order = ['sent', 'retrying', 'token_invalid', 'rejected', 'no_push_channel', 'nothing_pending', 'overloaded'];
    const sorted = [...outcomes].sort((a, b) => rank(order, a) - rank(order, b) || a.localeCompare(b));

    const head = $('push-head');
    head.replaceChildren(el('th', 'outcome'));
    for (const p of platforms) head.append(el('th', p, 'n'));
    head.append(el('th', 'total', 'n'), el('th', 'last min', 'n'));

    const body = $('push-body');
    body.replaceChildren();
    if (!sorted.length) {
      const tr = el('tr');
      const td = el('td', 'No push attempts since the broker started.', 'muted');
      td.colSpan = platforms.length + 3;
      tr.append(td);
      body.append(tr);
      return;
    }
    const span = cur.t - old.t;
    for (const o of sorted) {
      const tr = el('tr');
      tr.dataset.outcome = o;
      tr.append(el('td', o, 'outcome o-' + o.replace(/[^a-z_]/g, '')));
      let total = 0, before = 0;
      for (const p of platforms) {
        const n = cur.counts[p][o] || 0;
        total += n;
        before += (old.counts[p] && old.counts[p][o]) || 0;
        tr.append(el('td', n, 'n'));
      }
      tr.append(el('td', total, 'n total'));
      // The change over the last minute: scaled to exactly a minute when the oldest sample kept
      // is older than that, unscaled (and labelled) while the dashboard has watched for less.
      let delta = '…';
      let title = 'needs a second sample';
      if (span >= 1000) {
        const d = total - before;
        delta = span > rateWindow ? ((d * rateWindow) / span).toFixed(1).replace(/\.0$/, '') : String(d);
        title = span > rateWindow ? 'per minute, over the last ' + Math.round(span / 1000) + ' s' : 'in the ' + Math.round(span / 1000) + ' s watched so far';
      }
      const td = el('td', delta, 'n rate');
      td.title = title;
      tr.append(td);
      body.append(tr);
    }
  }

  function rank(order, v) {
    const i = order.indexOf(v);
    return i < 0 ? order.length : i;
  }

  // ---- events (Server-Sent Events over fetch) -----------------------------------------------
  //
  // EventSource cannot send an Authorization header, so the stream is read with fetch and a
  // ReadableStream reader and parsed here as text/event-stream. A lost stream reconnects with
  // Last-Event-ID so nothing between is missed.

  let lastEventID = '';
  let stream = ''; // the broker's event stream id (new at each broker start)
  const eventIDs = new Set(); // ids shown, to drop repeats after a reconnect

  async function streamEvents(signal) {
    let backoff = reconnectMin;
    while (!signal.aborted) {
      const headers = { Accept: 'text/event-stream' };
      if (lastEventID) headers['Last-Event-ID'] = lastEventID;
      try {
        const resp = await api('/v1/events', { signal, headers });
        if (resp.status === 404) {
          pill('events-state', 'events unavailable', 'unknown');
          message('events-msg', 'This broker has no event stream (GET /v1/events answered 404). ' +
            'Events appear here once the broker is upgraded; asking again every minute.', 'warn');
          await sleep(missingRetry, signal);
          continue;
        }
        if (!resp.ok) throw new HTTPError(resp.status, await errorText(resp));
        pill('events-state', 'events live', 'ok');
        message('events-msg', '');
        backoff = reconnectMin;
        await readEventStream(resp.body, signal, (retry) => { backoff = retry; });
        if (signal.aborted) return;
        pill('events-state', 'events reconnecting', 'warn');
      } catch (err) {
        if (signal.aborted || (err && err.name === 'AbortError')) return;
        if (err instanceof AuthError) return handleError(err, () => {});
        pill('events-state', 'events reconnecting', 'warn');
        message('events-msg', 'Event stream lost (' + err.message + '); reconnecting in ' + Math.round(backoff / 1000) + ' s.', 'bad');
      }
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, reconnectMax);
    }
  }

  // readEventStream parses text/event-stream (the WHATWG rules: lines end in CR, LF or CRLF;
  // "field: value"; a blank line dispatches; ":" starts a comment) until the stream ends.
  async function readEventStream(body, signal, setRetry, onMessage = dispatch) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let data = [];
    let type = '';
    let id = null;
    const onAbort = () => reader.cancel().catch(() => {});
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        for (;;) {
          const m = /\r\n|\r|\n/.exec(buf);
          // A CR at the very end may be the first half of a CRLF: wait for more.
          if (!m || (m[0] === '\r' && m.index === buf.length - 1)) break;
          const line = buf.slice(0, m.index);
          buf = buf.slice(m.index + m[0].length);
          if (line === '') {
            if (id !== null && onMessage === dispatch) lastEventID = id;
            if (data.length) onMessage(type || 'message', data.join('\n'));
            data = [];
            type = '';
            id = null;
            continue;
          }
          if (line[0] === ':') continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? '' : line.slice(colon + 1);
          if (val[0] === ' ') val = val.slice(1);
          if (field === 'data') data.push(val);
          else if (field === 'event') type = val;
          else if (field === 'id' && !val.includes('\0')) id = val;
          else if (field === 'retry' && /^\d+$/.test(val)) setRetry(Math.max(reconnectMin, parseInt(val, 10)));
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  function dispatch(sseType, data) {
    let ev;
    try {
      ev = JSON.parse(data);
    } catch (e) {
      ev = { type: sseType, detail: data };
    }
    if (!ev || typeof ev !== 'object') return;
    if (sseType === 'hello') return hello(ev);
    if (sseType === 'gap') {
      ev = { type: 'gap', detail: 'events were missed (' + (ev.reason || 'gap') + '); showing from ' + show(ev.oldest) };
    }
    if (!ev.type && sseType !== 'message') ev.type = sseType;
    addEvent(ev);
  }

  // hello starts each stream connection: {stream, oldest, next}. IDs restart under a new stream
  // id when the broker restarts, so ids seen before mean nothing then. On the first connection
  // the stream carries live events only: the last maxEvents before it are fetched once.
  function hello(h) {
    if (stream && h.stream !== stream) eventIDs.clear();
    const first = !stream;
    stream = h.stream;
    const next = Number(h.next);
    if (first && next > 1 && run) {
      const after = Math.max(0, next - 1 - maxEvents);
      backlog('/v1/events?follow=false&after=' + after + '&limit=' + maxEvents, run.abort.signal);
    }
  }

  async function backlog(path, signal) {
    try {
      const resp = await api(path, { signal, headers: { Accept: 'text/event-stream' } });
      if (!resp.ok) return;
      await readEventStream(resp.body, signal, () => {}, (type, data) => {
        if (type === 'hello' || type === 'gap') return;
        try { addEvent(JSON.parse(data)); } catch (e) { /* skip */ }
      });
    } catch (err) {
      handleError(err, () => {}); // the live stream reports trouble
    }
  }

  // addEvent inserts a row, keeping rows newest first by id (backlog may arrive after live
  // events) and at most maxEvents of them.
  function addEvent(ev) {
    const id = ev.id !== undefined && ev.id !== null ? String(ev.id) : '';
    if (id && eventIDs.has(id)) return;
    if (id) eventIDs.add(id);
    const tbody = $('events-body');
    const tr = el('tr');
    tr.dataset.id = id;
    tr.dataset.type = ev.type || '';
    const time = el('td', ev.time ? clock(ev.time) : '', 'time');
    if (ev.time) time.title = String(ev.time);
    const kind = String(ev.type || '').replace(/[^a-z_]/g, '');
    tr.append(
      time,
      el('td', ev.type || '—', 'type t-' + kind),
      el('td', ev.terminal ? ev.terminal : '—', 'terminal'),
      el('td', eventDetail(ev), 'detail'),
    );
    tr.title = [ev.type, ev.terminal, eventDetail(ev)].filter(Boolean).join(' · ');
    let before = tbody.rows[0] || null;
    if (id) {
      const n = Number(id);
      while (before && before.dataset.id && Number(before.dataset.id) > n) before = before.nextElementSibling;
    }
    tbody.insertBefore(tr, before);
    while (tbody.rows.length > maxEvents) {
      const last = tbody.rows[tbody.rows.length - 1];
      eventIDs.delete(last.dataset.id);
      last.remove();
    }
    $('events-count').textContent = '(' + tbody.rows.length + ')';
  }

  function eventDetail(ev) {
    const parts = [];
    if (ev.platform) parts.push(ev.platform);
    if (ev.reason) parts.push(ev.reason);
    const d = ev.detail;
    if (d && typeof d === 'object' && !Array.isArray(d)) {
      for (const [k, v] of Object.entries(d)) if (v !== '' && v !== null && v !== undefined) parts.push(k + '=' + show(v));
    } else if (d !== undefined && d !== null && d !== '') {
      parts.push(show(d));
    }
    if (ev.session) parts.push('session ' + ev.session);
    return parts.join(' · ');
  }

  // ---- terminal lookup ----------------------------------------------------------------------

  async function lookup(ev) {
    ev.preventDefault();
    const id = $('lookup-id').value.trim();
    if (!/^\d{1,10}$/.test(id) || id === '0') {
      message('lookup-msg', 'A terminal id is a number from 1 to 4294967295.', 'bad');
      return;
    }
    if (!run) return;
    const signal = run.abort.signal;
    message('lookup-msg', 'Looking up ' + id + '…', 'info');
    $('lookup-result').hidden = true;
    const [detail, audit] = await Promise.allSettled([
      getJSON('/v1/terminals/' + id, signal),
      getJSON('/v1/terminals/' + id + '/pushes', signal),
    ]);
    if (detail.status === 'rejected') {
      const err = detail.reason;
      handleError(err, (m) => {
        if (err instanceof HTTPError && err.status === 404 && !missingEndpoint(err)) {
          message('lookup-msg', 'Terminal ' + id + ' is not registered (404: ' + m + ').', 'warn');
        } else {
          message('lookup-msg', 'GET /v1/terminals/' + id + ' failed: ' + m, 'bad');
        }
      });
      return;
    }
    message('lookup-msg', '');
    renderDetail(detail.value);
    renderAudit(audit, id);
    $('lookup-result').hidden = false;
  }

  function kv(dl, pairs) {
    dl.replaceChildren();
    for (const [k, v] of pairs) {
      const dd = el('dd', isTime(v) ? when(v) : show(v));
      if (isTime(v)) dd.title = v;
      dl.append(el('dt', k.replace(/_/g, ' ')), dd);
    }
  }

  // flatten turns {a: {b: 1}} into [["a.b", 1]] for a key/value list.
  function flatten(obj, prefix = '', out = []) {
    for (const [k, v] of Object.entries(obj)) {
      if (k === 'terminal' && !prefix) continue; // the looked-up terminal itself
      if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, prefix + k + '.', out);
      else out.push([prefix + k, v]);
    }
    return out;
  }

  function renderDetail(t) {
    kv($('d-terminal'), [['id', t.id], ['user', t.user], ['name', t.name], ['state', t.state], ['created', t.created],
      ['updated', t.updated], ['last seen', t.last_seen]]);
    const s = t.session;
    if (s) {
      kv($('d-session'), [['state', s.state], ['session', s.session], ['remote', s.remote],
        ['client', s.client], ['since', s.since], ['last keep-alive', s.last_keepalive],
        ['queue depth', s.queue_depth], ['talkgroups', s.talkgroups]]);
    } else {
      note($('d-session'), 'No live session.');
    }
    // The push fields come with the terminal detail endpoint: absent on an older broker (or
    // without push), null when the terminal has none.
    const part = (id, key, none) => {
      const v = t[key];
      if (!(key in t)) note($(id), 'Not reported by this broker.');
      else if (v === null || v === undefined) note($(id), none);
      else if (typeof v === 'object') kv($(id), flatten(v));
      else kv($(id), [[key, v]]);
    };
    part('d-attach', 'attach', 'Not attached: no push channel.');
    part('d-outbox', 'outbox', 'Empty.');
    part('d-lastpush', 'last_push', 'No push yet.');
  }

  function note(dl, text) {
    dl.replaceChildren(el('dd', text, 'muted'));
  }

  function renderAudit(result, id) {
    const head = $('audit-head');
    const body = $('audit-body');
    head.replaceChildren();
    body.replaceChildren();
    $('audit-table').hidden = true;
    if (result.status === 'rejected') {
      const err = result.reason;
      handleError(err, (m) => {
        if (missingEndpoint(err)) {
          message('audit-msg', 'Push audit not available on this broker (GET /v1/terminals/' + id + '/pushes answered 404).', 'warn');
        } else {
          message('audit-msg', 'GET /v1/terminals/' + id + '/pushes failed: ' + m, 'bad');
        }
      });
      return;
    }
    const v = result.value;
    const items = Array.isArray(v) ? v : (v && (v.items || v.pushes)) || [];
    if (!items.length) {
      message('audit-msg', 'No pushes recorded for this terminal.', 'info');
      return;
    }
    message('audit-msg', '');
    const preferred = ['time', 'outcome', 'platform', 'kind', 'latency_ms', 'reason', 'message_id'];
    const keys = new Set();
    for (const it of items.slice(0, 50)) for (const k of Object.keys(it)) if (k !== 'terminal') keys.add(k);
    const cols = [...keys].sort((a, b) => rank(preferred, a) - rank(preferred, b) || a.localeCompare(b));
    for (const c of cols) head.append(el('th', c.replace(/_/g, ' ')));
    for (const it of items) {
      const tr = el('tr');
      for (const c of cols) {
        const td = el('td', c === 'time' && it[c] ? when(it[c]) : show(it[c]));
        td.title = show(it[c]);
        tr.append(td);
      }
      body.append(tr);
    }
    $('audit-table').hidden = false;
  }

  // ---- boot ---------------------------------------------------------------------------------

  window.addEventListener('resize', () => { if (run) drawChart(); });
  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', () => logout(''));
    $('lookup-form').addEventListener('submit', lookup);
    if (sessionStorage.getItem(keyName)) start();
    else showLogin('');
  });
})();
