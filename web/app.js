// CDS Registry map page. A plain ES module: no framework, no build step.
//
// Every string the API returns comes from a remote utility's server. It reaches the page
// only as text (text nodes, `textContent`, attribute values through `setAttribute`) and
// links only after `safeUrl` checked them; nothing from the API is ever parsed as markup.
// The page's Content-Security-Policy backs this up (scripts from this origin only).

'use strict';

// ---------------------------------------------------------------- small DOM helpers

import { drawBasemap } from './basemap.js';

const $ = (id) => document.getElementById(id);

/** Create an element. Children may be nodes, strings (become text nodes) or arrays. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) {
      if (typeof v !== 'function') throw new TypeError(`${k} must be a function`);
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  appendAll(el, children);
  return el;
}

function appendAll(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An http(s) URL from remote data, or null: never `javascript:` and friends. */
function safeUrl(u) {
  if (typeof u !== 'string' || u.length > 2048) return null;
  try {
    const x = new URL(u);
    return x.protocol === 'https:' || x.protocol === 'http:' ? x.href : null;
  } catch {
    return null;
  }
}

function link(url, text) {
  const href = safeUrl(url);
  return href ? h('a', { href, rel: 'noopener noreferrer nofollow' }, text ?? href) : h('span', null, text ?? String(url ?? ''));
}

// ---------------------------------------------------------------- labels and colours

const CAPABILITY_LABELS = {
  oauth: 'OAuth',
  ieee1547: 'IEEE 1547',
  green_button_connect: 'Green Button Connect',
  coverage: 'Coverage',
};

function humanize(v) {
  const s = String(v).replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

let regionNames = null;
try {
  regionNames = new Intl.DisplayNames(['en'], { type: 'region' });
} catch {
  regionNames = null;
}

function label(kind, value) {
  if (kind === 'capability') return CAPABILITY_LABELS[value] ?? humanize(value);
  if (kind === 'country') {
    let name = null;
    try {
      name = regionNames && /^[A-Za-z]{2}$/.test(value) ? regionNames.of(value.toUpperCase()) : null;
    } catch {
      name = null;
    }
    return name && name !== value ? `${value} · ${name}` : String(value);
  }
  if (kind === 'role') return humanize(value);
  return humanize(value);
}

// Okabe–Ito based: distinguishable with the common colour-vision deficiencies.
const COMMODITY_COLORS = new Map([
  ['electricity', '#E69F00'],
  ['natural_gas', '#0072B2'],
  ['water', '#56B4E9'],
  ['wastewater', '#009E73'],
  ['distributed_energy', '#CC79A7'],
  ['steam', '#D55E00'],
]);
const EXTRA_COLORS = ['#D55E00', '#7E57C2', '#8C6D31', '#5B8C2A', '#B0306A', '#3F6E8C'];
const NO_COMMODITY_COLOR = '#8A97A3';

function commodityColor(c) {
  if (!c) return NO_COMMODITY_COLOR;
  const known = COMMODITY_COLORS.get(c);
  if (known) return known;
  let hash = 0;
  for (const ch of c) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return EXTRA_COLORS[hash % EXTRA_COLORS.length];
}

/** The commodity a territory is coloured by: the first known one, else alphabetical. */
function primaryCommodity(list) {
  if (!Array.isArray(list) || list.length === 0) return null;
  for (const k of COMMODITY_COLORS.keys()) if (list.includes(k)) return k;
  return [...list].sort()[0];
}

function darken(hex, f = 0.62) {
  const n = parseInt(hex.slice(1), 16);
  const r = Math.round(((n >> 16) & 255) * f);
  const g = Math.round(((n >> 8) & 255) * f);
  const b = Math.round((n & 255) * f);
  return `rgb(${r}, ${g}, ${b})`;
}

function swatch(color) {
  const s = h('span', { class: 'swatch', 'aria-hidden': 'true' });
  s.style.setProperty('--c', color);
  return s;
}

function commodityChips(list) {
  if (!Array.isArray(list) || list.length === 0) return h('span', { class: 'none' }, 'none listed');
  return h('ul', { class: 'chips', 'aria-label': 'Commodities' },
    list.map((c) => h('li', { class: 'chip' }, swatch(commodityColor(c)), label('commodity', c))));
}

function plainChips(kind, list, ariaLabel) {
  if (!Array.isArray(list) || list.length === 0) return h('span', { class: 'none' }, 'none');
  return h('ul', { class: 'chips', 'aria-label': ariaLabel }, list.map((v) => h('li', { class: 'chip plain' }, label(kind, v))));
}

/**
 * The OAuth scopes offered at an entry (WG1-02 §3), each shown by its `type` next to its
 * id: clients match scopes by type (§3.3), the id is whatever the server chose.
 */
function scopeChips(oauth) {
  const scopes = oauth && Array.isArray(oauth.scopes) ? oauth.scopes : [];
  if (scopes.length === 0) return h('span', { class: 'none' }, 'none');
  return h('ul', { class: 'chips', 'aria-label': 'OAuth scopes' }, scopes.map((sc) => {
    const type = typeof sc.type === 'string' && sc.type ? sc.type : null;
    const id = String(sc.scope ?? '');
    return h('li', { class: 'chip plain scope-chip', title: sc.name ? String(sc.name) : null },
      type ?? h('span', { class: 'none' }, 'no type'),
      type !== id ? h('code', { class: 'scope-id' }, id) : null);
  }));
}

/** A badge whose class comes from a fixed list, never from remote text. */
function badge(text, kind) {
  const known = ['authoritative', 'official', 'aggregator', 'error', 'warning', 'info', 'ok', 'fail',
    'active', 'stale', 'gone', 'moved', 'pending'];
  return h('span', { class: known.includes(kind) ? `badge badge-${kind}` : 'badge' }, text);
}

// ---------------------------------------------------------------- times and numbers

const absFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const relFormat = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

function relative(ms) {
  const diff = (ms - Date.now()) / 1000;
  const a = Math.abs(diff);
  if (a < 45) return relFormat.format(Math.round(diff), 'second');
  if (a < 45 * 60) return relFormat.format(Math.round(diff / 60), 'minute');
  if (a < 36 * 3600) return relFormat.format(Math.round(diff / 3600), 'hour');
  return relFormat.format(Math.round(diff / 86400), 'day');
}

function timeEl(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms <= 0) return h('span', { class: 'none' }, '—');
  const d = new Date(ms);
  return h('time', { datetime: d.toISOString(), title: absFormat.format(d) }, relative(ms));
}

function dueEl(ms) {
  if (!Number.isFinite(ms) || ms <= Date.now()) {
    return ms > 0 ? h('time', { datetime: new Date(ms).toISOString(), title: absFormat.format(new Date(ms)) }, 'due now') : h('span', null, 'due now');
  }
  return timeEl(ms);
}

