// resident's dashboard: polls the server every 2 s and draws what it says. No library: the charts
// are SVG strings built here. Works with RESIDENT_API_KEY (asks for it, keeps it in this tab's
// sessionStorage, sends it as a Bearer token) and with any server that lacks the newer fields
// (e.g. /api/ps without "state").
'use strict';

const POLL_MS = 2000;
const HOUR_S = 3600;
const KEY_STORAGE = 'resident.api_key';
const PALETTE = ['#4263eb', '#f08c00', '#2f9e44', '#d6336c', '#1098ad', '#7048e8', '#e8590c', '#5c940d',
                 '#ae3ec9', '#0b7285'];
const SVG_NS = 'http://www.w3.org/2000/svg';

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || '',
  needKey: false,
  clockOffsetMs: 0,       // server time - local time
  ps: null,
  stats: null,
  samples: [],            // memory history, oldest first
  periodS: 2,
  events: [],             // residency events, oldest first
  lastSeq: 0,
  whatIf: null,
  whatIfAt: 0,
  pollTimer: null,
  lastOk: 0,
};

// --- formatting ------------------------------------------------------------------------------

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function fmtBytes(b) {
  if (b == null || !isFinite(b)) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = b;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  const text = v >= 100 || i === 0 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return text.replace(/\.0+$|(\.\d*?)0+$/, '$1') + ' ' + units[i];
}

function fmtNum(v, digits) {
  if (v == null || !isFinite(v)) return '–';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(digits == null ? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2) : digits);
}

function fmtDuration(s) {
  if (!isFinite(s)) return '–';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h > 0) return h + 'h ' + String(m).padStart(2, '0') + 'm';
  if (m > 0) return m + 'm ' + String(sec).padStart(2, '0') + 's';
  return sec + 's';
}

function fmtClock(unixS) {
  const d = new Date(unixS * 1000);
  return d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function serverNowS() { return (Date.now() + state.clockOffsetMs) / 1000; }

// A stable colour per model: its rank among every model the server has loaded since it started.
function colourOf(model) {
  const names = allModelNames();
  const i = names.indexOf(model);
  return PALETTE[(i < 0 ? names.length : i) % PALETTE.length];
}

function allModelNames() {
  const set = new Set();
  if (state.stats) Object.keys(state.stats.models || {}).forEach((n) => set.add(n));
  for (const s of state.samples) Object.keys(s.models || {}).forEach((n) => set.add(n));
  if (state.ps) (state.ps.models || []).forEach((m) => set.add(m.name));
  return [...set].sort();
}

function niceStep(range, ticks) {
  const raw = range / Math.max(1, ticks);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
}

function svg(width, height, body, label) {
  return `<svg xmlns="${SVG_NS}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(label)}">${body}</svg>`;
}

// The charts' time window: the last hour, or less while the history is younger (at least 5
// minutes), so that a server started a minute ago does not draw a minute in an hour.
function timeWindow() {
  const now = serverNowS();
  const first = state.samples.length ? state.samples[0].t : now;
  const firstEvent = state.events.length ? Date.parse(state.events[0].time) / 1000 : now;
  const span = Math.min(HOUR_S, Math.max(300, now - Math.min(first, firstEvent) + 10));
  return { now, x0: now - span, span };
}

// Time ticks: every 1, 2, 5, 10 or 15 minutes, about six of them.
function timeTicks(span) {
  const step = [60, 120, 300, 600, 900].find((s) => span / s <= 7) || 900;
  const out = [];
  for (let ago = 0; ago <= span + 1e-6; ago += step) out.push(ago);
  return out;
}

function agoLabel(ago) { return ago === 0 ? 'now' : '−' + Math.round(ago / 60) + ' min'; }

function chartWidth(el) { return Math.max(480, Math.floor(el.clientWidth || 900)); }

// --- HTTP ------------------------------------------------------------------------------------

class NeedKey extends Error {}

async function getJson(path) {
  const headers = { Accept: 'application/json' };
  if (state.key) headers.Authorization = 'Bearer ' + state.key;
  const r = await fetch(path, { headers, cache: 'no-store' });
  if (r.status === 401) throw new NeedKey();
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new Error(path + ': ' + msg);
  }
  return r.json();
}

