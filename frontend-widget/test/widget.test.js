'use strict';
// Unit tests of the widget's pure logic: node --test frontend-widget/test/
const test = require('node:test');
const assert = require('node:assert/strict');
const w = require('../widget.js');

test('numbers are grouped as vi-VN by default and as en with data-lang="en"', () => {
  assert.equal(w.formatNumber(12345678), '12.345.678');
  assert.equal(w.formatNumber(1011, 'vi'), '1.011');
  assert.equal(w.formatNumber(999, 'vi'), '999');
  assert.equal(w.formatNumber(1000, 'vi'), '1.000');
  assert.equal(w.formatNumber(0, 'vi'), '0');
  assert.equal(w.formatNumber(12345678, 'en'), '12,345,678');
  assert.equal(w.formatNumber(-1234, 'en'), '-1,234');
});

test('the grouping agrees with Intl vi-VN where node has it', () => {
  for (const n of [0, 7, 1011, 20114, 8520, 12345678, 1000000000]) {
    assert.equal(w.formatNumber(n, 'vi'), new Intl.NumberFormat('vi-VN').format(n));
    assert.equal(w.formatNumber(n, 'en'), new Intl.NumberFormat('en-US').format(n));
  }
});

test('bad numbers show 0 rather than NaN', () => {
  assert.equal(w.formatNumber(undefined), '0');
  assert.equal(w.formatNumber('abc', 'en'), '0');
  assert.equal(w.formatNumber(Infinity), '0');
  assert.equal(w.formatNumber(1011.6), '1.012');
});

test('the online line reads as the contract shows it', () => {
  assert.equal(w.onlineText(1011, 'vi'), '1.011 người đang online');
  assert.equal(w.onlineText(1011, 'en'), '1,011 online now');
  assert.equal(w.pickLang('EN-us'), 'en');
  assert.equal(w.pickLang('fr'), 'vi');
  assert.equal(w.pickLang(null), 'vi');
});

test('backoff doubles from 0.5 s to at most 30 s with full jitter', () => {
  const top = () => 0.999999;
  assert.equal(w.backoffDelay(0, top), 499);
  assert.equal(w.backoffDelay(1, top), 999);
  assert.equal(w.backoffDelay(3, top), 3999);
  assert.equal(w.backoffDelay(6, top), 29999);
  assert.equal(w.backoffDelay(40, top), 29999);
  assert.equal(w.backoffDelay(5, () => 0), 0);
  for (let i = 0; i < 200; i++) {
    const d = w.backoffDelay(2);
    assert.ok(d >= 0 && d < 2000, String(d));
  }
});

test('reconnect: never after 4400, quickly after 1001, harder after 1013', () => {
  assert.equal(w.reconnectDelay(4400, 0), -1);
  for (let i = 0; i < 200; i++) {
    assert.ok(w.reconnectDelay(1001, 9) < 2000);
  }
  assert.ok(w.reconnectDelay(1013, 0, () => 0.999) >= 7000);
  assert.equal(w.reconnectDelay(1006, 0, () => 0.999), 499);
  assert.equal(w.reconnectDelay(1006, 2, () => 0.5), 1000);
});

test('device class follows the viewport width', () => {
  assert.equal(w.deviceClass(360), 'mobile');
  assert.equal(w.deviceClass(767), 'mobile');
  assert.equal(w.deviceClass(768), 'tablet');
  assert.equal(w.deviceClass(1023), 'tablet');
  assert.equal(w.deviceClass(1024), 'desktop');
  assert.equal(w.deviceClass(1920), 'desktop');
});

test('engaged means visible with input in the last 15 s', () => {
  const now = 100000;
  assert.equal(w.isEngaged(true, now - 1000, now), true);
  assert.equal(w.isEngaged(true, now - 14999, now), true);
  assert.equal(w.isEngaged(true, now - 15000, now), false);
  assert.equal(w.isEngaged(false, now - 1000, now), false);
  assert.equal(w.isEngaged(true, -Infinity, now), false);
});

