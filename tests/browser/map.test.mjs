// Browser test of the map page (`GET /`), run with `node --test tests/browser/` (see run.sh).
//
// Starts `cds-registry demo` on a free port with a fresh data directory, drives the system
// Chromium through playwright-core (no browser is ever downloaded), and checks the page
// against the demo's fixture utilities: drawing, map click, keyboard lookup, filters, the
// operator view and the server view. Screenshots go to target/browser/.
//
// Environment: CDS_REGISTRY_BIN (default target/debug/cds-registry), CHROMIUM_PATH
// (default /usr/bin/chromium).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.resolve(ROOT, process.env.CDS_REGISTRY_BIN || 'target/debug/cds-registry');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const OUT = path.join(ROOT, 'target', 'browser');

const MONTEREY = { lat: 36.35447, lon: -121.49053 }; // Monterey County, CA
const TRAVIS = { lat: 30.326447, lon: -97.777339 }; // Travis County, TX

const STEP_MS = 20_000; // one wait inside a step
const DEMO_START_MS = 120_000;

let demo = null; // { child, url, stderr() }
let tmp = null;
let context = null;
let page = null;
const pageErrors = [];
const externalRequests = [];

/** Start the demo and resolve with the page URL it prints. */
function startDemo(dataDir) {
  return new Promise((resolve, reject) => {
    // CDS_REGISTRY_BIN is ours, not a configuration key: the binary reads every
    // CDS_REGISTRY_* variable as configuration and refuses unknown ones.
    const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' };
    delete env.CDS_REGISTRY_BIN;
    const child = spawn(BIN, ['demo', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    let out = '';
    let err = '';
    const stderr = () => err.slice(-4000);
    const fail = (why) => {
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      reject(new Error(`${why}\n--- demo stdout ---\n${out}\n--- demo stderr (tail) ---\n${stderr()}`));
    };
    const timer = setTimeout(() => fail(`the demo printed no page URL within ${DEMO_START_MS / 1000} s`), DEMO_START_MS);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^\s*page:\s+(http:\/\/\S+)\s*$/m);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1], stdout: () => out, stderr });
      }
    });
    child.stderr.on('data', (d) => {
      err += d;
      if (err.length > 1_000_000) err = err.slice(-200_000);
    });
    child.on('error', (e) => fail(`could not start ${BIN}: ${e.message}`));
    child.on('exit', (code, signal) => fail(`the demo exited before it was up (${code ?? signal})`));
  });
}