function showKeyPanel(wrong) {
  state.needKey = true;
  document.getElementById('main').hidden = true;
  document.getElementById('key-panel').hidden = false;
  const err = document.getElementById('key-error');
  err.hidden = !wrong;
  err.textContent = wrong ? 'That key was not accepted.' : '';
  setStatus('needs the API key', false);
  document.getElementById('key-input').focus();
}

function setStatus(text, live) {
  const el = document.getElementById('status');
  el.textContent = text;
  el.className = 'status ' + (live ? 'live' : 'down');
}

// --- polling ---------------------------------------------------------------------------------

async function poll() {
  clearTimeout(state.pollTimer);
  try {
    const since = state.samples.length ? state.samples[state.samples.length - 1].t : -1;
    const [ps, stats, history, events] = await Promise.all([
      getJson('/api/ps'),
      getJson('/api/residency/stats'),
      getJson('/api/residency/history' + (since >= 0 ? '?since=' + since : '')),
      getJson('/api/events' + (state.lastSeq ? '?since=' + state.lastSeq : '')),
    ]);
    state.needKey = false;
    document.getElementById('key-panel').hidden = true;
    document.getElementById('main').hidden = false;
    state.clockOffsetMs = stats.now * 1000 - Date.now();
    state.ps = ps;
    state.stats = stats;
    state.periodS = history.period_s || 2;
    addSamples(history.samples || [], history.span_s || HOUR_S);
    addEvents(events.events || []);
    state.lastOk = Date.now();
    render();
    setStatus('live · updated ' + fmtClock(serverNowS()), true);
    // The what-if runs a simulation: once when the page opens, then when asked ("simulate again"),
    // or, while it had no requests to simulate, once some have been served (every 5 s at most).
    const served = Object.values(stats.models || {}).some((m) => m.requests > 0);
    if ((!state.whatIf && !state.whatIfAt) ||
        (state.whatIf && state.whatIf.available !== false && !state.whatIf.requests && served && Date.now() - state.whatIfAt > 5000)) {
      loadWhatIf(false);
    }
  } catch (e) {
    if (e instanceof NeedKey) {
      showKeyPanel(Boolean(state.key));
      return;  // polling resumes once a key is given
    }
    setStatus('cannot reach the server: ' + e.message, false);
  }
  state.pollTimer = setTimeout(poll, POLL_MS);
}

function addSamples(samples, spanS) {
  for (const s of samples) {
    const last = state.samples[state.samples.length - 1];
    if (!last || s.t > last.t) state.samples.push(s);
  }
  const cutoff = serverNowS() - spanS;
  while (state.samples.length && state.samples[0].t < cutoff) state.samples.shift();
}

function addEvents(events) {
  for (const e of events) {
    if (e.seq > state.lastSeq) {
      state.events.push(e);
      state.lastSeq = e.seq;
    }
  }
  if (state.events.length > 2000) state.events.splice(0, state.events.length - 2000);
}

async function loadWhatIf(refresh) {
  state.whatIfAt = Date.now();
  const meta = document.getElementById('whatif-meta');
  if (refresh) meta.textContent = 'simulating…';
  try {
    state.whatIf = await getJson('/api/residency/what-if' + (refresh ? '?refresh=1' : ''));
  } catch (e) {
    if (e instanceof NeedKey) return;
    state.whatIf = { available: false, advice: 'The what-if could not run: ' + e.message, rows: [] };
  }
  renderWhatIf();
}

// --- rendering -------------------------------------------------------------------------------

// Parts whose data did not change since the last poll are left alone (the charts follow the
// clock, so they are drawn every time).
const drawn = {};
function changed(part, data) {
  const text = JSON.stringify(data);
  if (drawn[part] === text) return false;
  drawn[part] = text;
  return true;
}