test('a page is the path plus query, at most 512 bytes', () => {
  assert.equal(w.pagePath('/tin-tuc/a.html', ''), '/tin-tuc/a.html');
  assert.equal(w.pagePath('/Default.aspx', '?ItemID=123&utm_source=x'), '/Default.aspx?ItemID=123&utm_source=x');
  assert.equal(w.pagePath('/a', '?'), '/a');
  assert.equal(w.pagePath('', ''), '/');
  assert.equal(w.pagePath('a', ''), '/a');
  const longQuery = '?q=' + 'x'.repeat(600);
  assert.equal(w.pagePath('/search', longQuery), '/search');
  const longPath = '/' + 'đ'.repeat(400);
  const cut = w.pagePath(longPath, '');
  assert.ok(w.utf8Length(cut) <= 512);
  assert.ok(cut.startsWith('/đđ'));
});

test('titles are plain text: trimmed, no control characters, at most 200 characters', () => {
  assert.equal(w.cleanTitle('  Hội nghị\ntrực tuyến\t '), 'Hội nghị trực tuyến');
  assert.equal(w.cleanTitle('<b>x</b> & y'), '<b>x</b> & y');
  assert.equal(w.cleanTitle('ệ'.repeat(300)).length, 200);
  assert.equal(w.cleanTitle(undefined), '');
  const emoji = 'a' + '😀'.repeat(150);
  const cut = w.cleanTitle(emoji);
  assert.ok(!/[\ud800-\udbff]$/.test(cut), 'no half surrogate pair at the end');
});

test('hello (and an HTTP beat) carries visitor, pages, engagement, device, and resume only when resuming', () => {
  const pages = [w.pageEntry('/a', 'A', 'https://www.google.com/')];
  assert.deepEqual(w.helloFields('k3J9xQ2mZp7Lw0aB', pages, true, false, 'mobile'), {
    visitor: 'k3J9xQ2mZp7Lw0aB',
    pages: [{ path: '/a', title: 'A', referrer: 'https://www.google.com/' }],
    engaged: true, device: 'mobile',
  });
  assert.equal(w.helloFields('k3J9xQ2mZp7Lw0aB', pages, false, true, 'desktop').resume, true);
  assert.deepEqual(w.pageEntry('/b', 'B', ''), { path: '/b', title: 'B' });
});

test('a hello or beat speaks for at most 20 pages', () => {
  const pages = Array.from({ length: 30 }, (_, i) => w.pageEntry('/p' + i, 'P' + i));
  assert.equal(w.helloFields('k3J9xQ2mZp7Lw0aB', pages, false, false, 'desktop').pages.length, 20);
  assert.equal(w.buildBeat(true, pages).pages.length, 20);
});

test('a beat carries pages only when given them', () => {
  assert.deepEqual(w.buildBeat(false, null), { type: 'beat', engaged: false });
  assert.deepEqual(w.buildBeat(true, [{ path: '/x', title: 'X' }]),
    { type: 'beat', engaged: true, pages: [{ path: '/x', title: 'X' }] });
});

test('frames stay under 4096 bytes however long the titles and paths', () => {
  const pages = Array.from({ length: 20 }, (_, i) =>
    w.pageEntry('/' + 'đường'.repeat(80) + i, 'Tiêu đề rất dài '.repeat(20), 'https://x.vn/' + 'r'.repeat(400)));
  const hello = Object.assign({ type: 'hello' }, w.helloFields('k3J9xQ2mZp7Lw0aB', pages, true, false, 'desktop'));
  const text = w.encodeFrame(hello);
  assert.ok(Buffer.byteLength(text) <= 4000, String(Buffer.byteLength(text)));
  const msg = JSON.parse(text);
  assert.equal(msg.type, 'hello');
  assert.ok(msg.pages.length >= 1);
  assert.equal(msg.pages[0].path, pages[0].path);
});

test('small frames are sent as they are', () => {
  const beat = w.buildBeat(true, [w.pageEntry('/a', 'Tin "mới" <b>')]);
  assert.equal(w.encodeFrame(beat), JSON.stringify(beat));
});