function bytes(n) {
  if (!Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const fmtCoord = (x) => (Math.round(x * 1e5) / 1e5).toFixed(5);

// ---------------------------------------------------------------- API access

class ApiFailure extends Error {}

async function getJSON(path, params, signal) {
  const q = params && String(params);
  let r;
  try {
    r = await fetch(q ? `${path}?${q}` : path, {
      signal,
      headers: { Accept: 'application/json, application/geo+json, application/problem+json' },
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiFailure('The registry did not answer (network error).');
  }
  if (!r.ok) {
    let detail = '';
    try {
      const p = await r.json();
      detail = typeof p.detail === 'string' ? p.detail : typeof p.title === 'string' ? p.title : '';
    } catch {
      detail = '';
    }
    throw new ApiFailure(`${path}: ${r.status} ${detail || r.statusText}`);
  }
  return r.json();
}

/** Every row of a paginated list (`key` of each page), following `next_cursor`. */
async function getAll(path, key, signal) {
  const rows = [];
  let cursor = null;
  do {
    const q = new URLSearchParams({ limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const page = await getJSON(path, q, signal);
    if (Array.isArray(page[key])) rows.push(...page[key]);
    cursor = typeof page.next_cursor === 'string' ? page.next_cursor : null;
  } while (cursor);
  return rows;
}

const controllers = new Map();
/** A fresh AbortSignal for one kind of request; aborts the previous one of that kind. */
function fresh(kind) {
  controllers.get(kind)?.abort();
  const c = new AbortController();
  controllers.set(kind, c);
  return c.signal;
}
const isAbort = (e) => e && e.name === 'AbortError';

function showError(e) {
  if (isAbort(e)) return;
  console.warn(e);
  $('alert-text').textContent = e instanceof ApiFailure ? e.message : `Something went wrong: ${e && e.message ? e.message : e}`;
  $('alert').hidden = false;
}

// Server details, shared by the lookup results (links) and the server view.
const serverCache = new Map();
function serverDetail(id) {
  if (!serverCache.has(id)) {
    const p = getJSON(`/v1/servers/${encodeURIComponent(id)}`);
    p.catch(() => serverCache.delete(id));
    serverCache.set(id, p);
  }
  return serverCache.get(id);
}

// ---------------------------------------------------------------- state

const FILTERS = ['country', 'commodity', 'capability', 'role', 'q'];
const SELECTS = ['country', 'commodity', 'capability', 'role'];
const ALL_LABEL = 'All';

const state = {
  filters: { country: '', commodity: '', capability: '', role: '', q: '' },
  point: null, // {lat, lon}
  hits: new Set(), // registry ids of the entries at the point
  focusId: null, // registry id shown with "Show on map"
  layerById: new Map(),
  needsFit: true,
  coverageCursor: null,
  operatorLoaded: false,
  dialogOpener: null,
};

let map = null;
let territories = null;
let dots = null; // markers for territories too small to see at the current zoom
let boxes = []; // [{feature, bounds}] of the drawn territories
let pointMarker = null;
let legendEl = null;

function filterParams(except) {
  const p = new URLSearchParams();
  for (const k of FILTERS) {
    if (k !== except && state.filters[k]) p.set(k, state.filters[k]);
  }
  return p;
}

const filtersActive = () => FILTERS.some((k) => state.filters[k]);

function readUrl() {
  const u = new URL(location.href);
  for (const k of FILTERS) state.filters[k] = (u.searchParams.get(k) || '').trim();
  $('q').value = state.filters.q;
  const lat = Number(u.searchParams.get('lat'));
  const lon = Number(u.searchParams.get('lon'));
  if (u.searchParams.has('lat') && u.searchParams.has('lon') && validPoint(lat, lon)) state.point = { lat, lon };
}

function syncUrl() {
  const u = new URL(location.href);
  for (const k of [...FILTERS, 'lat', 'lon']) u.searchParams.delete(k);
  for (const k of FILTERS) if (state.filters[k]) u.searchParams.set(k, state.filters[k]);
  if (state.point) {
    u.searchParams.set('lat', fmtCoord(state.point.lat));
    u.searchParams.set('lon', fmtCoord(state.point.lon));
  }
  history.replaceState(null, '', u);
}

const validPoint = (lat, lon) => Number.isFinite(lat) && Number.isFinite(lon) && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180;

// ---------------------------------------------------------------- the map

function tileTemplate() {
  const t = new URL(location.href).searchParams.get('tiles');
  if (!t) return null;
  // `{s}`, `{z}`, `{x}`, `{y}`, `{r}` placeholders; the rest must be an http(s) URL.
  return safeUrl(t.replace(/\{[a-z]+\}/g, '0')) ? t : null;
}

function initMap() {
  const tiles = tileTemplate();
  map = L.map('map', {
    preferCanvas: true,
    worldCopyJump: true,
    minZoom: 2,
    maxZoom: 14,
    zoomSnap: 0.25,
    attributionControl: false,
    keyboard: true,
  });
  map.setView([39.5, -98.35], 4);
  window.cdsMap = map;

  const container = map.getContainer();
  container.setAttribute('aria-roledescription', 'map');
  container.setAttribute('aria-label', 'Map of service territories');
  container.setAttribute('aria-describedby', 'map-help');

  if (tiles) {
    L.tileLayer(tiles, { maxZoom: 19 }).addTo(map);
    const credit = L.control({ position: 'bottomleft' });
    credit.onAdd = () => {
      const attribution = new URL(location.href).searchParams.get('attribution');
      let host = '';
      try {
        host = new URL(tiles.replace(/\{[a-z]+\}/g, '0')).host;
      } catch {
        host = '';
      }
      return h('div', { class: 'basemap-credit' }, attribution ? `Basemap: ${attribution}` : `Basemap: ${host}`);
    };
    credit.addTo(map);
  } else {
    // No tiles: the vendored country and state outlines, with the graticule over them.
    drawBasemap(map);
    drawGraticule();
  }

  L.control.scale({ position: 'bottomleft', maxWidth: 140 }).addTo(map);

  map.createPane('lookupPoint');
  map.getPane('lookupPoint').style.zIndex = '640';
  map.getPane('lookupPoint').style.pointerEvents = 'none';

  territories = L.geoJSON(null, {
    style: featureStyle,
    onEachFeature: (feature, layer) => {
      state.layerById.set(feature.id, layer);
      layer.bindTooltip(() => tooltipFor(feature.properties || {}), {
        sticky: true,
        direction: 'top',
        offset: [0, -8],
        className: 'territory-tip',
      });
    },
  }).addTo(map);
  dots = L.layerGroup().addTo(map);
  map.on('zoomend', updateDots);

  const legend = L.control({ position: 'bottomright' });
  legend.onAdd = () => {
    // A disclosure, open on wide screens and closed on phones, where the map is small.
    legendEl = h('details', { class: 'legend', open: window.matchMedia('(min-width: 701px)').matches });
    L.DomEvent.disableClickPropagation(legendEl);
    L.DomEvent.disableScrollPropagation(legendEl);
    return legendEl;
  };
  legend.addTo(map);

  map.on('click', (e) => {
    const ll = e.latlng.wrap();
    lookup(Math.max(-90, Math.min(90, ll.lat)), ll.lng, { move: false });
  });
  // Keyboard: Enter on the focused map looks up its centre (marked by a crosshair).
  container.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && e.target === container) {
      e.preventDefault();
      const c = map.getCenter().wrap();
      lookup(c.lat, c.lng, { move: false });
    }
  });
}

/** Lines of latitude and longitude, spaced for the zoom, with labels on the edges: the
 * only geography drawn when there is no basemap. */
function drawGraticule() {
  map.createPane('graticule');
  map.getPane('graticule').style.zIndex = '300';
  const renderer = L.canvas({ pane: 'graticule', padding: 1 });
  const lines = L.layerGroup().addTo(map);
  const labels = h('div', { class: 'graticule-labels', 'aria-hidden': 'true' });
  map.getContainer().append(labels);
  const STEPS = [30, 20, 10, 5, 2, 1, 0.5, 0.25, 0.1, 0.05];
  const style = { renderer, interactive: false, color: '#cdd7e0', weight: 1, opacity: 1 };
  const equator = { ...style, color: '#b3c2cf' };
  let step = 10;

  const name = (v, pos, neg) => {
    const digits = step >= 1 ? 0 : step >= 0.1 ? 1 : 2;
    const a = Math.abs(v).toFixed(digits);
    return Number(a) === 0 ? `0°` : `${a}°${v > 0 ? pos : neg}`;
  };
  const wrapLon = (x) => ((((x + 180) % 360) + 360) % 360) - 180;

  function placeLabels() {
    const size = map.getSize();
    const b = map.getBounds();
    const out = [];
    for (let i = Math.ceil(b.getWest() / step); i * step <= b.getEast(); i++) {
      const lon = i * step;
      const x = map.latLngToContainerPoint([b.getCenter().lat, lon]).x;
      if (x < 56 || x > size.x - 30) continue;
      const el = h('span', { class: 'gl gl-lon' }, name(wrapLon(lon), 'E', 'W'));
      el.style.left = `${Math.round(x)}px`;
      out.push(el);
    }
    for (let i = Math.ceil(Math.max(-85, b.getSouth()) / step); i * step <= Math.min(85, b.getNorth()); i++) {
      const lat = i * step;
      const y = map.latLngToContainerPoint([lat, b.getCenter().lng]).y;
      if (y < 90 || y > size.y - 64) continue;
      const el = h('span', { class: 'gl gl-lat' }, name(lat, 'N', 'S'));
      el.style.top = `${Math.round(y)}px`;
      out.push(el);
    }
    labels.replaceChildren(...out);
  }

  function redraw() {
    const size = map.getSize();
    if (!size.x || !size.y) return;
    const b = map.getBounds();
    const degPerPx = (b.getEast() - b.getWest()) / size.x;
    step = STEPS.find((s) => s / degPerPx <= 190) ?? STEPS[STEPS.length - 1];
    // Cover a view's width on each side, so that a drag shows lines before it ends.
    const span = b.getEast() - b.getWest();
    const west = b.getWest() - span;
    const east = b.getEast() + span;
    const south = Math.max(-85, b.getSouth() - (b.getNorth() - b.getSouth()));
    const north = Math.min(85, b.getNorth() + (b.getNorth() - b.getSouth()));
    lines.clearLayers();
    for (let i = Math.ceil(west / step); i * step <= east; i++) {
      const lon = i * step;
      lines.addLayer(L.polyline([[south, lon], [north, lon]], style));
    }
    for (let i = Math.ceil(south / step); i * step <= north; i++) {
      const lat = i * step;
      lines.addLayer(L.polyline([[lat, west], [lat, east]], lat === 0 ? equator : style));
    }
    placeLabels();
  }

  map.on('zoomend moveend resize', redraw);
  map.on('move', placeLabels);
  redraw();
}

function tooltipFor(p) {
  return h('div', null,
    h('strong', null, p.entity_name || 'Unnamed entity'),
    h('span', null, [p.name, (p.commodity_types || []).map((c) => label('commodity', c)).join(', ')].filter(Boolean).join(' · ')));
}

function featureStyle(feature) {
  const p = feature.properties || {};
  const commodities = p.commodity_types || [];
  const color = commodityColor(primaryCommodity(commodities));
  const hit = state.hits.has(feature.id);
  const focused = state.focusId === feature.id;
  const dim = (state.hits.size > 0 || state.focusId !== null) && !hit && !focused;
  return {
    color: focused ? '#0b0f14' : hit ? '#11181f' : darken(color),
    weight: focused ? 3.5 : hit ? 2.75 : 1.2,
    opacity: dim ? 0.6 : 0.95,
    fillColor: color,
    fillOpacity: hit || focused ? 0.62 : dim ? 0.26 : 0.45,
    dashArray: commodities.length > 1 && !hit && !focused ? '5 4' : null,
  };
}

/** A dot stands for a territory smaller than a few pixels, so none disappears when zoomed out. */
function dotStyle(feature) {
  const s = featureStyle(feature);
  const marked = state.hits.has(feature.id) || state.focusId === feature.id;
  return {
    radius: marked ? 5 : 3.5,
    color: s.color,
    weight: marked ? 2 : 1,
    opacity: s.opacity,
    fillColor: s.fillColor,
    fillOpacity: Math.min(1, s.fillOpacity + 0.35),
    interactive: false,
  };
}

const MIN_VISIBLE_PX = 7;

function updateDots() {
  if (!dots) return;
  dots.clearLayers();
  const z = map.getZoom();
  for (const { feature, bounds } of boxes) {
    const a = map.project(bounds.getSouthWest(), z);
    const b = map.project(bounds.getNorthEast(), z);
    if (Math.max(Math.abs(b.x - a.x), Math.abs(b.y - a.y)) >= MIN_VISIBLE_PX) continue;
    const dot = L.circleMarker(bounds.getCenter(), dotStyle(feature));
    dot.feature = feature;
    dots.addLayer(dot);
  }
}

function restyle() {
  if (!territories) return;
  territories.setStyle(featureStyle);
  dots?.eachLayer((d) => d.setStyle(dotStyle(d.feature)));
  for (const id of state.hits) state.layerById.get(id)?.bringToFront();
  if (state.focusId !== null) state.layerById.get(state.focusId)?.bringToFront();
}

function bboxArea(geometry) {
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  const walk = (c) => {
    if (typeof c[0] === 'number') {
      if (c[0] < minX) minX = c[0];
      if (c[0] > maxX) maxX = c[0];
      if (c[1] < minY) minY = c[1];
      if (c[1] > maxY) maxY = c[1];
    } else {
      for (const x of c) walk(x);
    }
  };
  if (geometry && Array.isArray(geometry.coordinates)) walk(geometry.coordinates);
  return minX === Infinity ? 0 : (maxX - minX) * (maxY - minY);
}

function updateLegend(features) {
  if (!legendEl) return;
  const present = new Map();
  let multi = false;
  for (const f of features) {
    const list = f.properties?.commodity_types || [];
    const c = primaryCommodity(list);
    present.set(c, (present.get(c) || 0) + 1);
    if (list.length > 1) multi = true;
  }
  const order = [...present.keys()].sort((a, b) => {
    const ka = [...COMMODITY_COLORS.keys()].indexOf(a);
    const kb = [...COMMODITY_COLORS.keys()].indexOf(b);
    return (ka < 0 ? 99 : ka) - (kb < 0 ? 99 : kb) || String(a).localeCompare(String(b));
  });
  const items = order.map((c) => h('li', null, swatch(commodityColor(c)), c ? label('commodity', c) : 'No commodity listed'));
  if (multi) {
    const s = h('span', { class: 'swatch swatch-multi', 'aria-hidden': 'true' });
    items.push(h('li', null, s, 'Several commodities'));
  }
  const hit = h('span', { class: 'swatch swatch-hit', 'aria-hidden': 'true' });
  items.push(h('li', null, hit, 'At the chosen point'));
  legendEl.replaceChildren(h('summary', null, 'Legend'), h('ul', null, items));
}

async function loadMap() {
  const signal = fresh('map');
  const el = $('map');
  el.dataset.state = 'loading';
  $('map-status').textContent = 'Loading territories…';
  const params = filterParams();
  params.set('format', 'geojson');
  params.set('simplify', '0.01');
  try {
    const fc = await getJSON('/v1/export', params, signal);
    const features = (fc.features || []).filter((f) => f && f.geometry);
    // Largest first, so small territories stay on top and can be hovered.
    const area = new Map(features.map((f) => [f, bboxArea(f.geometry)]));
    features.sort((a, b) => area.get(b) - area.get(a));
    territories.clearLayers();
    state.layerById.clear();
    territories.addData(features);
    boxes = features
      .filter((f) => state.layerById.has(f.id))
      .map((f) => ({ feature: f, bounds: state.layerById.get(f.id).getBounds() }));
    updateDots();
    restyle();
    updateLegend(features);
    el.dataset.territories = String(features.length);
    el.dataset.state = 'ready';
    $('map-status').textContent = features.length ? '' : 'No territory matches these filters';
    fitToData();
  } catch (e) {
    if (isAbort(e)) return;
    el.dataset.state = 'error';
    $('map-status').textContent = 'Territories could not be loaded';
    showError(e);
  }
}

function fitToData() {
  if (!state.needsFit) return;
  const size = map.getSize();
  if (size.x === 0 || size.y === 0) return; // hidden tab: fit when it is shown
  if ($('map').dataset.state !== 'ready') return; // fit once the data is there
  const b = territories.getBounds();
  if (b.isValid()) map.fitBounds(b, { padding: [28, 28], maxZoom: 9, animate: false });
  state.needsFit = false;
}

function showPoint(lat, lon) {
  if (pointMarker) pointMarker.remove();
  pointMarker = L.circleMarker([lat, lon], {
    renderer: L.svg({ pane: 'lookupPoint' }),
    pane: 'lookupPoint',
    radius: 5,
    color: '#0b0f14',
    weight: 2.5,
    fillColor: '#ffffff',
    fillOpacity: 1,
    interactive: false,
  }).addTo(map);
}

// ---------------------------------------------------------------- filters

async function loadFacets() {
  const signal = fresh('facets');
  try {
    // Each select counts under every filter but its own, so its other values stay visible.
    const answers = await Promise.all(SELECTS.map((k) => getJSON('/v1/facets', filterParams(k), signal)));
    SELECTS.forEach((k, i) => fillSelect(k, answers[i]));
  } catch (e) {
    showError(e);
  }
}

function fillSelect(kind, facets) {
  const select = $(`filter-${kind}`);
  const current = state.filters[kind];
  const values = Array.isArray(facets[kind]) ? facets[kind] : [];
  const options = [new Option(`${ALL_LABEL} (${facets.total ?? 0})`, '')];
  let seen = false;
  for (const { value, count } of values) {
    if (value === current) seen = true;
    options.push(new Option(`${label(kind, value)} (${count})`, value));
  }
  if (current && !seen) options.push(new Option(`${label(kind, current)} (0)`, current));
  select.replaceChildren(...options);
  select.value = current;
}

function readFilters() {
  for (const k of SELECTS) state.filters[k] = $(`filter-${k}`).value;
  state.filters.q = $('q').value.trim();
}

let qTimer = null;
function applyFilters() {
  clearTimeout(qTimer);
  readFilters();
  syncUrl();
  state.needsFit = true;
  state.focusId = null;
  loadFacets();
  loadMap();
  loadCoverage(false);
  if (state.point) lookup(state.point.lat, state.point.lon, { move: false });
}

function bindFilters() {
  const form = $('filters');
  for (const k of SELECTS) $(`filter-${k}`).addEventListener('change', applyFilters);
  $('q').addEventListener('input', () => {
    clearTimeout(qTimer);
    qTimer = setTimeout(applyFilters, 350);
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    applyFilters();
  });
  form.addEventListener('reset', (e) => {
    e.preventDefault();
    for (const k of SELECTS) $(`filter-${k}`).value = '';
    $('q').value = '';
    applyFilters();
  });
}

// ---------------------------------------------------------------- lookup

function parseCoordinate(text) {
  const t = String(text).trim();
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(t)) return NaN;
  return Number(t);
}

function bindLookupForm() {
  const lat = $('lookup-lat');
  const lon = $('lookup-lon');
  $('lookup-form').addEventListener('submit', (e) => {
    e.preventDefault();
    // A pasted "lat, lon" pair in the first field fills both.
    const pair = lat.value.split(/[,\s]+/).filter(Boolean);
    if (pair.length === 2 && !lon.value.trim()) {
      lat.value = pair[0];
      lon.value = pair[1];
    }
    const y = parseCoordinate(lat.value);
    const x = parseCoordinate(lon.value);
    const problems = [];
    const badLat = !(Number.isFinite(y) && y >= -90 && y <= 90);
    const badLon = !(Number.isFinite(x) && x >= -180 && x <= 180);
    if (badLat) problems.push('Latitude must be a number from -90 to 90.');
    if (badLon) problems.push('Longitude must be a number from -180 to 180.');
    lat.setAttribute('aria-invalid', String(badLat));
    lon.setAttribute('aria-invalid', String(badLon));
    const err = $('lookup-error');
    err.textContent = problems.join(' ');
    err.hidden = problems.length === 0;
    if (problems.length) {
      (badLat ? lat : lon).focus();
      return;
    }
    lookup(y, x, { move: true });
  });
  $('address-form').addEventListener('submit', (e) => {
    e.preventDefault();
    findAddress($('lookup-address').value.trim());
  });
}

/** Geocode an address through the registry (`/v1/lookup?address=`, which needs a
 * geocoder configured by the operator), then look up the point it gave. */
async function findAddress(address) {
  const status = $('address-status');
  if (!address) {
    status.textContent = 'Enter an address.';
    return;
  }
  status.textContent = 'Looking up the address…';
  const signal = fresh('address');
  try {
    const answer = await getJSON('/v1/lookup', new URLSearchParams({ address }), signal);
    const g = answer.geocoded || {};
    const [lon, lat] = answer.point;
    const importance = Number.isFinite(g.importance) ? ` (importance ${g.importance.toFixed(2)})` : '';
    status.textContent = `${g.display_name || address}${importance}`;
    lookup(lat, lon, { move: true });
  } catch (err) {
    if (isAbort(err)) return;
    status.textContent = err instanceof ApiFailure ? err.message : 'The address lookup failed.';
  }
}

async function lookup(lat, lon, { move }) {
  state.point = { lat, lon };
  state.focusId = null;
  $('lookup-lat').value = fmtCoord(lat);
  $('lookup-lon').value = fmtCoord(lon);
  $('lookup-lat').setAttribute('aria-invalid', 'false');
  $('lookup-lon').setAttribute('aria-invalid', 'false');
  $('lookup-error').hidden = true;
  syncUrl();
  showPoint(lat, lon);
  const results = $('results');
  results.setAttribute('aria-busy', 'true');
  results.dataset.state = 'loading';
  const signal = fresh('lookup');
  const params = filterParams();
  params.set('lat', String(Math.round(lat * 1e6) / 1e6));
  params.set('lon', String(Math.round(lon * 1e6) / 1e6));
  try {
    const answer = await getJSON('/v1/lookup', params, signal);
    const rows = Array.isArray(answer.results) ? answer.results : [];
    renderResults(rows, lat, lon);
    offerCurl(params);
    rememberPoint(lat, lon);
    state.hits = new Set(rows.map((r) => r.id));
    restyle();
    if (move) moveToHits(lat, lon);
    results.dataset.state = 'ready';
  } catch (e) {
    if (isAbort(e)) return;
    results.dataset.state = 'error';
    results.replaceChildren(h('p', { class: 'field-error' }, 'The lookup failed. ', e instanceof ApiFailure ? e.message : ''));
    showError(e);
  } finally {
    if (!signal.aborted) results.setAttribute('aria-busy', 'false');
  }
}

/** After a lookup from the form: bring the point and its territories into view. */
function moveToHits(lat, lon) {
  let b = L.latLngBounds([[lat, lon], [lat, lon]]);
  for (const id of state.hits) {
    const layer = state.layerById.get(id);
    if (layer) b = b.extend(layer.getBounds());
  }
  map.fitBounds(b, { padding: [40, 40], maxZoom: 8, animate: false });
}

// ------------------------------------------------ lookup history and "copy as curl"

const HISTORY_KEY = 'cds-registry.lookups';
const HISTORY_MAX = 10;

function readHistory() {
  try {
    const v = JSON.parse(localStorage.getItem(HISTORY_KEY) || '[]');
    return Array.isArray(v) ? v.filter((p) => p && validPoint(p.lat, p.lon)).slice(0, HISTORY_MAX) : [];
  } catch {
    return []; // storage disabled or garbage: no history, not an error
  }
}

function writeHistory(points) {
  try {
    localStorage.setItem(HISTORY_KEY, JSON.stringify(points));
  } catch {
    // Private windows may refuse storage; the list still works for this page view.
  }
}

/** The last ten points looked up, newest first, one entry per point (5 decimals). */
function rememberPoint(lat, lon) {
  const p = { lat: Number(fmtCoord(lat)), lon: Number(fmtCoord(lon)) };
  const rest = readHistory().filter((q) => q.lat !== p.lat || q.lon !== p.lon);
  writeHistory([p, ...rest].slice(0, HISTORY_MAX));
  renderHistory();
}

function renderHistory() {
  const points = readHistory();
  const box = $('lookup-history');
  box.hidden = points.length === 0;
  box.querySelector('ol').replaceChildren(...points.map((p) => h('li', null,
    h('button', { type: 'button', class: 'btn btn-quiet', 'data-lat': p.lat, 'data-lon': p.lon,
      onclick: () => lookup(p.lat, p.lon, { move: true }) }, `${fmtCoord(p.lat)}, ${fmtCoord(p.lon)}`))));
}

/** The current lookup as a shell command: the same URL and parameters the page used. */
function offerCurl(params) {
  // URLSearchParams percent-encodes every quote, so single quotes cannot be broken out of.
  const cmd = `curl -s '${location.origin}/v1/lookup?${params.toString()}'`;
  $('curl-command').textContent = cmd;
  $('copy-curl').disabled = false;
}

async function copyCurl() {
  const cmd = $('curl-command').textContent;
  let copied = false;
  try {
    await navigator.clipboard.writeText(cmd);
    copied = true;
  } catch {
    // No clipboard permission (or an insecure origin): show the command to copy by hand.
  }
  $('curl-command').hidden = copied;
  $('curl-status').textContent = copied ? 'Copied to the clipboard.' : 'Copy the command below:';
}

function bindLookupTools() {
  $('copy-curl').addEventListener('click', copyCurl);
  $('history-clear').addEventListener('click', () => {
    writeHistory([]);
    renderHistory();
  });
  renderHistory();
}

function clearPoint() {
  controllers.get('lookup')?.abort();
  state.point = null;
  state.hits = new Set();
  if (pointMarker) pointMarker.remove();
  pointMarker = null;
  restyle();
  syncUrl();
  $('results').replaceChildren(h('p', { class: 'empty' }, 'No point chosen yet.'));
  $('results').setAttribute('aria-busy', 'false');
  $('copy-curl').disabled = true;
  $('curl-command').hidden = true;
  $('curl-status').textContent = '';
  $('lookup-lat').focus();
}

function renderResults(rows, lat, lon) {
  const n = rows.length;
  const summary = h('div', { class: 'result-summary' },
    h('p', null, n === 0
      ? `No published coverage at this point${filtersActive() ? ' with the current filters' : ''}.`
      : `${n} ${n === 1 ? 'entry serves' : 'entries serve'} this point`),
    h('p', { class: 'coords-line' },
      h('span', { class: 'coords' }, `${fmtCoord(lat)}, ${fmtCoord(lon)}`),
      h('button', { type: 'button', class: 'linkish', onclick: clearPoint }, 'Clear point')));
  const list = h('ol', { class: 'result-list', 'aria-label': 'Entries serving the point' }, rows.map(resultItem));
  $('results').replaceChildren(summary, n ? list : '');
}

function resultItem(r) {
  const color = commodityColor(primaryCommodity(r.commodity_types));
  const links = h('span', { class: 'server-links' });
  const li = h('li', { class: 'result', 'data-entry-id': r.entry_id, 'data-id': r.id },
    h('div', { class: 'result-head' },
      h('h3', null, r.entity_name, r.entity_abbreviation ? h('span', { class: 'abbr' }, ` (${r.entity_abbreviation})`) : null),
      badge(label('role', r.role), r.role)),
    h('p', { class: 'result-area' }, r.name, r.country ? ` · ${r.country}` : ''),
    h('dl', null,
      h('dt', null, 'Commodities'), h('dd', null, commodityChips(r.commodity_types)),
      h('dt', null, 'Capabilities'), h('dd', null, plainChips('capability', r.capabilities, 'Capabilities')),
      (r.infrastructure_types || []).length ? [h('dt', null, 'Infrastructure'), h('dd', null, r.infrastructure_types.map((v) => label('infrastructure', v)).join(', '))] : null,
      r.oauth ? [h('dt', null, 'OAuth scopes'), h('dd', null, scopeChips(r.oauth))] : null,
      h('dt', null, 'Server'), h('dd', { class: 'server-dd' }, serverButton(r.server), links)));
  li.style.setProperty('--c', color);
  if (r.server && Number.isFinite(r.server.id)) {
    serverDetail(r.server.id).then((d) => {
      const m = (d && d.metadata) || {};
      for (const [key, text] of [['website', 'Website'], ['documentation', 'Documentation']]) {
        const href = safeUrl(m[key]);
        if (href) links.append(h('a', { href, rel: 'noopener noreferrer nofollow' }, text));
      }
    }).catch(() => {});
  }
  return li;
}

function serverButton(server) {
  if (!server || !Number.isFinite(server.id)) return h('span', { class: 'none' }, 'unknown');
  return h('button', {
    type: 'button',
    class: 'linkish',
    'aria-haspopup': 'dialog',
    onclick: (e) => openServer(server.id, e.currentTarget),
  }, server.name || server.url || `server ${server.id}`);
}

// ---------------------------------------------------------------- coverage list

async function loadCoverage(more) {
  const signal = fresh('coverage');
  const list = $('coverage-list');
  list.dataset.state = 'loading';
  const params = filterParams();
  params.set('limit', '200');
  if (more && state.coverageCursor) params.set('cursor', state.coverageCursor);
  try {
    const page = await getJSON('/v1/coverage', params, signal);
    const rows = (page.coverage || []).map(coverageRow);
    if (more) list.append(...rows);
    else list.replaceChildren(...rows);
    if (!more && rows.length === 0) {
      list.replaceChildren(h('li', { class: 'coverage-empty' }, 'No coverage entry matches these filters.'));
    }
    state.coverageCursor = page.next_cursor || null;
    const shown = list.querySelectorAll('li[data-entry-id]').length;
    const total = page.total ?? shown;
    $('coverage-total').textContent = shown < total ? `${shown} of ${total} entries` : `${total} ${total === 1 ? 'entry' : 'entries'}`;
    $('coverage-more').hidden = !state.coverageCursor;
    list.dataset.total = String(total);
    list.dataset.state = 'ready';
  } catch (e) {
    if (isAbort(e)) return;
    list.dataset.state = 'error';
    showError(e);
  }
}

function coverageRow(r) {
  const commodities = r.commodity_types || [];
  const li = h('li', {
    class: 'cov-row',
    'data-entry-id': r.entry_id,
    'data-id': r.id,
    'data-commodities': commodities.join(' '),
  },
  swatch(commodityColor(primaryCommodity(commodities))),
  h('div', { class: 'cov-main' },
    h('div', { class: 'cov-title' }, r.entity_name, r.entity_abbreviation ? h('span', { class: 'abbr' }, ` (${r.entity_abbreviation})`) : null),
    h('div', { class: 'cov-area' }, r.name, r.country ? ` · ${r.country}` : ''),
    h('div', { class: 'cov-meta' }, commodityChips(commodities), badge(label('role', r.role), r.role)),
    h('div', { class: 'cov-actions' },
      r.geometry
        ? h('button', {
          type: 'button',
          class: 'linkish',
          'aria-label': `Show ${r.entity_name}, ${r.name}, on the map`,
          onclick: () => showOnMap(r.id, li),
        }, 'Show on map')
        : h('span', { class: 'cov-note' }, 'No territory (logical entry)'),
      h('span', null, 'Server: ', serverButton(r.server)))));
  return li;
}

function showOnMap(id, row) {
  const layer = state.layerById.get(id);
  if (!layer) return;
  for (const el of document.querySelectorAll('.cov-row.is-focused')) el.classList.remove('is-focused');
  row.classList.add('is-focused');
  state.focusId = id;
  restyle();
  map.fitBounds(layer.getBounds(), { padding: [40, 40], maxZoom: 9, animate: false });
  // Keyboard users land on the map, where Enter looks up the centre of the territory.
  map.getContainer().focus({ preventScroll: window.matchMedia('(min-width: 701px)').matches });
}

// ---------------------------------------------------------------- operator view

async function loadOperator() {
  const signal = fresh('operator');
  const table = $('hosts-table');
  table.dataset.state = 'loading';
  try {
    const [hosts, servers] = await Promise.all([getAll('/v1/hosts', 'hosts', signal), getAll('/v1/servers', 'servers', signal)]);
    renderHosts(hosts, servers);
    renderServers(servers);
    table.dataset.state = 'ready';
    state.operatorLoaded = true;
  } catch (e) {
    if (isAbort(e)) return;
    table.dataset.state = 'error';
    showError(e);
  }
}

function renderHosts(hosts, servers) {
  const byHost = new Map();
  for (const s of servers) {
    if (!byHost.has(s.host_id)) byHost.set(s.host_id, []);
    byHost.get(s.host_id).push(s);
  }
  const failing = hosts.filter((x) => x.last_outcome && x.last_outcome !== 'ok').length;
  const ok = hosts.filter((x) => x.last_outcome === 'ok').length;
  const never = hosts.filter((x) => !x.last_outcome).length;
  $('hosts-summary').textContent = `${hosts.length} hosts · ${ok} ok · ${failing} failing · ${never} not crawled yet (failing first)`;
  const rank = (x) => (x.last_outcome && x.last_outcome !== 'ok' ? 0 : x.last_outcome ? 2 : 1);
  const sorted = hosts.slice().sort((a, b) => rank(a) - rank(b) || a.id - b.id);
  const rows = sorted.map((x) => {
    const outcome = x.last_outcome;
    const isFailing = Boolean(outcome && outcome !== 'ok');
    const hostServers = byHost.get(x.id) || [];
    return h('tr', {
      class: isFailing ? 'is-failing' : null,
      'data-host-id': x.id,
      'data-outcome': outcome || 'none',
    },
    h('td', null,
      // IDNs are stored as punycode (`seed`) and shown as people write them (`display`).
      h('code', { title: x.display && x.display !== x.seed ? x.seed : null }, x.display || x.seed),
      x.moved_to ? h('span', { class: 'sub' }, 'moved to ', link(x.moved_to)) : null,
      x.metadata_url ? h('span', { class: 'sub' }, link(x.metadata_url)) : null),
    h('td', null, x.source),
    h('td', null, badge(x.status, x.status)),
    h('td', null, timeEl(x.last_crawl_ms)),
    h('td', null,
      outcome ? badge(outcome, isFailing ? 'fail' : 'ok') : badge('not crawled', 'pending'),
      x.last_detail ? h('span', { class: 'sub' }, x.last_detail) : null),
    h('td', { class: x.consecutive_failures > 0 ? 'num bad' : 'num' }, String(x.consecutive_failures ?? 0)),
    h('td', null, dueEl(x.next_due_ms)),
    h('td', null, hostServers.length
      ? hostServers.map((s, i) => [i ? h('br') : null, serverButton(s)])
      : h('span', { class: 'none' }, '—')));
  });
  const body = $('hosts-table').tBodies[0];
  body.replaceChildren(...(rows.length ? rows : [h('tr', { class: 'empty-row' }, h('td', { colspan: 8 }, 'No hosts yet. Seed some with `cds-registry seed FILE`.'))]));
}

function renderServers(servers) {
  $('servers-summary').textContent = `${servers.length} metadata documents`;
  const rows = servers.map((s) => h('tr', { 'data-server-id': s.id, class: s.status === 'active' ? null : 'is-failing' },
    h('td', null, serverButton(s), h('span', { class: 'sub' }, link(s.url))),
    h('td', null, badge(s.status, s.status)),
    h('td', { class: 'num' }, String(s.entries ?? 0)),
    h('td', null, plainChips('capability', s.capabilities, 'Capabilities')),
    h('td', null, timeEl(s.last_success_ms)),
    h('td', null, timeEl(s.last_failure_ms), s.last_failure ? h('span', { class: 'sub' }, s.last_failure) : null)));
  $('servers-table').tBodies[0].replaceChildren(...(rows.length ? rows : [h('tr', { class: 'empty-row' }, h('td', { colspan: 6 }, 'No server crawled yet.'))]));
}

// ---------------------------------------------------------------- server view

async function openServer(id, opener) {
  const dialog = $('server-dialog');
  if (!dialog.open) state.dialogOpener = opener || document.activeElement;
  $('server-title').textContent = 'Server';
  $('server-body').replaceChildren(h('p', { class: 'none' }, 'Loading…'));
  if (!dialog.open) dialog.showModal();
  const signal = fresh('server');
  try {
    const d = await getJSON(`/v1/servers/${encodeURIComponent(id)}`, null, signal);
    serverCache.set(id, Promise.resolve(d));
    renderServer(d);
  } catch (e) {
    if (isAbort(e)) return;
    $('server-body').replaceChildren(h('p', { class: 'field-error' }, e instanceof ApiFailure ? e.message : 'The server could not be loaded.'));
  }
}

const SEVERITY_ORDER = { error: 0, warning: 1, info: 2 };

function renderServer(d) {
  const m = d.metadata && typeof d.metadata === 'object' ? d.metadata : {};
  $('server-title').replaceChildren(d.name || 'Unnamed server', ' ', badge(d.status, d.status));

  const meta = [
    ['Metadata document', link(d.url)],
    m.website ? ['Website', link(m.website)] : null,
    m.documentation ? ['Documentation', link(m.documentation)] : null,
    m.support ? ['Support', link(m.support)] : null,
    ['Capabilities', plainChips('capability', d.capabilities, 'Capabilities')],
    m.cds_metadata_version ? ['Spec version', String(m.cds_metadata_version)] : null,
    m.updated ? ['Published update', String(m.updated)] : null,
    d.parent_url ? ['Parent', link(d.parent_url)] : null,
    (d.related || []).length ? ['Related', h('span', null, d.related.map((r, i) => [i ? ', ' : '', serverButton(r)]))] : null,
    ['First seen', timeEl(d.first_seen_ms)],
    ['Last success', timeEl(d.last_success_ms)],
    ['Last change', timeEl(d.last_changed_ms)],
    d.last_failure_ms ? ['Last failure', h('span', null, timeEl(d.last_failure_ms), d.last_failure ? ` (${d.last_failure})` : '')] : null,
  ].filter(Boolean);

  const entries = Array.isArray(d.coverage) ? d.coverage : [];
  const shownEntries = entries.slice(0, 500);
  const entryTable = entries.length
    ? h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': 'Coverage entries' },
      h('table', { class: 'data-table' },
        h('thead', null, h('tr', null, ['Entry', 'Area', 'Entity', 'Commodities', 'Role', 'Capabilities'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, shownEntries.map((e) => h('tr', { 'data-entry-id': e.entry_id },
          h('td', null, h('code', null, e.entry_id)),
          h('td', null, e.name, h('span', { class: 'sub' }, [e.type, e.country].filter(Boolean).join(' · '))),
          h('td', null, e.entity_name),
          h('td', null, commodityChips(e.commodity_types)),
          h('td', null, badge(label('role', e.role), e.role)),
          h('td', null, plainChips('capability', e.capabilities, 'Capabilities')))))))
    : h('p', { class: 'none' }, 'No coverage entries.');

  // WG1-02 §3.3: clients match scopes by type, so the type leads and the id follows.
  const oauthScopes = d.oauth && Array.isArray(d.oauth.scopes) ? d.oauth.scopes.slice(0, 500) : [];
  const scopeTable = oauthScopes.length
    ? h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': 'OAuth scopes' },
      h('table', { class: 'data-table' },
        h('thead', null, h('tr', null, ['Type', 'Scope id', 'Name', 'Coverage entries'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, oauthScopes.map((sc) => h('tr', null,
          h('td', null, sc.scope_type ? h('code', null, String(sc.scope_type)) : h('span', { class: 'none' }, 'no type')),
          h('td', null, h('code', null, String(sc.id ?? ''))),
          h('td', null, sc.name ? String(sc.name) : ''),
          h('td', null, Array.isArray(sc.coverages) ? sc.coverages.map(String).join(', ') : ''))))))
    : null;

  const findings = (Array.isArray(d.findings) ? d.findings : []).slice()
    .sort((a, b) => (SEVERITY_ORDER[a.severity] ?? 3) - (SEVERITY_ORDER[b.severity] ?? 3));
  const counts = ['error', 'warning', 'info']
    .map((s) => [s, findings.filter((f) => f.severity === s).length])
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}${n === 1 ? '' : s === 'info' ? '' : 's'}`)
    .join(', ');
  const findingList = findings.length
    ? h('ul', { class: 'finding-list' }, findings.map((f) => h('li', { class: 'finding', 'data-severity': f.severity },
      badge(f.severity, f.severity),
      h('div', null,
        h('div', null, h('code', null, f.rule), ' ', f.message),
        (f.expected || f.actual) ? h('div', { class: 'where' }, f.expected ? `expected ${f.expected}` : '', f.expected && f.actual ? '; ' : '', f.actual ? `got ${f.actual}` : '') : null,
        h('div', { class: 'where' }, f.pointer ? `${f.pointer} in ` : '', link(f.url))))))
    : h('p', { class: 'none' }, 'No findings: the documents conform.');

  const history = Array.isArray(d.crawl_history) ? d.crawl_history : [];
  const historyTable = history.length
    ? h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': 'Crawl history' },
      h('table', { class: 'data-table' },
        h('thead', null, h('tr', null, ['Run', 'Started', 'Outcome', 'HTTP', 'Documents', 'Bytes', 'Took'].map((t, i) => h('th', { scope: 'col', class: i === 0 || i >= 4 ? 'num' : null }, t)))),
        h('tbody', null, history.map((o) => h('tr', { class: o.outcome === 'ok' ? null : 'is-failing' },
          h('td', { class: 'num' }, String(o.run_id)),
          h('td', null, timeEl(o.started_ms)),
          h('td', null, badge(o.outcome, o.outcome === 'ok' ? 'ok' : 'fail'), o.detail ? h('span', { class: 'sub' }, o.detail) : null),
          h('td', null, o.http_status ? String(o.http_status) : '—'),
          h('td', { class: 'num' }, `${o.docs_fetched} fetched, ${o.docs_unchanged} unchanged`),
          h('td', { class: 'num' }, bytes(o.bytes)),
          h('td', { class: 'num' }, Number.isFinite(o.finished_ms - o.started_ms) ? `${o.finished_ms - o.started_ms} ms` : '—'))))))
    : h('p', { class: 'none' }, 'No crawl recorded.');

  $('server-body').replaceChildren(
    h('section', null,
      m.description ? h('p', { class: 'server-desc' }, String(m.description)) : null,
      h('dl', { class: 'meta-grid' }, meta.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]))),
    h('section', { 'aria-labelledby': 'server-cov-h' },
      h('h3', { id: 'server-cov-h' }, 'Coverage entries', h('span', { class: 'count' }, entries.length > shownEntries.length ? `${shownEntries.length} of ${entries.length}` : String(entries.length))),
      entryTable),
    oauthScopes.length ? h('section', { 'aria-labelledby': 'server-scopes-h' },
      h('h3', { id: 'server-scopes-h' }, 'OAuth scopes', h('span', { class: 'count' }, String(oauthScopes.length))),
      scopeTable) : null,
    h('section', { 'aria-labelledby': 'server-find-h' },
      h('h3', { id: 'server-find-h' }, 'Findings', h('span', { class: 'count' }, counts || 'none')),
      findingList),
    h('section', { 'aria-labelledby': 'server-hist-h' },
      h('h3', { id: 'server-hist-h' }, 'Crawl history', h('span', { class: 'count' }, String(history.length))),
      historyTable));
}

function bindDialog() {
  const dialog = $('server-dialog');
  $('server-close').addEventListener('click', () => dialog.close());
  // A click on the backdrop (outside the dialog's box) closes it too.
  dialog.addEventListener('click', (e) => {
    if (e.target !== dialog) return;
    const r = dialog.getBoundingClientRect();
    const inside = e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
    if (!inside) dialog.close();
  });
  dialog.addEventListener('close', () => {
    controllers.get('server')?.abort();
    const opener = state.dialogOpener;
    state.dialogOpener = null;
    if (opener && opener.isConnected) opener.focus();
  });
}

// ---------------------------------------------------------------- tabs

const TABS = [
  { tab: 'tab-map', panel: 'panel-map', hash: '' },
  { tab: 'tab-operator', panel: 'panel-operator', hash: '#operator' },
];

function selectTab(id, { focus = false, push = true } = {}) {
  for (const t of TABS) {
    const on = t.tab === id;
    const tab = $(t.tab);
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $(t.panel).hidden = !on;
    if (on && focus) tab.focus();
    if (on && push) {
      const u = new URL(location.href);
      u.hash = t.hash;
      history.replaceState(null, '', u);
    }
  }
  if (id === 'tab-map' && map) {
    map.invalidateSize({ animate: false });
    fitToData();
  }
  if (id === 'tab-operator' && !state.operatorLoaded) loadOperator();
}

function bindTabs() {
  for (const t of TABS) {
    $(t.tab).addEventListener('click', () => selectTab(t.tab));
    $(t.tab).addEventListener('keydown', (e) => {
      const i = TABS.findIndex((x) => x.tab === t.tab);
      let j = null;
      if (e.key === 'ArrowRight') j = (i + 1) % TABS.length;
      else if (e.key === 'ArrowLeft') j = (i - 1 + TABS.length) % TABS.length;
      else if (e.key === 'Home') j = 0;
      else if (e.key === 'End') j = TABS.length - 1;
      if (j !== null) {
        e.preventDefault();
        selectTab(TABS[j].tab, { focus: true });
      }
    });
  }
  window.addEventListener('hashchange', () => selectTab(location.hash === '#operator' ? 'tab-operator' : 'tab-map', { push: false }));
  $('operator-refresh').addEventListener('click', () => {
    serverCache.clear();
    loadOperator();
  });
}

// ---------------------------------------------------------------- start

function start() {
  if (!window.L) {
    showError(new Error('the map library did not load'));
    return;
  }
  document.querySelector('.skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    selectTab('tab-map');
    $('lookup-lat').focus();
  });
  $('alert-close').addEventListener('click', () => {
    $('alert').hidden = true;
  });
  readUrl();
  initMap();
  bindFilters();
  bindLookupForm();
  bindLookupTools();
  bindDialog();
  bindTabs();
  selectTab(location.hash === '#operator' ? 'tab-operator' : 'tab-map', { push: false });
  $('coverage-more').addEventListener('click', () => loadCoverage(true));
  loadFacets();
  loadMap();
  loadCoverage(false);
  if (state.point) lookup(state.point.lat, state.point.lon, { move: false });
  document.body.dataset.state = 'started';
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