function render() {
  const s = state.stats;
  if (changed('summary', [s.memory_in_use, s.memory_budget, s.loaded_models, s.queued_requests])) renderSummary();
  if (changed('loaded', [state.ps, Object.entries(s.models || {}).map(([n, m]) => [n, m.queued_requests])])) renderLoaded();
  renderMemory();
  renderTimeline();
  if (changed('models', s.models)) renderModels();
}

function renderSummary() {
  const s = state.stats;
  const parts = [];
  parts.push(`<span>in use <b>${fmtBytes(s.memory_in_use)}</b>${s.memory_budget ? ' of <b>' + fmtBytes(s.memory_budget) + '</b> budget' : ''}</span>`);
  parts.push(`<span>models <b>${s.loaded_models}</b> of ${s.max_loaded}</span>`);
  parts.push(`<span>queued <b>${s.queued_requests}</b></span>`);
  if (!s.request_log) parts.push('<span>request log off</span>');
  document.getElementById('summary').innerHTML = parts.join('');
}

function expiresIn(m) {
  if ((m.active_requests || 0) > 0) return { text: 'in use', cls: 'busy' };
  const t = Date.parse(m.expires_at);
  if (!isFinite(t)) return { text: '–' };
  const left = (t - (Date.now() + state.clockOffsetMs)) / 1000;
  if (left > 50 * 365 * 86400) return { text: 'never' };
  if (left <= 0) return { text: 'unloading…' };
  return { text: fmtDuration(left), seconds: left };
}

function renderLoaded() {
  const models = (state.ps && state.ps.models) || [];
  const statsModels = (state.stats && state.stats.models) || {};
  const body = document.querySelector('#loaded tbody');
  document.getElementById('loaded-count').textContent = models.length ? models.length + ' of ' + state.stats.max_loaded : '';
  document.getElementById('loaded-empty').hidden = models.length > 0;
  body.innerHTML = models.map((m) => {
    const st = m.state || 'loaded';  // "state" is newer: a server without it shows "loaded"
    const busy = (m.active_requests || 0) > 0;
    const pill = `<span class="pill ${esc(st)}${busy ? ' busy' : ''}">${esc(busy && st === 'loaded' ? 'serving' : st)}</span>` +
      (m.prewarmed ? ' <span class="pill prewarm">prewarmed</span>' : '') +
      (m.pinned ? ' <span class="pill">pinned</span>' : '');
    const exp = expiresIn(m);
    const queued = (statsModels[m.name] || {}).queued_requests || 0;
    const reason = m.keep_alive_reason ? `<span class="why">${esc(m.keep_alive_reason)}</span>` : '';
    return `<tr data-model="${esc(m.name)}">
      <td class="model"><span class="swatch" data-colour="${colourOf(m.name)}"></span>${esc(m.name)}</td>
      <td class="state">${pill}</td>
      <td class="num">${fmtBytes(m.size_measured || m.size)}</td>
      <td class="num">${fmtBytes(m.size_predicted)}</td>
      <td>${esc(m.keep_alive == null ? '' : m.keep_alive)}${reason}</td>
      <td class="countdown" data-expires="${esc(m.expires_at || '')}" data-active="${m.active_requests || 0}">${esc(exp.text)}</td>
      <td class="num">${m.active_requests || 0}</td>
      <td class="num">${queued}</td></tr>`;
  }).join('');
  paintSwatches(body);
  const pre = (state.ps && state.ps.prewarms) || [];
  const p = document.getElementById('prewarms');
  p.hidden = pre.length === 0;
  p.textContent = pre.length ? 'Prewarms: ' + pre.map((x) => `${x.model} loads at ${fmtClock(Date.parse(x.load_at) / 1000)} (${x.reason})`).join('; ') : '';
}

// Colours go through the DOM (the page's Content-Security-Policy allows no inline style).
function paintSwatches(root) {
  root.querySelectorAll('.swatch[data-colour]').forEach((el) => { el.style.background = el.dataset.colour; });
}

function tickCountdowns() {
  document.querySelectorAll('#loaded td.countdown').forEach((td) => {
    const exp = expiresIn({ expires_at: td.dataset.expires, active_requests: Number(td.dataset.active) });
    td.textContent = exp.text;
  });
}