test('utf8Length counts bytes as the server does', () => {
  for (const s of ['abc', 'Hội nghị', '😀x', 'ệ'.repeat(10), '']) {
    assert.equal(w.utf8Length(s), Buffer.byteLength(s), s);
  }
});

test('visitor ids match the contract and differ', () => {
  const crypto = require('node:crypto');
  const fill = (bytes) => crypto.getRandomValues(bytes);
  const a = w.makeId(24, fill);
  const b = w.makeId(24, fill);
  assert.match(a, w.VISITOR_RE);
  assert.match(b, /^[A-Za-z0-9_-]{24}$/);
  assert.notEqual(a, b);
});

test('the service base comes from the script src, with any path prefix', () => {
  assert.equal(w.serviceBase('https://pulse.example.vn/widget.js'), 'https://pulse.example.vn');
  assert.equal(w.serviceBase('http://127.0.0.1:8000/widget.js?v=2'), 'http://127.0.0.1:8000');
  assert.equal(w.serviceBase('https://cdn.gov.vn/pulse/widget.js'), 'https://cdn.gov.vn/pulse');
  assert.equal(w.serviceBase('https://x.vn/other.js'), null);
  // The versioned script the loader at /widget.js loads.
  assert.equal(w.serviceBase('https://cdn.gov.vn/pulse/widget.0123456789ab.js'), 'https://cdn.gov.vn/pulse');
  assert.equal(w.serviceBase('https://x.vn/widget.min.js'), null);
  assert.equal(w.serviceBase(''), null);
});

test('only same-site paths become links', () => {
  assert.equal(w.safeHref('/tin-tuc/a.html'), '/tin-tuc/a.html');
  assert.equal(w.safeHref('javascript:alert(1)'), '#');
  assert.equal(w.safeHref('//evil.example/x'), '#');
  assert.equal(w.safeHref('/\\evil.example'), '#');
  assert.equal(w.safeHref(undefined), '#');
});

test('the page-set key changes with a path or a title', () => {
  const a = [w.pageEntry('/a', 'A')];
  assert.equal(w.pagesKey(a), w.pagesKey([w.pageEntry('/a', 'A', 'https://r/')]));
  assert.notEqual(w.pagesKey(a), w.pagesKey([w.pageEntry('/b', 'A')]));
  assert.notEqual(w.pagesKey(a), w.pagesKey([w.pageEntry('/a', 'B')]));
});

test('loading in node touches no DOM and adds no global', () => {
  assert.equal(globalThis.PortalPulse, undefined);
  assert.equal(typeof w.formatNumber, 'function');
});

test('want names what is shown, in one order, known names only', () => {
  assert.deepEqual(w.wantList(['trending', 'online', 'online', 'views']), ['online', 'trending']);
  assert.deepEqual(w.wantList(['total', 'today']), ['today', 'total']);
  assert.deepEqual(w.wantList([]), []);
});

test('the box wants the count; today and total when wide or open; the list only when open', () => {
  assert.deepEqual(w.boxWant(false, false, false), ['online']);
  assert.deepEqual(w.boxWant(false, true, false), ['online', 'today', 'total']);
  assert.deepEqual(w.boxWant(false, false, true), ['online', 'today', 'total', 'trending']);
  // Closed it shows nothing, but want may not be empty: the field that changes least.
  assert.deepEqual(w.boxWant(true, true, true), ['total']);
});

test('a frame with some fields keeps the last value of the others', () => {
  const first = { type: 'snapshot', site: 's', online: 5, today: { visits: 9 }, total_visits: 100, ts: 1 };
  const next = w.mergeSnapshot(first, { type: 'snapshot', site: 's', online: 6, ts: 2 });
  assert.deepEqual(next, { type: 'snapshot', site: 's', online: 6, today: { visits: 9 }, total_visits: 100, ts: 2 });
  assert.equal(first.online, 5, 'the last snapshot is not changed in place');
  assert.deepEqual(w.mergeSnapshot(null, { online: 1 }), { online: 1 });
});
