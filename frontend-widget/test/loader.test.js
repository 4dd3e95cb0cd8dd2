// The loader served at /widget.js: it loads the versioned widget with the embed's data-*.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const SOURCE = fs.readFileSync(path.join(__dirname, '..', 'loader.js'), 'utf8')
  .replace('__WIDGET__', 'widget.0123456789ab.js'); // as the service serves it

function element(src, attributes, nonce) {
  const attrs = Object.entries(attributes).map(([name, value]) => ({ name, value }));
  return { src, nonce, attributes: attrs, getAttribute: (name) => attributes[name] ?? null };
}

function run(current, scripts, sandbox = {}) {
  const added = [];
  const created = {
    attributes: {},
    setAttribute(name, value) { this.attributes[name] = value; },
  };
  const document = {
    currentScript: current,
    querySelectorAll: () => scripts || [],
    createElement: (tag) => { assert.equal(tag, 'script'); return created; },
    head: { appendChild: (node) => added.push(node) },
  };
  const context = { document, window: sandbox.window || {}, setTimeout: (fn) => (sandbox.timers || []).push(fn) };
  vm.runInNewContext(SOURCE, Object.assign(context, sandbox));
  return added;
}

test('the loader loads the versioned widget with the embed data-* and nonce', () => {
  const embed = element('https://pulse.example.vn/widget.js',
    { src: 'https://pulse.example.vn/widget.js', 'data-site': 'myhao', 'data-lang': 'en', async: '' },
    'abc123');
  const [script] = run(embed);
  assert.equal(script.src, 'https://pulse.example.vn/widget.0123456789ab.js');
  assert.deepEqual(script.attributes, { 'data-site': 'myhao', 'data-lang': 'en' });
  assert.equal(script.nonce, 'abc123');
  assert.equal(script.async, true);
});

test('a path prefix and a query string are kept', () => {
  const [script] = run(element('https://cdn.gov.vn/pulse/widget.js?v=2', { 'data-site': 'a' }));
  assert.equal(script.src, 'https://cdn.gov.vn/pulse/widget.0123456789ab.js?v=2');
});

test('without currentScript the last embed of ours is used', () => {
  const other = element('https://x.vn/other.js', { 'data-site': 'x' });
  const ours = element('https://pulse.example.vn/widget.js', { 'data-site': 'myhao' });
  const [script] = run(null, [ours, other]);
  assert.equal(script.attributes['data-site'], 'myhao');
  assert.deepEqual(run(null, [other]), []);
});

test('the loader opens the WebSocket the widget takes over', () => {
  class FakeSocket { constructor(url) { this.url = url; } }
  const window = {};
  run(element('https://cdn.gov.vn/pulse/widget.js?v=2', { 'data-site': 'my-hao' }), [],
    { window, WebSocket: FakeSocket });
  assert.equal(window.__portalPulseSocket.url, 'wss://cdn.gov.vn/pulse/ws?site=my-hao');
  assert.equal(window.__portalPulseSocket.ws.url, 'wss://cdn.gov.vn/pulse/ws?site=my-hao');
  // As the widget makes it from the versioned script's src: the same URL.
  const w = require('../widget.js');
  const base = w.serviceBase('https://cdn.gov.vn/pulse/widget.0123456789ab.js?v=2');
  assert.equal(base.replace(/^http/i, 'ws') + '/ws?site=my-hao', window.__portalPulseSocket.url);
});

test('no socket where the widget already runs or WebSocket is missing', () => {
  const window = { PortalPulse: {} };
  class FakeSocket { constructor(url) { this.url = url; } }
  run(element('https://x.vn/widget.js', { 'data-site': 'a' }), [], { window, WebSocket: FakeSocket });
  assert.equal(window.__portalPulseSocket, undefined);
  const bare = {};
  run(element('https://x.vn/widget.js', { 'data-site': 'a' }), [], { window: bare });
  assert.equal(bare.__portalPulseSocket, undefined);
});

test('a socket the widget never takes is closed; a bad site opens none', () => {
  const closed = [];
  class FakeSocket { constructor(url) { this.url = url; } close(code) { closed.push(code); } }
  const window = {};
  const timers = [];
  run(element('https://x.vn/widget.js', { 'data-site': 'a' }), [], { window, WebSocket: FakeSocket, timers });
  assert.ok(window.__portalPulseSocket);
  timers.forEach((fn) => fn());
  assert.deepEqual(closed, [1000]);
  assert.equal(window.__portalPulseSocket, undefined);

  const taken = {};
  const later = [];
  run(element('https://x.vn/widget.js', { 'data-site': 'a' }), [], { window: taken, WebSocket: FakeSocket, timers: later });
  taken.__portalPulseSocket = undefined; // the widget took it
  later.forEach((fn) => fn());
  assert.deepEqual(closed, [1000]);

  const bad = {};
  run(element('https://x.vn/widget.js', { 'data-site': 'Bad Site' }), [], { window: bad, WebSocket: FakeSocket });
  assert.equal(bad.__portalPulseSocket, undefined);
});