function renderMemory() {
  const el = document.getElementById('memory-chart');
  const W = chartWidth(el), H = 240, L = 64, R = 16, T = 12, B = 26;
  const { now, x0, span } = timeWindow();
  const samples = state.samples.filter((s) => s.t >= x0);
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.models || {})))].sort();
  const budget = (state.stats && state.stats.memory_budget) || 0;
  let top = 0;
  for (const s of samples) top = Math.max(top, Object.values(s.models || {}).reduce((a, b) => a + b, 0));
  let ymax = Math.max(top, budget && budget < 4 * Math.max(top, 1) ? budget : 0) * 1.12;
  if (ymax <= 0) ymax = budget || 1e9;
  const step = niceStep(ymax, 4);
  ymax = Math.ceil(ymax / step) * step;
  const X = (t) => L + ((Math.min(Math.max(t, x0), now) - x0) / span) * (W - L - R);
  const Y = (v) => T + (1 - v / ymax) * (H - T - B);
  let body = '';
  for (let v = 0; v <= ymax + 1e-6; v += step) {
    body += `<line class="gridline" x1="${L}" x2="${W - R}" y1="${Y(v)}" y2="${Y(v)}"/>`;
    body += `<text x="${L - 8}" y="${Y(v) + 4}" text-anchor="end">${fmtBytes(v)}</text>`;
  }
  for (const ago of timeTicks(span)) {
    body += `<text x="${X(now - ago)}" y="${H - 6}" text-anchor="middle">${agoLabel(ago)}</text>`;
  }
  body += `<line class="axis" x1="${L}" x2="${W - R}" y1="${Y(0)}" y2="${Y(0)}"/>`;
  // Stacked areas, one per model, in name order, as steps: a sample holds until the next one (the
  // last until now); a sample without the model counts 0 for it.
  const ends = samples.map((s, i) => (i + 1 < samples.length ? samples[i + 1].t : Math.max(s.t + (state.periodS || 2), now)));
  const below = samples.map(() => 0);
  names.forEach((name) => {
    const upper = samples.map((s, i) => below[i] + ((s.models || {})[name] || 0));
    let d = '';
    samples.forEach((s, i) => {
      d += (i ? 'L' : 'M') + X(s.t).toFixed(1) + ',' + Y(upper[i]).toFixed(1) + 'L' + X(ends[i]).toFixed(1) + ',' + Y(upper[i]).toFixed(1);
    });
    for (let i = samples.length - 1; i >= 0; i--) {
      d += 'L' + X(ends[i]).toFixed(1) + ',' + Y(below[i]).toFixed(1) + 'L' + X(samples[i].t).toFixed(1) + ',' + Y(below[i]).toFixed(1);
    }
    body += `<path class="series" data-model="${esc(name)}" fill="${colourOf(name)}" fill-opacity="0.8" d="${d}Z"><title>${esc(name)}</title></path>`;
    upper.forEach((u, i) => { below[i] = u; });
  });
  if (budget > 0 && budget <= ymax) {
    body += `<line class="budget" x1="${L}" x2="${W - R}" y1="${Y(budget)}" y2="${Y(budget)}"/>`;
    body += `<text class="budget-label" x="${W - R - 4}" y="${Y(budget) - 5}" text-anchor="end">budget ${fmtBytes(budget)}</text>`;
  } else if (budget > 0) {
    body += `<text class="budget-label" x="${W - R - 4}" y="${T + 10}" text-anchor="end">budget ${fmtBytes(budget)} (above)</text>`;
  }
  if (samples.length === 0) body += `<text class="empty-label" x="${(L + W) / 2}" y="${H / 2}" text-anchor="middle">no samples yet</text>`;
  el.innerHTML = svg(W, H, body, 'memory by model over the last hour');
  const last = samples[samples.length - 1];
  document.getElementById('memory-legend').innerHTML = names.map((n) =>
    `<span class="item" data-model="${esc(n)}"><span class="swatch" data-colour="${colourOf(n)}"></span>${esc(n)}` +
    `<span class="bytes">${last && last.models[n] ? fmtBytes(last.models[n]) : 'not loaded'}</span></span>`).join('');
  paintSwatches(document.getElementById('memory-legend'));
}

