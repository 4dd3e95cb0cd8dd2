// The history page: days kept 400 days, this month and this year, a day's top
// articles. Reads /api/v1/sites/{site}/history and /top with the editor's session.
// Every text from readers (titles, paths) is set with textContent.
(function () {
  "use strict";
  var LANG_KEY = "portalpulse.dashboard.lang";
  var TEXT = {
    vi: {
      heading: "Lịch sử bạn đọc", live: "Bảng trực tiếp", today: "Hôm nay", month: "Tháng này",
      year: "Năm nay", days_title: "Lượt truy cập và lượt xem theo ngày", d30: "30 ngày",
      d90: "90 ngày", d400: "400 ngày", csv_days: "Tải CSV các ngày", views: "Lượt xem",
      visits: "Lượt truy cập", visitors: "Người xem", date: "Ngày", peak: "Cao nhất cùng lúc",
      peak_at: "Lúc", top_title: "Bài được xem nhiều nhất ngày", csv_top: "Tải CSV",
      top_link: "Bài xem nhiều", more: "{views} lượt xem · {visitors} người xem",
      other_lang: "English", failed: "Không tải được dữ liệu. Hãy thử lại sau ít phút.",
      none: "Chưa có bài nào được xem trong ngày này."
    },
    en: {
      heading: "Readership history", live: "Live dashboard", today: "Today", month: "This month",
      year: "This year", days_title: "Visits and page views per day", d30: "30 days",
      d90: "90 days", d400: "400 days", csv_days: "Download days as CSV", views: "Page views",
      visits: "Visits", visitors: "Visitors", date: "Date", peak: "Peak online",
      peak_at: "At", top_title: "Most viewed articles of", csv_top: "Download CSV",
      top_link: "Top articles", more: "{views} page views · {visitors} visitors",
      other_lang: "Tiếng Việt", failed: "Could not load the data. Try again in a few minutes.",
      none: "No article was viewed that day."
    }
  };
  var site = decodeURIComponent(location.pathname.split("/")[2] || "");
  var api = "/api/v1/sites/" + encodeURIComponent(site);
  var state = { lang: "vi", days: 30, data: null, timezone: "Asia/Ho_Chi_Minh" };

  function stored() { try { return localStorage.getItem(LANG_KEY); } catch (e) { return null; } }
  function t(key) { return (TEXT[state.lang] || TEXT.vi)[key] || key; }
  function num(n) { return new Intl.NumberFormat(state.lang === "vi" ? "vi-VN" : "en-US").format(n); }
  function byId(id) { return document.getElementById(id); }
  function clock(ts) {
    if (ts === null || ts === undefined) { return ""; }
    return new Intl.DateTimeFormat(state.lang === "vi" ? "vi-VN" : "en-GB",
      { hour: "2-digit", minute: "2-digit", timeZone: state.timezone }).format(new Date(ts * 1000));
  }
  function dateText(iso) {
    var p = iso.split("-");
    return state.lang === "vi" ? p[2] + "/" + p[1] + "/" + p[0] : iso;
  }

  function translate() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll("[data-i18n]").forEach(function (el) { el.textContent = t(el.dataset.i18n); });
    byId("lang-toggle").textContent = t("other_lang");
    document.title = t("heading") + " — Portal Pulse";
  }

  function tile(prefix, counts) {
    byId(prefix + "-visits").textContent = num(counts.visits);
    byId(prefix + "-more").textContent = t("more")
      .replace("{views}", num(counts.views)).replace("{visitors}", num(counts.visitors));
  }

  function chart(days) {
    var svg = byId("chart");
    while (svg.lastChild && svg.lastChild.tagName !== "title") { svg.removeChild(svg.lastChild); }
    var top = 1;
    days.forEach(function (d) { top = Math.max(top, d.views, d.visits); });
    var width = 1000 / Math.max(1, days.length);
    var ns = "http://www.w3.org/2000/svg";
    var line = [];
    days.forEach(function (d, i) {
      var bar = document.createElementNS(ns, "rect");
      var h = 210 * d.views / top;
      bar.setAttribute("class", "views");
      bar.setAttribute("x", String(i * width + width * 0.1));
      bar.setAttribute("width", String(width * 0.8));
      bar.setAttribute("y", String(220 - h));
      bar.setAttribute("height", String(h));
      var tip = document.createElementNS(ns, "title");
      tip.textContent = dateText(d.date) + ": " + num(d.views) + " / " + num(d.visits);
      bar.appendChild(tip);
      svg.appendChild(bar);
      line.push((i * width + width / 2).toFixed(1) + "," + (220 - 210 * d.visits / top).toFixed(1));
    });
    var path = document.createElementNS(ns, "polyline");
    path.setAttribute("class", "visits");
    path.setAttribute("points", line.join(" "));
    svg.appendChild(path);
  }

  function table(days) {
    var body = document.querySelector("#days tbody");
    body.textContent = "";
    days.slice().reverse().forEach(function (d) {
      var row = document.createElement("tr");
      [dateText(d.date), num(d.visits), num(d.views), num(d.visitors), num(d.peak_online), clock(d.peak_at)]
        .forEach(function (text) {
          var cell = document.createElement("td");
          cell.textContent = text;
          row.appendChild(cell);
        });
      var cell = document.createElement("td");
      var link = document.createElement("button");
      link.type = "button";
      link.className = "link-button";
      link.textContent = t("top_link");
      link.addEventListener("click", function () { showTop(d.date); });
      cell.appendChild(link);
      row.appendChild(cell);
      body.appendChild(row);
    });
  }

  function render() {
    var data = state.data;
    if (!data) { return; }
    var today = data.days[data.days.length - 1];
    tile("today", today);
    tile("month", data.month);
    tile("year", data.year);
    chart(data.days);
    table(data.days);
    byId("days-csv").href = api + "/history.csv?days=" + state.days;
    document.querySelectorAll("[data-days]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(Number(b.dataset.days) === state.days));
    });
  }

  function fail() { var e = byId("error"); e.textContent = t("failed"); e.hidden = false; }

  function load() {
    fetch(api + "/history?days=" + state.days, { credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) { location.href = "/dashboard/login?next=" + encodeURIComponent(location.pathname); }
        if (!r.ok) { throw new Error(String(r.status)); }
        return r.json();
      })
      .then(function (data) { state.data = data; byId("error").hidden = true; render(); })
      .catch(fail);
  }

  function showTop(date) {
    fetch(api + "/top?date=" + date, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (data) {
        byId("top-card").hidden = false;
        byId("top-date").textContent = dateText(date);
        byId("top-csv").href = api + "/top.csv?date=" + date;
        var list = byId("top");
        list.textContent = "";
        if (!data.pages.length) {
          var none = document.createElement("li");
          none.textContent = t("none");
          list.appendChild(none);
        }
        data.pages.forEach(function (p) {
          var item = document.createElement("li");
          item.textContent = p.title || p.path;
          item.title = p.path;
          var views = document.createElement("span");
          views.className = "views";
          views.textContent = num(p.views);
          item.appendChild(views);
          list.appendChild(item);
        });
        byId("top-card").scrollIntoView({ block: "nearest" });
      })
      .catch(fail);
  }

  function start() {
    var asked = new URLSearchParams(location.search).get("lang");
    state.lang = TEXT[asked] ? asked : (TEXT[stored()] ? stored() : "vi");
    translate();
    byId("live-link").href = "/dashboard/?site=" + encodeURIComponent(site);
    byId("lang-toggle").addEventListener("click", function () {
      state.lang = state.lang === "vi" ? "en" : "vi";
      try { localStorage.setItem(LANG_KEY, state.lang); } catch (e) { /* storage may be off */ }
      translate();
      render();
    });
    document.querySelectorAll("[data-days]").forEach(function (b) {
      b.addEventListener("click", function () { state.days = Number(b.dataset.days); load(); });
    });
    fetch("/dashboard/api/session", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (who) {
        if (!who) { return; }
        state.timezone = who.timezone || state.timezone;
        who.sites.forEach(function (s) { if (s.id === site) { byId("site-name").textContent = s.name; } });
        render();
      });
    load();
  }

  start();
}());
