/*! Portal Pulse: <script src="https://HOST/widget.js" data-site="SITE" async></script> */
// The loader served at /widget.js (cached minutes): it loads this version of the
// widget from /widget.HASH.js (cached a year, immutable), with the embed's data-*,
// and opens the widget's WebSocket meanwhile.
(function (d) {
  var s = d.currentScript;
  if (!s) { // an old browser: the last embed of ours
    var all = d.querySelectorAll('script[data-site][src]');
    for (var i = all.length - 1; i >= 0 && !s; i--) if (/\/widget\.js([?#]|$)/.test(all[i].src)) s = all[i];
  }
  if (!s || !s.src) return;
  var w = d.createElement('script');
  for (var j = 0; j < s.attributes.length; j++) {
    var a = s.attributes[j];
    if (/^data-/.test(a.name)) w.setAttribute(a.name, a.value);
  }
  if (s.nonce) w.nonce = s.nonce; // a page's CSP nonce
  w.src = s.src.replace(/\/widget\.js(?=[?#]|$)/, '/__WIDGET__');
  w.async = true;
  (d.head || d.documentElement).appendChild(w);
  // The WebSocket opens while the widget loads, and the widget takes it over, so the
  // loader costs no round trip; not when another tab of the site holds its connection.
  var site = s.getAttribute('data-site');
  var locks = typeof navigator === 'object' && navigator.locks;
  function open() {
    try {
      var url = s.src.replace(/\/widget\.js([?#].*)?$/, '').replace(/^http/i, 'ws') +
        '/ws?site=' + encodeURIComponent(site);
      if (window.PortalPulse) return;
      var early = window.__portalPulseSocket = { url: url, ws: new WebSocket(url) };
      setTimeout(function () { // the widget never came (blocked, failed): let it go
        if (window.__portalPulseSocket !== early) return;
        window.__portalPulseSocket = undefined;
        early.ws.close(1000);
      }, 8000);
    } catch (e) { /* the widget connects by itself */ }
  }
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(site || '') || typeof WebSocket !== 'function') return;
  if (!locks || !locks.query) return open();
  locks.query().then(function (state) {
    for (var k = 0; k < state.held.length; k++) if (state.held[k].name === 'portalpulse:' + site) return;
    open();
  }, open);
})(document);