// A row's keep_alive as the chart and table show it.
function settingLabel(r) { return r.setting === '-1' ? 'forever' : r.setting; }

function eventTime(e) { return Date.parse(e.time) / 1000; }

function describeEvent(e) {
  const reasonText = {
    expired: 'keep_alive ran out', memory: 'memory', count: 'model count', manual: 'stopped (keep_alive 0)',
    reload: 'reloaded with other options', exited: 'its runner exited',
  };
  switch (e.type) {
    case 'load': {
      const how = e.origin === 'prewarm' ? 'prewarm' : e.origin === 'preload' ? 'preload' : 'cold start';
      return { label: 'load', cls: e.origin === 'prewarm' ? 'prewarm' : 'load', why: how,
               detail: `${fmtNum(e.duration_s, 2)} s, ${fmtBytes(e.bytes)} measured, ${fmtBytes(e.predicted_bytes)} predicted` };
    }
    case 'load_failed':
      return { label: 'load failed', cls: 'failed', why: e.error || '', detail: fmtNum(e.duration_s, 2) + ' s' };
    case 'evict':
      return { label: 'evict', cls: 'evict',
               why: `${e.reason}: to make room for ${e.for_model || 'another model'}`,
               detail: `${fmtBytes(e.bytes)} freed, idle ${fmtDuration(e.idle_s || 0)}` };
    case 'unload':
      return { label: 'unload', cls: 'unload',
               why: (reasonText[e.reason] || e.reason || '') + (e.keep_alive ? ` (keep_alive ${e.keep_alive})` : '') +
                    (e.explanation ? ': ' + e.explanation : ''),
               detail: `${fmtBytes(e.bytes)} freed, idle ${fmtDuration(e.idle_s || 0)}` };
    case 'prewarm_hit':
      return { label: 'prewarm hit', cls: 'prewarm', why: e.explanation || '', detail: '' };
    case 'prewarm_miss':
      return { label: 'prewarm miss', cls: 'unload', why: e.explanation || '', detail: '' };
    default:
      return { label: e.type, cls: '', why: e.reason || '', detail: '' };
  }
}

