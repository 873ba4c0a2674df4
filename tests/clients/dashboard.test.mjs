// The dashboard (GET /ui) in a real browser, as a person uses it: headless Chromium (Debian's
// `chromium`, installed by scripts/setup.sh; driven by puppeteer-core, which downloads no browser)
// opens the page of a server that has an API key, types the key, and watches two models load
// where the memory budget holds one: the second evicts the first. It checks what the page shows
// (model names, their state, one memory series per model, the eviction and its reason in the
// timeline, the what-if's advice) and saves a screenshot: $RESIDENT_UI_SCREENSHOT, by default
// build/ui-screenshot.png. Every wait is for something the page shows, never for a time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { startServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshot = process.env.RESIDENT_UI_SCREENSHOT || resolve(here, '../../build/ui-screenshot.png');
const KEY = 'ui-test-key';
const WAIT = { timeout: 120000, polling: 100 };

let server, browser, profile;
before(async () => {
  assert.ok(existsSync(chromium), `${chromium} is missing: scripts/setup.sh installs Debian's chromium`);
  // 120 MB holds one 20M model (about 70 MB measured, 80 predicted), not two.
  server = await startServer({ RESIDENT_API_KEY: KEY, RESIDENT_MEMORY_LIMIT: '120MB' }, { m1: 1, m2: 2 });
  profile = mkdtempSync(join(tmpdir(), 'resident-chromium-'));
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    userDataDir: profile,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-dev-shm-usage'],
  });
});
after(async () => {
  await browser?.close();
  await server?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function generate(model) {
  const r = await fetch(server.url + '/api/generate', {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, prompt: 'hi', stream: false, options: { num_predict: 3 } }),
  });
  assert.equal(r.status, 200, await r.text());
}

// The rows of a table as arrays of cell texts.
function rows(page, selector) {
  return page.$$eval(`${selector} tbody tr`, (trs) => trs.map((tr) => [...tr.cells].map((td) => td.innerText.trim())));
}

test('the dashboard shows two models, the eviction and why, memory per model and the what-if', async () => {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900, deviceScaleFactor: 1 });
  const failures = [];
  page.on('pageerror', (e) => failures.push('page error: ' + e.message));
  // The page's first calls are refused (401) until it has the key: the browser logs each; any
  // other error counts.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 401/.test(m.text())) failures.push('console: ' + m.text());
  });

  await page.goto(server.url + '/ui', { waitUntil: 'domcontentloaded' });
  // The server has a key: the page asks for it before it shows anything.
  await page.waitForSelector('#key-panel:not([hidden])', WAIT);
  assert.equal(await page.$eval('#main', (m) => m.hidden), true);
  await page.type('#key-input', KEY);
  await page.click('#key-form button[type=submit]');
  await page.waitForSelector('#main:not([hidden])', WAIT);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('resident.api_key')), KEY, 'kept for this tab only');
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing kept beyond the tab');

  await generate('m1');
  await page.waitForFunction(() => document.querySelector('#loaded tr[data-model="m1:latest"]'), WAIT);
  // The memory chart gets m1's series once the history has sampled it.
  await page.waitForFunction(() => document.querySelector('#memory-chart path.series[data-model="m1:latest"]'), WAIT);

  await generate('m2');  // evicts m1: the budget holds one
  await page.waitForFunction(() => document.querySelector('#loaded tr[data-model="m2:latest"]') &&
                                   !document.querySelector('#loaded tr[data-model="m1:latest"]'), WAIT);
  await page.waitForFunction(() => document.querySelectorAll('#memory-chart path.series').length === 2, WAIT);
  await page.waitForFunction(() => [...document.querySelectorAll('#events tr.event.evict')].length > 0, WAIT);
  await page.waitForFunction(() => document.querySelector('#models tr[data-model="m2:latest"]'), WAIT);
  // The what-if ran on the request log (two requests) and says what would have cost least.
  await page.waitForFunction(() => /would have cost least/.test(document.getElementById('advice').textContent), WAIT);
  await page.waitForFunction(() => document.querySelector('#whatif-chart circle.current'), WAIT);

  // Loaded now: m2, loaded, its sizes, keep_alive and a countdown. The poll that showed m2 may
  // have come while its request still ran ("serving"): wait for one after it ended.
  await page.waitForFunction(() => {
    const cells = document.querySelectorAll('#loaded tr[data-model="m2:latest"] td');
    return cells.length > 1 && cells[1].textContent.trim() === 'loaded';
  }, WAIT);
  const loaded = await rows(page, '#loaded');
  assert.equal(loaded.length, 1, JSON.stringify(loaded));
  const [name, st, measured, predicted, keepAlive, unloadsIn] = loaded[0];
  assert.equal(name, 'm2:latest');
  assert.equal(st, 'loaded');
  assert.match(measured, /\d+(\.\d+)? MB/);
  assert.match(predicted, /\d+(\.\d+)? MB/);
  assert.match(keepAlive, /^5m0s/);
  assert.match(unloadsIn, /^\d+m \d\ds$|^\d+s$/, 'a countdown to the unload');

  // Memory: one series per model, the budget line.
  const series = await page.$$eval('#memory-chart path.series', (ps) => ps.map((p) => p.dataset.model).sort());
  assert.deepEqual(series, ['m1:latest', 'm2:latest']);
  assert.ok(await page.$('#memory-chart line.budget'), 'the budget as a line');
  assert.match(await page.$eval('#memory-chart', (e) => e.textContent), /budget 120 MB/);

  // Timeline: the eviction, with its reason and the model it made room for.
  const evictions = await page.$$eval('#events tr.event.evict', (trs) => trs.map((tr) => tr.innerText));
  assert.equal(evictions.length, 1);
  assert.match(evictions[0], /m1:latest/);
  assert.match(evictions[0], /memory: to make room for m2:latest/);
  const loads = await page.$$eval('#events tr.event.load', (trs) => trs.map((tr) => tr.innerText));
  assert.equal(loads.length, 2);
  assert.match(loads.join('\n'), /cold start/);
  assert.equal(await page.$$eval('#timeline-chart rect.bar', (r) => r.length), 2, 'a loaded interval per model');

  // Per model: requests and cold starts.
  const perModel = Object.fromEntries((await rows(page, '#models')).map((r) => [r[0], r]));
  assert.equal(perModel['m1:latest'][1], '1');
  assert.match(perModel['m1:latest'][2], /^1\b/);
  assert.equal(perModel['m1:latest'][6], '1', 'evicted once');

  // What-if: the fixed curve, auto, yours and the bound, with the advice.
  assert.ok(await page.$('#whatif-chart path.curve[data-series=fixed]'));
  assert.ok(await page.$('#whatif-chart path.bound[data-series=bound]'));
  assert.equal((await rows(page, '#whatif-table')).length, 8);

  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  assert.deepEqual(failures, []);
  await page.close();
});
