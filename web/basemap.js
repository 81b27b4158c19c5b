// The offline basemap: country outlines (Natural Earth, from the `world-atlas` package) and
// US state borders (`us-atlas`), vendored as TopoJSON under /assets/vendor/ and decoded in
// the page with topojson-client. Drawn on its own canvas pane under the territories, with
// country names at low zoom. Nothing is fetched from another origin and no tile is needed,
// so the page reads the same on an air-gapped operator's laptop.
//
// State for tests and screenshots lives on the map container:
//   data-basemap        loading | ready | error
//   data-basemap-scale  110m | 50m (the country file drawn)
//   data-basemap-countries, data-basemap-states  features drawn

const L = window.L;
const BASE = '/assets/vendor/';
const FILES = {
  '110m': 'world-atlas/countries-110m.json',
  '50m': 'world-atlas/countries-50m.json',
  states: 'us-atlas/states-10m.json',
};
/** From this zoom on, the 1:50m countries replace the 1:110m ones (their lines are
 * visibly coarse beyond it; the 50m file is loaded only when first needed). */
const DETAIL_ZOOM = 4.5;
/** Country names are shown up to this zoom: beyond it, the territories are the subject. */
const LABEL_MAX_ZOOM = 6;
/** State borders are drawn from this zoom on; at world scale they are clutter. */
const STATES_MIN_ZOOM = 3;

export const LAND = '#f1efe6';
const BORDER = '#a6ad9c';
const STATE_BORDER = '#c4c8ba';

const topologies = new Map();

function load(key) {
  if (!topologies.has(key)) {
    topologies.set(key, fetch(BASE + FILES[key]).then((r) => {
      if (!r.ok) throw new Error(`${FILES[key]}: HTTP ${r.status}`);
      return r.json();
    }));
  }
  return topologies.get(key);
}

/** Planar area and centroid of one ring in degrees (shoelace); only used to place a label
 * inside a country's largest part, where degrees are as good as metres. */
function ringCentroid(ring) {
  let a = 0;
  let x = 0;
  let y = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
    a += f;
    x += (ring[j][0] + ring[i][0]) * f;
    y += (ring[j][1] + ring[i][1]) * f;
  }
  if (a === 0) return { area: 0, lon: ring[0][0], lat: ring[0][1] };
  return { area: Math.abs(a / 2), lon: x / (3 * a), lat: y / (3 * a) };
}

/** Where a country's name goes: the centroid of its largest polygon, with that polygon's
 * width in degrees (a name is shown only when the polygon is wide enough on screen). */
function labelAnchor(feature) {
  const g = feature.geometry;
  if (!g) return null;
  const polygons = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
  let best = null;
  for (const poly of polygons) {
    const c = ringCentroid(poly[0]);
    if (!best || c.area > best.area) {
      const lons = poly[0].map((p) => p[0]);
      best = { ...c, width: Math.max(...lons) - Math.min(...lons) };
    }
  }
  return best && best.area > 0 ? best : null;
}

function countryLabels(countries, pane) {
  return countries.features.flatMap((f) => {
    const name = f.properties?.name;
    const at = name ? labelAnchor(f) : null;
    if (!at) return [];
    const el = document.createElement('span');
    el.textContent = name; // vendored data, but never markup
    const marker = L.marker([at.lat, at.lon], {
      pane,
      interactive: false,
      keyboard: false,
      icon: L.divIcon({ className: 'country-label', html: el, iconSize: null }),
    });
    return [{ marker, name, width: at.width }];
  });
}

/** Draw the basemap on `map`; returns a promise that settles when the first scale is drawn. */
export function drawBasemap(map) {
  const container = map.getContainer();
  container.dataset.basemap = 'loading';
  container.classList.add('has-basemap');
  map.createPane('basemap');
  map.getPane('basemap').style.zIndex = '250'; // over tiles (200), under the graticule (300)
  map.getPane('basemap').style.pointerEvents = 'none';
  map.createPane('basemapLabels');
  map.getPane('basemapLabels').style.zIndex = '350';
  map.getPane('basemapLabels').style.pointerEvents = 'none';
  const renderer = L.canvas({ pane: 'basemap', padding: 0.5 });
  // Options of a GeoJSON layer reach the paths it creates: all on the basemap's canvas.
  const onCanvas = { pane: 'basemap', renderer, interactive: false };
  const countries = L.geoJSON(null, {
    ...onCanvas,
    style: () => ({ color: BORDER, weight: 0.8, fillColor: LAND, fillOpacity: 1 }),
  }).addTo(map);
  const states = L.geoJSON(null, {
    ...onCanvas,
    style: () => ({ color: STATE_BORDER, weight: 0.7, fill: false }),
  });
  const labels = L.layerGroup().addTo(map);
  let drawn = null;
  let names = [];

  async function show(scale) {
    const topo = await load(scale);
    if (drawn === scale) return;
    const fc = window.topojson.feature(topo, topo.objects.countries);
    countries.clearLayers();
    countries.addData(fc);
    drawn = scale;
    container.dataset.basemapScale = scale;
    container.dataset.basemapCountries = String(fc.features.length);
    if (!names.length) names = countryLabels(fc, 'basemapLabels');
  }

  function placeLabels() {
    const z = map.getZoom();
    const pxPerDegree = 256 * 2 ** z / 360;
    labels.clearLayers();
    if (z > LABEL_MAX_ZOOM) return;
    // A name is drawn when its country's largest part is wider on screen than the name.
    for (const n of names) if (n.width * pxPerDegree >= n.name.length * 6.5) labels.addLayer(n.marker);
  }

  async function update() {
    const z = map.getZoom();
    await show(z >= DETAIL_ZOOM ? '50m' : '110m');
    if (z >= STATES_MIN_ZOOM) states.addTo(map);
    else states.remove();
    placeLabels();
  }

  const first = (async () => {
    await show('110m');
    const us = await load('states');
    // Interior borders only (a !== b): the outline of the country comes from world-atlas.
    states.addData(window.topojson.mesh(us, us.objects.states, (a, b) => a !== b));
    container.dataset.basemapStates = String(us.objects.states.geometries.length);
    await update();
    container.dataset.basemap = 'ready';
  })().catch((e) => {
    container.dataset.basemap = 'error';
    container.classList.remove('has-basemap');
    console.warn('basemap not drawn:', e); // the graticule still orients the reader
  });
  map.on('zoomend', () => {
    update().catch((e) => console.warn('basemap update failed:', e));
  });
  return first;
}