function renderTimeline() {
  const el = document.getElementById('timeline-chart');
  const { now, x0, span } = timeWindow();
  const events = state.events.filter((e) => eventTime(e) >= x0);
  const loadedNow = new Set(((state.ps && state.ps.models) || []).map((m) => m.name));
  const names = [...new Set(events.map((e) => e.model).concat([...loadedNow]))].sort();
  const W = chartWidth(el), lane = 26, L = 150, R = 16, T = 6, B = 22;
  const H = T + B + Math.max(1, names.length) * lane;
  const X = (t) => L + ((Math.min(Math.max(t, x0), now) - x0) / span) * (W - L - R);
  let body = '';
  for (const ago of timeTicks(span)) {
    const x = X(now - ago);
    body += `<line class="gridline" x1="${x}" x2="${x}" y1="${T}" y2="${H - B}"/>`;
    body += `<text x="${x}" y="${H - 6}" text-anchor="middle">${agoLabel(ago)}</text>`;
  }
  names.forEach((name, i) => {
    const y = T + i * lane;
    const mine = events.filter((e) => e.model === name);
    body += `<text class="lane" x="${L - 10}" y="${y + lane / 2 + 4}" text-anchor="end">${esc(name)}</text>`;
    // Loaded intervals: from each load to the next unload or eviction (or now).
    let start = null;
    const bars = [];
    const first = mine.find((e) => e.type === 'load' || e.type === 'unload' || e.type === 'evict');
    if (first && first.type !== 'load') start = x0;  // loaded before the window
    for (const e of mine) {
      if (e.type === 'load') start = eventTime(e);
      else if ((e.type === 'unload' || e.type === 'evict') && start != null) { bars.push([start, eventTime(e)]); start = null; }
    }
    if (start != null) bars.push([start, now]);
    else if (!mine.length && loadedNow.has(name)) bars.push([x0, now]);
    for (const [a, b] of bars) {
      body += `<rect class="bar" data-model="${esc(name)}" x="${X(a)}" y="${y + 6}" width="${Math.max(2, X(b) - X(a))}" height="${lane - 12}" rx="3" fill="${colourOf(name)}"/>`;
    }
    for (const e of mine) {
      const x = X(eventTime(e)), d = describeEvent(e);
      const cy = y + lane / 2;
      if (e.type === 'load') body += `<path d="M${x - 5},${cy + 5}L${x + 5},${cy + 5}L${x},${cy - 5}Z" fill="#2b8a3e"><title>${esc(d.label + ': ' + d.why)}</title></path>`;
      else if (e.type === 'evict') body += `<g class="evict-mark" stroke="#c92a2a" stroke-width="2.2"><line x1="${x - 5}" y1="${cy - 5}" x2="${x + 5}" y2="${cy + 5}"/><line x1="${x - 5}" y1="${cy + 5}" x2="${x + 5}" y2="${cy - 5}"/><title>${esc(d.label + ': ' + d.why)}</title></g>`;
      else if (e.type === 'unload') body += `<path d="M${x - 5},${cy - 5}L${x + 5},${cy - 5}L${x},${cy + 5}Z" fill="#495057"><title>${esc(d.label + ': ' + d.why)}</title></path>`;
      else if (e.type === 'load_failed') body += `<circle cx="${x}" cy="${cy}" r="5" fill="#c92a2a"><title>${esc(d.label + ': ' + d.why)}</title></circle>`;
    }
  });
  if (!names.length) body += `<text class="empty-label" x="${(L + W) / 2}" y="${T + lane / 2 + 4}" text-anchor="middle">nothing loaded in this window</text>`;
  el.innerHTML = svg(W, H, body, 'loads, unloads and evictions over the last hour');

  // The newest events first, with their reasons.
  const rows = state.events.slice(-14).reverse();
  document.getElementById('events-empty').hidden = rows.length > 0;
  const tbody = document.querySelector('#events tbody');
  tbody.innerHTML = rows.map((e) => {
    const d = describeEvent(e);
    return `<tr class="event ${esc(e.type)}" data-seq="${e.seq}">
      <td class="num">${fmtClock(eventTime(e))}</td>
      <td><span class="pill ${d.cls}">${esc(d.label)}</span></td>
      <td class="model"><span class="swatch" data-colour="${colourOf(e.model)}"></span>${esc(e.model)}</td>
      <td class="reason">${esc(d.why)}</td>
      <td class="detail">${esc(d.detail)}</td></tr>`;
  }).join('');
  paintSwatches(tbody);
}

function renderModels() {
  const models = (state.stats && state.stats.models) || {};
  const names = Object.keys(models).sort();
  document.getElementById('models-empty').hidden = names.length > 0;
  const tbody = document.querySelector('#models tbody');
  tbody.innerHTML = names.map((n) => {
    const m = models[n];
    const evicted = (m.unloads.memory || 0) + (m.unloads.count || 0);
    const coldPct = m.requests ? ` <span class="hint">${Math.round((100 * m.cold_starts) / m.requests)}%</span>` : '';
    const idlePct = m.resident_gb_s > 0 ? ` <span class="hint">${Math.round((100 * m.idle_gb_s) / m.resident_gb_s)}%</span>` : '';
    return `<tr data-model="${esc(n)}">
      <td class="model"><span class="swatch" data-colour="${colourOf(n)}"></span>${esc(n)}</td>
      <td class="num">${m.requests}</td>
      <td class="num">${m.cold_starts}${coldPct}</td>
      <td class="num">${m.loads}</td>
      <td class="num">${fmtNum(m.resident_gb_s)}</td>
      <td class="num">${fmtNum(m.idle_gb_s)}${idlePct}</td>
      <td class="num">${evicted}</td>
      <td class="num">${m.unloads.expired || 0}</td></tr>`;
  }).join('');
  paintSwatches(tbody);
}