async function stopDemo() {
  const child = demo?.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGINT'); // the demo shuts down on Ctrl-C
  const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await Promise.race([exited, new Promise((r) => setTimeout(r, 8_000))]);
  clearTimeout(force);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

// If the runner itself is stopped, never leave the demo behind.
process.on('exit', () => {
  const child = demo?.child;
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** RGBA of the basemap canvas at a geographic point in the current view. */
function basemapPixel([lat, lon]) {
  return page.evaluate(([y, x]) => {
    const map = window.cdsMap;
    const canvas = map.getPane('basemap').querySelector('canvas');
    const p = map.latLngToContainerPoint([y, x]);
    const c = map.getContainer().getBoundingClientRect();
    const r = canvas.getBoundingClientRect();
    const px = Math.round((c.left + p.x - r.left) * (canvas.width / r.width));
    const py = Math.round((c.top + p.y - r.top) * (canvas.height / r.height));
    return [...canvas.getContext('2d').getImageData(px, py, 1, 1).data];
  }, [lat, lon]);
}

const entryIds = (selector) => page.$$eval(`${selector} [data-entry-id]`, (els) => els.map((e) => e.dataset.entryId));

async function waitMapReady() {
  await page.waitForFunction(() => {
    const m = document.getElementById('map');
    return m && m.dataset.state === 'ready' && Number(m.dataset.territories) > 0;
  }, null, { timeout: STEP_MS });
}

async function waitResults(ids) {
  await page.waitForFunction((want) => {
    const r = document.getElementById('results');
    if (!r || r.dataset.state !== 'ready') return false;
    const have = [...r.querySelectorAll('[data-entry-id]')].map((e) => e.dataset.entryId);
    return want.every((id) => have.includes(id));
  }, ids, { timeout: STEP_MS });
}

/** Click the map at a geographic point (through Leaflet's own projection). */
async function clickMapAt({ lat, lon }, zoom) {
  await page.evaluate(([y, x, z]) => { window.cdsMap.setView([y, x], z, { animate: false }); }, [lat, lon, zoom]);
  const pt = await page.evaluate(([y, x]) => {
    const p = window.cdsMap.latLngToContainerPoint([y, x]);
    return { x: p.x, y: p.y };
  }, [lat, lon]);
  const box = await page.locator('#map').boundingBox();
  assert.ok(box, 'the map has a box');
  await page.mouse.click(box.x + pt.x, box.y + pt.y);
}

describe('the map page', { timeout: 300_000 }, () => {
  before(async () => {
    mkdirSync(OUT, { recursive: true });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'cds-browser-'));
    demo = await startDemo(path.join(tmp, 'data'));
    const port = new URL(demo.url).port;
    assert.ok(port && port !== '0', `the demo must print the real port, got ${demo.url}`);

    context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-quic',
        '--disable-sync',
      ],
      viewport: { width: 1360, height: 860 },
      timeout: 60_000,
    });
    context.setDefaultTimeout(STEP_MS);
    // The page must need nothing but the registry: anything else is recorded and refused.
    await context.route('**/*', (route) => {
      const u = new URL(route.request().url());
      if (u.protocol === 'data:' || (u.hostname === '127.0.0.1' && u.port === port)) return route.continue();
      externalRequests.push(u.href);
      return route.abort();
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
    });
  }, { timeout: DEMO_START_MS + 90_000 });

  after(async () => {
    try {
      if (context) await Promise.race([context.close(), new Promise((r) => setTimeout(r, 10_000))]);
    } finally {
      await stopDemo();
      if (tmp) rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
    }
  }, { timeout: 30_000 });

  it('serves the page and draws the territories coloured by commodity', { timeout: 60_000 }, async () => {
    const resp = await page.goto(demo.url, { waitUntil: 'domcontentloaded' });
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()['content-type'], /^text\/html/);
    assert.ok(resp.headers()['cache-control'], 'the page has a Cache-Control header');
    // Tab order: the skip link comes first and leads to the coordinate form.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.className), 'skip-link');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'lookup-lat');

    await waitMapReady();
    const n = Number(await page.getAttribute('#map', 'data-territories'));
    assert.ok(n >= 15, `expected the fixtures' territories on the map, got ${n}`);
    assert.ok(await page.evaluate(() => typeof window.cdsMap?.latLngToContainerPoint === 'function'));
    // One canvas draws every territory (preferCanvas).
    assert.ok((await page.locator('#map .leaflet-overlay-pane canvas').count()) >= 1, 'territories drawn on a canvas');
    const legend = await page.locator('#map .legend').innerText();
    for (const c of ['Electricity', 'Natural gas', 'Water']) assert.ok(legend.includes(c), `legend lists ${c}: ${legend}`);

    // Pixels: the canvas is painted (not transparent) over Monterey County.
    await page.evaluate(([y, x]) => { window.cdsMap.setView([y, x], 7, { animate: false }); }, [MONTEREY.lat, MONTEREY.lon]);
    const alpha = await page.evaluate(([y, x]) => {
      const map = window.cdsMap;
      const canvas = map.getContainer().querySelector('.leaflet-overlay-pane canvas');
      const p = map.latLngToContainerPoint([y, x]);
      const c = map.getContainer().getBoundingClientRect();
      const r = canvas.getBoundingClientRect();
      const px = Math.round((c.left + p.x - r.left) * (canvas.width / r.width));
      const py = Math.round((c.top + p.y - r.top) * (canvas.height / r.height));
      return canvas.getContext('2d').getImageData(px, py, 1, 1).data[3];
    }, [MONTEREY.lat, MONTEREY.lon]);
    assert.ok(alpha > 0, 'the territory over Monterey County is painted');

    await page.waitForFunction(() => document.getElementById('coverage-list')?.dataset.state === 'ready', null, { timeout: STEP_MS });
    const rows = await entryIds('#coverage-list');
    assert.ok(rows.length >= 15, `coverage list rows: ${rows.length}`);
  });

  it('draws the offline basemap: countries with names, US states, finer lines when zoomed in', { timeout: 60_000 }, async () => {
    await page.evaluate(() => { window.cdsMap.setView([45, -100], 3, { animate: false }); });
    await page.waitForFunction(() => {
      const m = document.getElementById('map').dataset;
      return m.basemap === 'ready' && m.basemapScale === '110m';
    }, null, { timeout: STEP_MS });
    const data = await page.evaluate(() => ({ ...document.getElementById('map').dataset }));
    assert.ok(Number(data.basemapCountries) >= 170, `countries: ${data.basemapCountries}`);
    assert.ok(Number(data.basemapStates) >= 50, `states: ${data.basemapStates}`);
    const labels = await page.$$eval('#map .country-label', (els) => els.map((e) => e.textContent));
    for (const name of ['Canada', 'Mexico', 'United States of America']) assert.ok(labels.includes(name), `${name} in ${labels}`);
    // Land is painted in the land colour; the sea is left to the container's background.
    const land = await basemapPixel([56, -106]); // Saskatchewan
    assert.equal(land[3], 255, `land pixel ${land}`);
    assert.ok(Math.abs(land[0] - 0xf1) <= 3 && Math.abs(land[1] - 0xef) <= 3 && Math.abs(land[2] - 0xe6) <= 3, `land colour ${land}`);
    const sea = await basemapPixel([35, -135]); // the Pacific
    assert.equal(sea[3], 0, `sea pixel ${sea}`);

    // Zoomed in: the 1:50m outlines replace the 1:110m ones, and the names give way.
    await page.evaluate(() => { window.cdsMap.setView([39.74, -104.99], 7, { animate: false }); });
    await page.waitForFunction(() => document.getElementById('map').dataset.basemapScale === '50m', null, { timeout: STEP_MS });
    assert.equal(await page.locator('#map .country-label').count(), 0, 'no country names at zoom 7');
    assert.equal((await basemapPixel([39.74, -104.99]))[3], 255, 'Denver is on land');
    await page.screenshot({ path: path.join(OUT, 'basemap.png') });
  });

  it('a click on the map looks up who serves the point (Monterey County)', { timeout: 60_000 }, async () => {
    await clickMapAt(MONTEREY, 8);
    await waitResults(['sge-electric', 'sge-gas']);
    const text = await page.locator('#results').innerText();
    assert.ok(text.includes('Sierra Gas & Electric'), text);
    assert.equal(await page.getAttribute('#results', 'aria-live'), 'polite');
    // The clicked point fills the keyboard form.
    const lat = Number(await page.inputValue('#lookup-lat'));
    const lon = Number(await page.inputValue('#lookup-lon'));
    assert.ok(Math.abs(lat - MONTEREY.lat) < 0.01 && Math.abs(lon - MONTEREY.lon) < 0.01, `${lat}, ${lon}`);
    // Links from the server's metadata (website, documentation).
    await page.locator('#results [data-entry-id="sge-electric"] a', { hasText: 'Website' }).waitFor({ timeout: STEP_MS });
    const href = await page.getAttribute('#results [data-entry-id="sge-electric"] a >> text=Documentation', 'href');
    assert.match(href, /^http:\/\/127\.0\.0\.2:\d+\//);
  });

  it('the keyboard lookup form finds Travis County', { timeout: 60_000 }, async () => {
    await page.focus('#lookup-lat');
    await page.keyboard.press('Control+A');
    await page.keyboard.type(String(TRAVIS.lat));
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'lookup-lon');
    await page.keyboard.press('Control+A');
    await page.keyboard.type(String(TRAVIS.lon));
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'lookup-go');
    await page.keyboard.press('Enter');
    await waitResults(['lspc-service-area']);
    const text = await page.locator('#results').innerText();
    assert.ok(text.includes('Lone Star Power Cooperative'), text);
    assert.ok(!text.includes('Sierra Gas & Electric'), 'the previous point is gone');

    // Bad input is refused with a message, not sent.
    await page.fill('#lookup-lat', '123');
    await page.click('#lookup-go');
    assert.equal(await page.getAttribute('#lookup-lat', 'aria-invalid'), 'true');
    assert.ok(await page.locator('#lookup-error').isVisible());
    assert.ok((await page.locator('#results').innerText()).includes('Lone Star Power Cooperative'));
  });

  it('keeps the last points and copies the lookup as a curl command that answers the same', { timeout: 60_000 }, async () => {
    const origin = new URL(demo.url).origin;
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
    // A lookup with a filter: the command must carry it too.
    await page.goto(`${demo.url}?commodity=natural_gas&lat=${MONTEREY.lat}&lon=${MONTEREY.lon}`, { waitUntil: 'domcontentloaded' });
    await waitResults(['sge-gas']);
    const shown = (await entryIds('#results')).sort();
    assert.ok(!shown.includes('sge-electric'), `filtered: ${shown}`);

    await page.click('#copy-curl');
    await page.waitForFunction(() => document.getElementById('curl-status').textContent.includes('Copied'), null, { timeout: STEP_MS });
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, await page.locator('#curl-command').textContent());
    assert.ok(copied.startsWith(`curl -s '${origin}/v1/lookup?`) && copied.includes('commodity=natural_gas'), copied);
    const answer = JSON.parse(execFileSync('/bin/sh', ['-c', copied], { timeout: 15_000, encoding: 'utf8' }));
    assert.deepEqual(answer.results.map((r) => r.entry_id).sort(), shown, 'curl answers what the page shows');

    // History: newest first, across page loads (Travis and Monterey were looked up before).
    const points = await page.$$eval('#lookup-history li button', (els) => els.map((e) => [Number(e.dataset.lat), Number(e.dataset.lon)]));
    assert.ok(points.length >= 2 && points.length <= 10, `history: ${JSON.stringify(points)}`);
    assert.deepEqual(points[0], [MONTEREY.lat, MONTEREY.lon].map((x) => Number(x.toFixed(5))));
    const travis = points.findIndex(([y, x]) => Math.abs(y - TRAVIS.lat) < 1e-4 && Math.abs(x - TRAVIS.lon) < 1e-4);
    assert.ok(travis > 0, `Travis County in the history: ${JSON.stringify(points)}`);
    await page.locator('#lookup-history li button').nth(travis).click();
    await page.waitForFunction(() => {
      const r = document.getElementById('results');
      return r.dataset.state === 'ready' && !r.querySelector('[data-entry-id="sge-gas"]');
    }, null, { timeout: STEP_MS });
    const lat = Number(await page.inputValue('#lookup-lat'));
    assert.ok(Math.abs(lat - TRAVIS.lat) < 1e-4, `the form shows the history's point: ${lat}`);
    // Back to no filter for the tests that follow.
    await page.goto(demo.url, { waitUntil: 'domcontentloaded' });
    await waitMapReady();
  });

  it('the commodity filter narrows the map and the coverage list', { timeout: 60_000 }, async () => {
    const before = (await entryIds('#coverage-list')).length;
    const territoriesBefore = Number(await page.getAttribute('#map', 'data-territories'));
    const options = await page.$$eval('#filter-commodity option', (os) => os.map((o) => o.value));
    assert.ok(options.includes('natural_gas'), `commodity options from /v1/facets: ${options}`);
    await page.selectOption('#filter-commodity', 'natural_gas');
    await page.waitForFunction((n) => {
      const l = document.getElementById('coverage-list');
      return l.dataset.state === 'ready' && l.querySelectorAll('[data-entry-id]').length < n;
    }, before, { timeout: STEP_MS });
    const commodities = await page.$$eval('#coverage-list [data-entry-id]', (els) => els.map((e) => e.dataset.commodities));
    assert.ok(commodities.length > 0 && commodities.length < before, `${commodities.length} of ${before}`);
    for (const c of commodities) assert.ok(c.split(' ').includes('natural_gas'), `row with ${c}`);
    await page.waitForFunction((n) => {
      const m = document.getElementById('map');
      return m.dataset.state === 'ready' && Number(m.dataset.territories) < n;
    }, territoriesBefore, { timeout: STEP_MS });
    assert.match(page.url(), /commodity=natural_gas/);

    // Clear: everything is back.
    await page.selectOption('#filter-commodity', '');
    await page.waitForFunction((n) => {
      const l = document.getElementById('coverage-list');
      return l.dataset.state === 'ready' && l.querySelectorAll('[data-entry-id]').length === n;
    }, before, { timeout: STEP_MS });
  });

  it('the operator view lists the hosts, failing ones included, and opens a server', { timeout: 60_000 }, async () => {
    // Keyboard: arrow keys move between the tabs.
    await page.focus('#tab-map');
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.getAttribute('#tab-operator', 'aria-selected'), 'true');
    await page.waitForFunction(() => document.getElementById('hosts-table')?.dataset.state === 'ready', null, { timeout: STEP_MS });
    const rows = page.locator('#hosts-table tbody tr');
    assert.ok((await rows.count()) >= 10, `hosts: ${await rows.count()}`);
    const failing = page.locator('#hosts-table tbody tr[data-outcome="http_status"]');
    assert.ok((await failing.count()) >= 1, 'a failing host is listed');
    assert.ok((await failing.first().innerText()).includes('http_status'));
    assert.ok(await page.locator('#hosts-table tbody tr.is-failing').first().isVisible());
    await page.screenshot({ path: path.join(OUT, 'operator.png') });

    // The server view: metadata, coverage, findings, crawl history.
    const button = page.locator('#servers-table button', { hasText: 'Sierra Gas & Electric' });
    await button.click();
    const dialog = page.locator('#server-dialog');
    await dialog.locator('[data-entry-id="sge-gas"]').waitFor({ timeout: STEP_MS });
    const text = await dialog.innerText();
    for (const s of ['Coverage entries', 'Findings', 'Crawl history', 'Website']) assert.ok(text.includes(s), `${s} in ${text}`);
    await page.screenshot({ path: path.join(OUT, 'server.png') });
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden', timeout: STEP_MS });
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Sierra Gas & Electric', 'focus returns to the opener');

    await page.click('#tab-map');
    assert.equal(await page.getAttribute('#tab-map', 'aria-selected'), 'true');
  });

  it('looks right on a desktop and on a phone (screenshots)', { timeout: 90_000 }, async () => {
    await page.goto(`${demo.url}?lat=${MONTEREY.lat}&lon=${MONTEREY.lon}`, { waitUntil: 'domcontentloaded' });
    await waitMapReady();
    await waitResults(['sge-electric', 'sge-gas']);
    await page.locator('#results a', { hasText: 'Website' }).first().waitFor({ timeout: STEP_MS });
    await page.waitForFunction(() => document.getElementById('coverage-list')?.dataset.state === 'ready', null, { timeout: STEP_MS });
    await page.screenshot({ path: path.join(OUT, 'map.png') });

    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload({ waitUntil: 'domcontentloaded' });
    await waitMapReady();
    await waitResults(['sge-electric', 'sge-gas']);
    await page.waitForFunction(() => document.getElementById('coverage-list')?.dataset.state === 'ready', null, { timeout: STEP_MS });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at 390px (overflow ${overflow}px)`);
    // Stacked: the side panel is below the map, not next to it.
    const mapBox = await page.locator('#map').boundingBox();
    const resultsBox = await page.locator('#results').boundingBox();
    assert.ok(resultsBox.y >= mapBox.y + mapBox.height, 'results below the map at phone width');
    await page.screenshot({ path: path.join(OUT, 'map-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1360, height: 860 });
  });

  it('needed nothing but the registry and logged no errors', () => {
    assert.deepEqual(externalRequests, [], 'requests outside the registry');
    assert.deepEqual(pageErrors, [], 'console errors or page errors');
  });
});
