/*! Portal Pulse widget: <script src="https://HOST/widget.js" data-site="SITE" async></script> */
(function () {
  'use strict';

  const VISITOR_KEY = 'portalpulse:visitor';
  const VISITOR_RE = /^[A-Za-z0-9_-]{16,64}$/;
  const SITE_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
  const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';
  const ENGAGED_MS = 15000;
  const MAX_FRAME_BYTES = 4000; // the server's limit is 4096
  const MAX_PAGES = 20;
  const MAX_PATH_BYTES = 512;
  const MAX_TITLE_CHARS = 200;
  const BEAT_GAP_MS = 250; // the server allows 10 messages a second
  const ANNOUNCE_MS = 60000;
  const SETTLE_MS = 2000;
  const BOX_TRENDING = 5;
  const WANTABLE = ['online', 'today', 'total', 'trending'];
  const WANT_SHRINK_MS = 20000; // a list closed this long stops being sent (one reconnect)
  const HELLO_WAIT_MS = 5000; // the server waits 10 s for hello
  const EARLY_SOCKET_MS = 3000; // the loader's socket, unused by then, is closed
  const NARROW = '(max-width: 599px)'; // phones: the unopened box shows only the count
  const TRENDING_MARGIN = '100%'; // a list within a screen of the viewport counts as visible
  const INPUT_EVENTS = ['scroll', 'keydown', 'pointerdown', 'pointermove', 'touchstart', 'wheel'];

  const TEXT = {
    vi: { sep: '.', online: 'người đang online', today: 'Hôm nay', total: 'Tổng lượt truy cập',
      trending: 'Tin đang được quan tâm', close: 'Đóng' },
    en: { sep: ',', online: 'online now', today: 'Today', total: 'Total visits',
      trending: 'Trending now', close: 'Close' },
  };

  // ---- Pure logic, tested in node ----

  function pickLang(value) {
    return /^\s*en/i.test(value || '') ? 'en' : 'vi';
  }

  /** 12.345.678 (vi-VN) or 12,345,678 (en), without needing Intl. */
  function formatNumber(value, lang) {
    const n = Math.round(Number(value));
    return String(Number.isFinite(n) ? n : 0).replace(/\B(?=(\d{3})+$)/g, TEXT[pickLang(lang)].sep);
  }

  function onlineText(count, lang) {
    return formatNumber(count, lang) + ' ' + TEXT[pickLang(lang)].online;
  }

  /** Full jitter: uniform in [0, min(maxMs, baseMs * 2^attempt)). */
  function backoffDelay(attempt, random = Math.random, baseMs = 500, maxMs = 30000) {
    return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt)));
  }

  /** Milliseconds to wait before reconnecting after a close, or -1 for never. */
  function reconnectDelay(code, attempt, rand = Math.random) {
    if (code === 4400) return -1; // our own message was bad: retrying would repeat it
    if (code === 1001) return 100 + Math.floor(rand() * 1000); // back within leave_grace
    if (code === 1013) return backoffDelay(Math.max(attempt, 4), rand); // overloaded
    return backoffDelay(attempt, rand);
  }

  function deviceClass(width) {
    if (width < 768) return 'mobile';
    return width < 1024 ? 'tablet' : 'desktop';
  }

  function isEngaged(visible, lastInputAt, now) {
    return Boolean(visible) && now - lastInputAt < ENGAGED_MS;
  }

  // Made on use: nothing at load may throw.
  const utf8 = (text) => new TextEncoder().encode(text);
  const utf8Length = (text) => utf8(text).length;

  // Cut to whole characters: no half UTF-8 sequence or surrogate pair at the end.
  function cutBytes(text, maxBytes) {
    return new TextDecoder().decode(utf8(text).slice(0, maxBytes)).replace(/\ufffd$/, '');
  }

  function cutChars(text, maxChars) {
    return text.slice(0, maxChars).replace(/[\ud800-\udbff]$/, '');
  }

  /** Path plus query (the server drops what it does not keep), at most 512 bytes. */
  function pagePath(pathname, search) {
    let path = String(pathname || '/');
    if (path[0] !== '/') path = '/' + path;
    const query = search && search !== '?' ? String(search) : '';
    const full = path + query;
    return cutBytes(utf8Length(full) > MAX_PATH_BYTES ? path : full, MAX_PATH_BYTES);
  }

  function cleanTitle(title) {
    return cutChars(String(title || '').replace(/[\u0000-\u001f\u007f]+/g, ' ').trim(), MAX_TITLE_CHARS);
  }

  function pageEntry(path, title, referrer) {
    const page = { path: path, title: cleanTitle(title) };
    if (referrer) page.referrer = cutBytes(String(referrer), MAX_PATH_BYTES);
    return page;
  }

  function pagesKey(pages) {
    return JSON.stringify(pages.map((p) => [p.path, p.title]));
  }

  /** The hello fields: also an HTTP beat's body. */
  function helloFields(visitor, pages, engaged, resume, device) {
    const fields = { visitor: visitor, pages: pages.slice(0, MAX_PAGES), engaged: Boolean(engaged), device: device };
    if (resume) fields.resume = true;
    return fields;
  }

  function buildBeat(engaged, pages) {
    const beat = { type: 'beat', engaged: Boolean(engaged) };
    if (pages) beat.pages = pages.slice(0, MAX_PAGES);
    return beat;
  }

  /** JSON under maxBytes: cuts titles and referrers, then drops pages from the end. */
  function encodeFrame(message, maxBytes) {
    const msg = Object.assign({}, message);
    let text = JSON.stringify(msg);
    for (let step = 0; utf8Length(text) > (maxBytes || MAX_FRAME_BYTES) && msg.pages; step++) {
      msg.pages = step < 2 ? msg.pages.map((p) => ({ path: p.path, title: cutChars(p.title, step ? 0 : 60) }))
        : msg.pages.slice(0, -1);
      text = JSON.stringify(msg);
    }
    return text;
  }

  /** The contract's `want` for these shown kinds: known names only, in one order. */
  function wantList(kinds) {
    return WANTABLE.filter((name) => kinds.includes(name));
  }

  /**
   * What the widget's own box shows: the count always; today and total when wide or
   * open; the trending list only while open. A closed box shows nothing, but `want`
   * may not be empty: `total` changes least often (only with a new visit).
   */
  function boxWant(closed, wide, open) {
    if (closed) return ['total'];
    return wantList(['online'].concat(wide || open ? ['today', 'total'] : [], open ? ['trending'] : []));
  }

  /** Frames of a connection with `want` carry only changed fields: the rest keep their value. */
  function mergeSnapshot(last, frame) {
    return Object.assign({}, last || {}, frame);
  }

  function makeId(length, fillRandom) {
    return Array.from(fillRandom(new Uint8Array(length)), (byte) => ID_CHARS[byte & 63]).join('');
  }

  /** The service's URL (with any path prefix) from the script's own src: the
   * embed's /widget.js (the loader), or the /widget.HASH.js it loads. */
  function serviceBase(src) {
    const match = /^(https?:\/\/[^?#]*?)\/widget(?:\.[0-9a-f]{6,64})?\.js(?:[?#].*)?$/i.exec(String(src || ''));
    return match ? match[1] : null;
  }

  /** Only same-site paths become links. */
  function safeHref(path) {
    return typeof path === 'string' && path[0] === '/' && path[1] !== '/' && path[1] !== '\\' ? path : '#';
  }

  const internals = {
    VISITOR_RE, TEXT, pickLang, formatNumber, onlineText, backoffDelay, reconnectDelay, deviceClass,
    isEngaged, utf8Length, pagePath, cleanTitle, pageEntry, pagesKey, helloFields,
    buildBeat, encodeFrame, makeId, serviceBase, safeHref, wantList, boxWant, mergeSnapshot,
  };
  if (typeof module === 'object' && module.exports) module.exports = internals;
  if (typeof document === 'undefined' || window.PortalPulse) return;

  // ---- In the browser ----

  // Nothing may throw into the portal's page.
  function guard(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { /* the page goes on */ }
    };
  }

  /** The socket the loader (/widget.js) opened for this URL, taken once. */
  function takeEarlySocket(url) {
    const early = window.__portalPulseSocket;
    window.__portalPulseSocket = undefined;
    if (!early || !early.ws) return null;
    if (early.url === url) return early.ws;
    early.ws.close(1000);
    return null;
  }

  function findScript() {
    const own = document.currentScript;
    if (own && own.getAttribute('data-site')) return own;
    // An async script may run with currentScript unset.
    return [...document.querySelectorAll('script[data-site][src]')].reverse().find((s) => serviceBase(s.src));
  }

  const fillRandom = (bytes) => crypto.getRandomValues(bytes);

  let memoryVisitor = null;
  /** One id per browser, read each time so that tabs started together agree. */
  function visitorId() {
    try {
      const stored = localStorage.getItem(VISITOR_KEY);
      if (stored && VISITOR_RE.test(stored)) return stored;
      const id = makeId(24, fillRandom);
      localStorage.setItem(VISITOR_KEY, id);
      return id;
    } catch (e) {
      return memoryVisitor || (memoryVisitor = makeId(24, fillRandom));
    }
  }

  // -- View: the page's placeholders, or the widget's own box --

  // In the style attribute and in :host, !important: page rules cannot hide the box.
  const BOX_HOST = 'all:initial!important;display:block!important;position:fixed!important;' +
    'right:8px!important;bottom:8px!important;z-index:2147483000!important';
  // As tall as the unopened box, at the end of the page: scrolled to the bottom, the
  // portal's footer (its legal lines) ends above the box instead of under it.
  const SPACER = 'all:initial!important;display:block!important;height:';
  const LIVE_HOST = 'all:initial!important;position:absolute!important;clip:rect(0 0 0 0)!important';
  // Every control is at least 44×44 px (a finger); unopened on a phone, the box is one
  // 44 px row in the corner.
  const BOX_CSS = '.box{font:14px/1.4 system-ui,sans-serif;color:#1b1f24;background:#fff;' +
    'border:1px solid #d0d7de;border-radius:8px;box-shadow:0 2px 8px #0003;max-width:300px}' +
    '.row{display:flex;align-items:center;min-height:44px}' +
    '.online{flex:1;font-weight:600;padding:0 4px 0 12px;white-space:nowrap}' +
    '.online:before{content:"";display:inline-block;width:8px;height:8px;' +
    'border-radius:50%;background:#1a7f37;margin-right:6px}' +
    'button{all:unset;box-sizing:border-box;flex:none;width:44px;height:44px;display:flex;' +
    'align-items:center;justify-content:center;cursor:pointer;font:20px/1 system-ui,sans-serif;' +
    'color:#57606a;border-radius:8px}button:hover{background:#f3f4f6}' +
    'button:focus-visible{outline:2px solid #0b57d0;outline-offset:-3px}' +
    '.toggle:after{content:"▴"}.open .toggle:after{content:"▾"}' +
    '.stats{font-size:12px;color:#57606a;padding:0 12px 8px}' +
    'ol{margin:0;padding:0 12px 4px 30px;font-size:13px;max-height:45vh;overflow:auto}' +
    'li a{display:flex;align-items:center;min-height:44px;color:#0b57d0}' +
    '.box:not(.open) ol{display:none}' +
    '@media ' + NARROW + '{.box:not(.open) .stats{display:none}}' +
    '.sr{position:absolute;clip:rect(0 0 0 0)}';

  function createView(lang, site) {
    const text = TEXT[lang];
    const drawn = new WeakMap(); // list -> its pagesKey: unchanged lists are not rebuilt
    const closedKey = 'portalpulse:closed:' + site;
    const narrow = window.matchMedia ? window.matchMedia(NARROW) : null;
    const watched = new WeakSet();
    const seen = new WeakMap(); // trending list -> whether it is within a screen of the viewport
    const observer = typeof IntersectionObserver === 'function'
      ? new IntersectionObserver(guard((entries) => {
        entries.forEach((entry) => seen.set(entry.target, entry.isIntersecting));
        wantChanged();
      }), { rootMargin: TRENDING_MARGIN + ' 0px' }) : null;
    let box = null;
    let live = null;
    let open = false;
    let closed = readClosed();
    let announceTimer = 0;
    let announcedAt = -ANNOUNCE_MS;
    let last = null;
    let onWant = () => {};

    function wantChanged() {
      onWant();
    }

    function readClosed() {
      try { return sessionStorage.getItem(closedKey) === '1'; } catch (e) { return false; }
    }

    function el(tag, className, parent) {
      const node = document.createElement(tag);
      if (className) node.className = className;
      if (parent) parent.appendChild(node);
      return node;
    }

    function setText(node, value) {
      if (node.textContent !== value) node.textContent = value;
    }

    function shadowHost(hostDeclarations, css) {
      if (!document.body || !document.body.attachShadow) return null;
      const host = el('div');
      host.setAttribute('data-portalpulse-box', '');
      host.setAttribute('style', hostDeclarations);
      host.setAttribute('lang', lang);
      const root = host.attachShadow({ mode: 'open' });
      el('style', '', root).textContent = ':host{' + hostDeclarations + '}' + css;
      document.body.appendChild(host);
      return root;
    }

    function fillTrending(list, trending, limit) {
      if (!Array.isArray(trending)) return; // not wanted yet: keep what it shows
      const items = trending.slice(0, limit);
      const key = pagesKey(items);
      if (drawn.get(list) === key) return;
      drawn.set(list, key);
      const itemTag = /^(UL|OL)$/.test(list.tagName) ? 'li' : 'div';
      const fragment = document.createDocumentFragment();
      for (const item of items) {
        const link = el('a', '', el(itemTag, '', fragment));
        link.href = safeHref(item.path);
        link.textContent = cleanTitle(item.title) || String(item.path);
      }
      list.textContent = '';
      list.appendChild(fragment);
    }

    function button(className, label, parent, onClick) {
      const node = el('button', className, parent);
      node.type = 'button';
      node.setAttribute('aria-label', label);
      node.addEventListener('click', guard(onClick));
      return node;
    }

    function drawBox() {
      const root = shadowHost(BOX_HOST, BOX_CSS);
      if (!root) return null;
      const frame = el('div', 'box', root);
      const row = el('div', 'row', frame);
      const count = el('div', 'online', row);
      const toggle = button('toggle', text.trending, row, () => setOpen(!open));
      toggle.setAttribute('aria-expanded', 'false');
      button('close', text.close, row, closeBox).textContent = '×';
      const stats = el('div', 'stats', frame);
      const list = el('ol', '', frame);
      const liveRegion = el('div', 'sr', frame);
      const spacer = el('div', '', document.body);
      spacer.setAttribute('aria-hidden', 'true');
      return { host: root.host, spacer, frame, count, toggle, stats, list, liveRegion };
    }

    function fitSpacer() {
      const height = box.host.offsetHeight + 16 + 'px';
      if (!open && box.spacer.style.height !== height) box.spacer.setAttribute('style', SPACER + height + '!important');
    }

    function setOpen(value) {
      open = value;
      box.frame.classList.toggle('open', open);
      box.toggle.setAttribute('aria-expanded', String(open));
      wantChanged();
    }

    /** Hidden for the browser session on every page; the reader stays counted. */
    function closeBox() {
      try { sessionStorage.setItem(closedKey, '1'); } catch (e) { /* this page only */ }
      closed = true;
      open = false;
      if (box) {
        box.host.remove();
        box.spacer.remove();
      }
      box = null;
      live = null;
      wantChanged();
    }

    function renderBox(s) {
      if (typeof s.online === 'number') setText(box.count, onlineText(s.online, lang));
      if (s.today || s.total_visits !== undefined) {
        setText(box.stats, text.today + ': ' + formatNumber(s.today && s.today.visits, lang) + ' · ' +
          text.total + ': ' + formatNumber(s.total_visits, lang));
      }
      fillTrending(box.list, s.trending, BOX_TRENDING);
      fitSpacer();
    }

    function renderPlaceholders(s, nodes) {
      for (const node of nodes) {
        const kind = node.getAttribute('data-portalpulse');
        if (kind === 'online' && 'online' in s) setText(node, formatNumber(s.online, lang));
        else if (kind === 'today' && 'today' in s) setText(node, formatNumber(s.today && s.today.visits, lang));
        else if (kind === 'total' && 'total_visits' in s) setText(node, formatNumber(s.total_visits, lang));
        else if (kind === 'trending') {
          fillTrending(node, s.trending, parseInt(node.getAttribute('data-limit'), 10) || 10);
        }
      }
    }

    // The live region gets the latest count at most once a minute (first once it settled):
    // a screen reader is not told every snapshot.
    function announce() {
      if (announceTimer || typeof last.online !== 'number') return;
      announceTimer = setTimeout(guard(() => {
        announceTimer = 0;
        if (!live) {
          const root = box ? null : shadowHost(LIVE_HOST, '');
          live = box ? box.liveRegion : root && el('div', '', root);
          live.setAttribute('aria-live', 'polite');
          live.setAttribute('role', 'status');
        }
        setText(live, onlineText(last.online, lang));
        announcedAt = Date.now();
      }), Math.max(SETTLE_MS, announcedAt + ANNOUNCE_MS - Date.now()));
    }

    function render(s) {
      if (!s || typeof s !== 'object') return;
      last = s;
      const nodes = document.querySelectorAll('[data-portalpulse]');
      if (nodes.length) renderPlaceholders(s, nodes);
      else if (!box && !closed && document.readyState !== 'loading') box = drawBox();
      if (box) renderBox(s);
      if (nodes.length || box) announce();
    }

    /** A trending list counts as shown while it is laid out within a screen of the viewport. */
    function nearViewport(node) {
      if (!watched.has(node) && observer) {
        watched.add(node);
        observer.observe(node);
      }
      if (seen.has(node)) return seen.get(node);
      const r = node.getBoundingClientRect();
      const h = window.innerHeight;
      return (r.width > 0 || r.height > 0) && r.bottom > -h && r.top < 2 * h;
    }

    /** The contract's `want`: exactly what this page shows now. */
    function want() {
      const nodes = [...document.querySelectorAll('[data-portalpulse]')];
      if (!nodes.length) return boxWant(closed, !(narrow && narrow.matches), open);
      const kinds = nodes.map((node) => node.getAttribute('data-portalpulse'))
        .filter((kind, i) => kind !== 'trending' || nearViewport(nodes[i]));
      const list = wantList(kinds);
      return list.length ? list : boxWant(true, false, false);
    }

    if (narrow && narrow.addEventListener) narrow.addEventListener('change', guard(wantChanged));
    // A snapshot that came before the page was parsed; placeholders now known.
    if (document.readyState === 'loading') {
      document.addEventListener('DOMContentLoaded', guard(() => {
        if (last) render(last);
        wantChanged();
      }));
    }
    return {
      render,
      want,
      closed: () => closed,
      close: () => closed || closeBox(),
      onWant: (callback) => { onWant = callback; },
    };
  }

  // -- This tab: its page and engagement --

  function createTab(onChange) {
    let lastInputAt = -Infinity;
    let idleTimer = 0;
    const tab = {
      page: pageEntry(pagePath(location.pathname, location.search), document.title, document.referrer),
      engaged: false,
    };

    function refreshEngaged() {
      const now = Date.now();
      const engaged = isEngaged(document.visibilityState === 'visible', lastInputAt, now);
      clearTimeout(idleTimer);
      if (engaged) idleTimer = setTimeout(guard(refreshEngaged), lastInputAt + ENGAGED_MS - now + 50);
      if (engaged !== tab.engaged) {
        tab.engaged = engaged;
        onChange();
      }
    }

    // Input comes often: only note the time.
    const onInput = guard(() => {
      lastInputAt = Date.now();
      if (!tab.engaged) refreshEngaged();
    });
    INPUT_EVENTS.forEach((name) => window.addEventListener(name, onInput, { capture: true, passive: true }));
    document.addEventListener('visibilitychange', guard(refreshEngaged));

    // SPA navigation: a new page (its title is set just after).
    const checkLocation = guard(() => {
      const path = pagePath(location.pathname, location.search);
      const title = cleanTitle(document.title);
      if (path === tab.page.path && title === tab.page.title) return;
      tab.page = pageEntry(path, title, path === tab.page.path ? tab.page.referrer : '');
      onChange();
    });
    const later = () => setTimeout(checkLocation, 60);
    ['pushState', 'replaceState'].forEach((name) => {
      const original = history[name];
      if (typeof original !== 'function') return;
      history[name] = function () {
        const result = original.apply(this, arguments);
        guard(later)();
        return result;
      };
    });
    window.addEventListener('popstate', guard(later));
    return tab;
  }

  // -- Tabs: one leader holds the only connection --

  /** One session of this tab: the other tabs, the leader election, the transport. */
  function start(site, base, view, tab) {
    const wsUrl = base.replace(/^http/i, 'ws') + '/ws?site=' + encodeURIComponent(site);
    const beatsUrl = base + '/api/v1/sites/' + encodeURIComponent(site) + '/beats';
    const lockName = 'portalpulse:' + site;
    const tabId = makeId(16, fillRandom);
    const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(lockName) : null;
    // Without Web Locks each tab connects on its own, for itself.
    const locks = channel && navigator.locks && navigator.locks.request ? navigator.locks : null;
    const others = new Map(); // the site's other tabs: id -> { page, engaged, want }
    const releases = [];

    let leader = false;
    let stopped = false;
    let closing = false;
    let sawOthers = false; // then taking over is a resume: no new views
    let sessionStarted = false; // the server has counted these pages already
    let lastSnapshot = null;
    let beatInterval = 15;
    let socket = null;
    let helloSocket = null; // the socket whose hello asked for `sentWant`
    let retiring = null; // the socket a new one (with a new `want`) replaces once welcomed
    let sentWant = [];
    let welcomed = false;
    let attempt = 0;
    let failedOpens = 0;
    let httpMode = false;
    let sentPagesKey = '';
    let sentEngaged = false;
    let lastBeatAt = 0;
    const timers = { beat: 0, soon: 0, retry: 0, want: 0 };
    // The WebSocket the loader opened while this script loaded: the first connect
    // takes it over; a tab that does not lead by then closes it.
    let early = takeEarlySocket(wsUrl);
    if (early) {
      setTimeout(guard(() => {
        if (early) early.close(1000);
        early = null;
      }), EARLY_SOCKET_MS);
    }

    function post(message) {
      if (channel && !closing) channel.postMessage(message);
    }

    function announceTab(ask) {
      post({ k: 'tab', id: tabId, page: tab.page, engaged: tab.engaged, want: view.want(),
        closed: view.closed(), ask: ask });
    }

    function spokenFor() {
      return locks ? [...others.entries()].sort().map((e) => e[1]) : [];
    }

    function allPages() {
      return [tab.page].concat(spokenFor().map((t) => t.page)).slice(0, MAX_PAGES);
    }

    function anyEngaged() {
      return tab.engaged || spokenFor().some((t) => t.engaged);
    }

    /** What every tab this connection speaks for shows. */
    function allWants() {
      return wantList(spokenFor().reduce((all, t) => all.concat(t.want || []), view.want()));
    }

    function publish(snapshot) {
      if (!snapshot || typeof snapshot !== 'object' || typeof snapshot.ts !== 'number') return;
      lastSnapshot = snapshot;
      view.render(snapshot);
      if (leader) post({ k: 'snap', s: snapshot });
    }

    const onChannel = guard((event) => {
      const m = event.data || {};
      if (m.k === 'snap' && leader) return; // without locks every tab is its own leader
      sawOthers = true;
      if (m.k === 'snap') publish(m.s);
      else if (m.k === 'gone') others.delete(m.id);
      else if (m.k === 'tab' && m.page) {
        others.set(m.id, { page: m.page, engaged: Boolean(m.engaged), want: wantList(m.want || []) });
        if (m.closed) view.close(); // closed in one tab: in all of them
        if (m.ask) {
          announceTab(false);
          if (leader && lastSnapshot) publish(lastSnapshot);
        }
      }
      changed();
    });

    // A tab that died silently no longer holds its own lock (taken before it first spoke).
    function pruneTabs() {
      if (!locks || !locks.query) return;
      locks.query().then(guard((state) => {
        const held = state.held.map((l) => l.name);
        for (const id of others.keys()) if (!held.includes(lockName + ':tab:' + id)) others.delete(id);
        changed();
      }), () => {});
    }

    function hold(name, onGranted) {
      return locks.request(name, () => new Promise((release) => {
        releases.push(release);
        onGranted();
      }));
    }

    function campaign() {
      if (!locks) {
        announceTab(true);
        return becomeLeader();
      }
      const arrive = guard(() => announceTab(true));
      hold(lockName + ':tab:' + tabId, arrive).catch(arrive);
      hold(lockName, guard(becomeLeader)).catch(guard(becomeLeader));
      // Another tab leads: the loader's socket (opened as this tab arrived) is not needed.
      if (early && locks.query) {
        locks.query().then(guard((state) => {
          if (leader || !early || !state.held.some((lock) => lock.name === lockName)) return;
          early.close(1000);
          early = null;
        }), () => {});
      }
    }

    function becomeLeader() {
      if (leader || closing) return;
      leader = true;
      connect();
    }

    // -- Transport: a WebSocket, or HTTP beats where it fails --

    function hello(resume) {
      const pages = allPages();
      const fields = helloFields(visitorId(), pages, anyEngaged(), resume, deviceClass(window.innerWidth));
      sentPagesKey = pagesKey(pages);
      sentEngaged = fields.engaged;
      lastBeatAt = Date.now();
      return fields;
    }

    function send(message) {
      if (socket && socket.readyState === 1) socket.send(encodeFrame(message));
    }

    function connect() {
      clearTimeout(timers.retry);
      if (closing || stopped) return;
      if (typeof WebSocket !== 'function') return startHttp();
      let opened = false;
      let ws = early && early.readyState <= 1 ? early : null;
      early = null;
      try {
        ws = ws || new WebSocket(wsUrl);
      } catch (e) {
        return closed(false, 1006);
      }
      socket = ws;
      welcomed = false;
      ws.onopen = guard(() => {
        opened = true;
        // `want` names the page's placeholders: wait (briefly) until they are parsed.
        whenParsed(() => sendHello(ws));
      });
      if (ws.readyState === 1) ws.onopen(); // the loader's socket opened before now
      ws.onmessage = guard((event) => onServerMessage(JSON.parse(event.data), ws));
      ws.onclose = guard((event) => {
        if (socket !== ws) return;
        socket = null;
        welcomed = false;
        closed(opened, event.code);
      });
    }

    function whenParsed(fn) {
      if (document.readyState !== 'loading') return fn();
      const once = guard(() => {
        document.removeEventListener('DOMContentLoaded', once);
        clearTimeout(timer);
        fn();
      });
      const timer = setTimeout(once, HELLO_WAIT_MS);
      document.addEventListener('DOMContentLoaded', once);
    }

    function sendHello(ws) {
      if (socket !== ws || ws.readyState !== 1) return;
      sentWant = allWants();
      helloSocket = ws;
      const resume = sessionStarted || Boolean(locks && sawOthers);
      ws.send(encodeFrame(Object.assign({ type: 'hello' }, hello(resume), { want: sentWant })));
    }

    // The page now shows more (a list opened or scrolled into view): a new connection
    // asks for it at once, and replaces this one once welcomed, so the count never dips.
    // It shows less: the same, once that lasted WANT_SHRINK_MS (a list opened again soon
    // costs nothing).
    function wantChanged() {
      if (!leader || closing || !socket || helloSocket !== socket) return;
      const next = allWants();
      if (next.join() === sentWant.join()) {
        clearTimeout(timers.want);
        timers.want = 0;
      } else if (next.some((name) => !sentWant.includes(name))) {
        renewSocket();
      } else if (!timers.want) {
        timers.want = setTimeout(guard(() => {
          timers.want = 0;
          if (allWants().join() !== sentWant.join()) renewSocket();
        }), WANT_SHRINK_MS);
      }
    }

    function renewSocket() {
      clearTimeout(timers.want);
      timers.want = 0;
      if (!welcomed) return; // the next connection's hello asks for what is shown then
      if (retiring) retiring.close(1000);
      retiring = socket;
      socket = null;
      helloSocket = null;
      clearTimeout(timers.beat);
      connect();
    }

    function onServerMessage(m, ws) {
      if (ws !== socket) {
        if (m.type === 'snapshot') publish(mergeSnapshot(lastSnapshot, m)); // still current
        return;
      }
      if (m.type === 'welcome') {
        if (retiring) retiring.close(1000);
        retiring = null;
        welcomed = true;
        sessionStarted = true;
        attempt = 0;
        failedOpens = 0;
        httpMode = false;
        setBeatInterval(m.beat_interval);
        scheduleBeat();
        changed();
      } else if (m.type === 'snapshot') {
        publish(mergeSnapshot(lastSnapshot, m));
      }
    }

    function closed(opened, code) {
      clearTimeout(timers.beat);
      if (closing) return;
      if (code === 4400) {
        stopped = true;
        return;
      }
      if (!opened) failedOpens += 1;
      if (failedOpens >= 2) startHttp();
      // While HTTP beats keep the count, retry WebSocket now and then.
      const delay = httpMode ? 15000 + backoffDelay(10, Math.random, 500, 15000)
        : reconnectDelay(code, attempt++);
      timers.retry = setTimeout(guard(connect), delay);
    }

    function setBeatInterval(seconds) {
      if (seconds > 0) beatInterval = Math.min(Math.max(seconds, 1), 600);
    }

    function startHttp() {
      if (httpMode) return;
      httpMode = true;
      postBeat();
    }

    function postBeat() {
      scheduleBeat();
      // A changed page set counts as new views.
      const resume = sessionStarted && pagesKey(allPages()) === sentPagesKey;
      // A string body goes as text/plain: no CORS preflight.
      fetch(beatsUrl, { method: 'POST', body: encodeFrame(hello(resume)) })
        .then((response) => (response.ok ? response.json() : null))
        .then(guard((snapshot) => {
          if (!snapshot || !httpMode) return;
          sessionStarted = true;
          setBeatInterval(snapshot.beat_interval);
          scheduleBeat();
          publish(mergeSnapshot(lastSnapshot, snapshot));
        }), () => {});
    }

    function beatNow() {
      clearTimeout(timers.soon);
      timers.soon = 0;
      if (closing) return;
      if (welcomed) {
        const pagesChanged = pagesKey(allPages()) !== sentPagesKey;
        const fields = hello(false);
        send(buildBeat(fields.engaged, pagesChanged ? fields.pages : null));
        scheduleBeat();
      } else if (httpMode) {
        postBeat();
      }
      pruneTabs();
    }

    function scheduleBeat() {
      clearTimeout(timers.beat);
      timers.beat = setTimeout(guard(beatNow), beatInterval * 1000);
    }

    // Engagement or pages changed: beat at once, but not twice within BEAT_GAP_MS.
    function changed() {
      wantChanged();
      if (!leader || timers.soon || !(welcomed || httpMode)) return;
      if (pagesKey(allPages()) === sentPagesKey && anyEngaged() === sentEngaged) return;
      timers.soon = setTimeout(guard(beatNow), Math.max(0, lastBeatAt + BEAT_GAP_MS - Date.now()));
    }

    function tabChanged() {
      announceTab(false);
      changed();
    }

    function leave() {
      if (closing) return;
      post({ k: 'gone', id: tabId });
      if (leader && !others.size && welcomed) send({ type: 'bye' });
      else if (leader && !others.size && httpMode && sessionStarted) {
        navigator.sendBeacon(beatsUrl, encodeFrame(Object.assign(hello(true), { bye: true })));
      }
      closing = true;
      Object.values(timers).forEach(clearTimeout);
      if (socket) socket.close(1000);
      if (retiring) retiring.close(1000);
      releases.forEach((release) => release());
      if (channel) channel.close();
    }

    if (channel) channel.onmessage = onChannel;
    campaign();

    return {
      leave: leave,
      tabChanged: tabChanged,
      snapshot: () => lastSnapshot,
      status: () => ({
        leader: leader,
        transport: welcomed ? 'websocket' : httpMode ? 'http' : leader ? 'connecting' : 'follower',
      }),
    };
  }

  guard(() => {
    const script = findScript();
    const site = script && script.getAttribute('data-site');
    const base = script && serviceBase(script.src);
    if (!SITE_RE.test(site || '') || !base) return;
    const view = createView(pickLang(script.getAttribute('data-lang')), site);
    let widget = null;
    const tab = createTab(guard(() => widget.tabChanged()));
    view.onWant(guard(() => widget && widget.tabChanged()));
    widget = start(site, base, view, tab);
    window.addEventListener('pagehide', guard(() => widget.leave()));
    // Back from the back/forward cache.
    window.addEventListener('pageshow', guard((event) => {
      if (event.persisted) widget = start(site, base, view, tab);
    }));
    window.PortalPulse = Object.freeze({
      snapshot: () => widget.snapshot(),
      status: () => widget.status(),
    });
  })();
})();