function renderWhatIf() {
  const w = state.whatIf;
  const advice = document.getElementById('advice');
  const meta = document.getElementById('whatif-meta');
  const chart = document.getElementById('whatif-chart');
  const table = document.getElementById('whatif-table');
  if (!w) return;
  advice.textContent = w.advice || '';
  advice.className = 'advice' + (w.available && w.rows && w.rows.length ? ' best' : '');
  if (!w.available || !w.rows || !w.rows.length || !w.requests) {
    chart.innerHTML = '';
    table.querySelector('thead').innerHTML = '';
    table.querySelector('tbody').innerHTML = '';
    meta.textContent = '';
    return;
  }
  const hours = Math.max(0, (w.to - w.from) / 3600);
  meta.textContent = `${w.requests.toLocaleString('en-US')} requests over ${hours >= 1 ? hours.toFixed(1) + ' h' : Math.round(hours * 60) + ' min'}` +
    ` from the request log, simulated in ${fmtNum(w.wall_s, 2)} s${w.cached ? ' (cached)' : ''}, ` +
    `sizes ${w.models.every((m) => m.measured) ? 'measured' : 'partly assumed'}; ` +
    `a cold start counted as cold_start_cost ${w.cold_start_cost}.`;

  // Chart: idle GB·s against cold starts, both on square-root scales (most settings sit near the
  // origin; keep_alive 0 and forever far out on one axis each). The fixed keep_alive values as a
  // curve, auto and the current setting as points, the offline bound dashed.
  const el = chart;
  const W = Math.max(420, Math.floor(el.clientWidth || 600)), H = 270, L = 58, R = 70, T = 14, B = 38;
  const fixed = w.rows.filter((r) => r.kind === 'fixed').sort((a, b) => a.cold - b.cold);
  const auto = w.rows.filter((r) => r.kind === 'auto');
  const cur = w.current;
  const pts = w.rows.concat([cur]);
  // The bound's first point (each model loaded once) stays in view even when every simulated row
  // has fewer cold starts (a model too big for the budget fails there instead of loading).
  const firstBound = (w.bound || []).length ? w.bound[0][0] : 0;
  const xmax = Math.max(1, firstBound, ...pts.map((r) => r.cold)) * 1.06;
  const ymax = Math.max(0.001, ...pts.map((r) => r.idle_gb_s)) * 1.1;
  const X = (c) => L + Math.sqrt(Math.max(0, c) / xmax) * (W - L - R);
  const Y = (v) => T + (1 - Math.sqrt(Math.max(0, Math.min(v, ymax)) / ymax)) * (H - T - B);
  const ticks = (max) => {
    const out = [0];
    for (const f of [0.01, 0.04, 0.16, 0.36, 0.64, 1]) {
      const step = niceStep(max * f, 1);
      const v = Math.round((max * f) / step) * step;
      if (v > out[out.length - 1] && v <= max) out.push(v);
    }
    return out;
  };
  const tickText = (v) => (v === 0 ? '0' : v >= 10 ? fmtNum(v, 0) : v >= 1 ? fmtNum(v, 1) : String(+v.toPrecision(2)));
  let body = '';
  for (const v of ticks(ymax)) {
    body += `<line class="gridline" x1="${L}" x2="${W - R}" y1="${Y(v)}" y2="${Y(v)}"/>`;
    body += `<text x="${L - 8}" y="${Y(v) + 4}" text-anchor="end">${tickText(v)}</text>`;
  }
  for (const c of [...new Set(ticks(xmax).map((v) => Math.round(v)))]) {  // whole cold starts
    body += `<line class="gridline" x1="${X(c)}" x2="${X(c)}" y1="${T}" y2="${H - B}"/>`;
    body += `<text x="${X(c)}" y="${H - B + 16}" text-anchor="middle">${fmtNum(c, 0)}</text>`;
  }
  body += `<text x="${(L + W - R) / 2}" y="${H - 4}" text-anchor="middle">cold starts (√ scale)</text>`;
  body += `<text x="12" y="${T + (H - T - B) / 2}" text-anchor="middle" transform="rotate(-90 12 ${T + (H - T - B) / 2})">idle GB·s (√ scale)</text>`;
  body += `<line class="axis" x1="${L}" x2="${W - R}" y1="${Y(0)}" y2="${Y(0)}"/>`;
  body += `<line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${Y(0)}"/>`;
  const bound = (w.bound || []).filter((p) => p[0] <= xmax);
  if (bound.length) {
    body += `<path class="bound" data-series="bound" d="${bound.map((p, i) => (i ? 'L' : 'M') + X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1)).join('')}"><title>offline bound: the least idle GB·s any policy reaches with that many loads</title></path>`;
  }
  const same = (a, b) => a.cold === b.cold && Math.abs(a.idle_gb_s - b.idle_gb_s) <= 1e-9 + 1e-6 * Math.abs(b.idle_gb_s);
  if (fixed.length) {
    body += `<path class="curve" data-series="fixed" d="${fixed.map((r, i) => (i ? 'L' : 'M') + X(r.cold).toFixed(1) + ',' + Y(r.idle_gb_s).toFixed(1)).join('')}"/>`;
    for (const r of fixed) {
      body += `<circle cx="${X(r.cold)}" cy="${Y(r.idle_gb_s)}" r="3.5" fill="#868e96"><title>keep_alive ${esc(settingLabel(r))}: ${r.cold} cold starts, ${fmtNum(r.idle_gb_s)} idle GB·s</title></circle>`;
      if (!same(r, cur)) body += `<text class="point-label" x="${X(r.cold) + 6}" y="${Y(r.idle_gb_s) - 6}">${esc(settingLabel(r))}</text>`;
    }
  }
  for (const r of auto) {
    const x = X(r.cold), y = Y(r.idle_gb_s);
    body += `<path d="M${x},${y - 6}L${x + 6},${y}L${x},${y + 6}L${x - 6},${y}Z" fill="#7048e8"><title>${esc(r.label)}: ${r.cold} cold starts, ${fmtNum(r.idle_gb_s)} idle GB·s</title></path>`;
    if (!same(r, cur)) body += `<text class="point-label auto-label" x="${x + 9}" y="${y + 4}">auto</text>`;
  }
  {
    const x = X(cur.cold), y = Y(cur.idle_gb_s);
    const twin = w.rows.find((r) => r.setting === cur.setting && same(r, cur)) || w.rows.find((r) => same(r, cur));
    body += `<circle class="current" cx="${x}" cy="${y}" r="8" fill="none" stroke="#e8590c" stroke-width="2.5"><title>${esc(cur.label)}</title></circle>`;
    body += `<text class="point-label current-label" x="${x + 11}" y="${y + 16}">yours${twin ? ' (' + esc(settingLabel(twin)) + ')' : ''}</text>`;
  }
  el.innerHTML = svg(W, H, body, 'idle memory against cold starts for each keep_alive');

  table.querySelector('thead').innerHTML = '<tr><th>keep_alive</th><th class="num">cold starts</th><th class="num">idle GB·s</th><th class="num">cost GB·s</th></tr>';
  const best = w.best;
  table.querySelector('tbody').innerHTML = w.rows.concat([cur]).map((r) =>
    `<tr class="${r.label === best ? 'best' : ''}${r.kind === 'current' ? ' current' : ''}">
      <td>${esc(r.kind === 'current' ? r.label : settingLabel(r))}</td>
      <td class="num">${r.cold}</td><td class="num">${fmtNum(r.idle_gb_s)}</td><td class="num">${fmtNum(r.cost_gb_s)}</td></tr>`).join('');
}

// --- start -----------------------------------------------------------------------------------

document.getElementById('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const key = document.getElementById('key-input').value.trim();
  if (!key) return;
  state.key = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  document.getElementById('key-input').value = '';
  poll();
});
document.getElementById('whatif-refresh').addEventListener('click', () => loadWhatIf(true));
window.addEventListener('resize', () => {
  if (!state.stats) return;
  for (const k of Object.keys(drawn)) delete drawn[k];
  render();
  renderWhatIf();
});
setInterval(() => { if (!state.needKey) tickCountdowns(); }, 1000);
poll();
