// Portal Pulse — the editors' live dashboard.
//
// Reads the sites this session may see from /dashboard/api/session, then
// keeps one WebSocket (/dashboard/ws?site=SITE) open: the server pushes a
// "dashboard" frame whenever the numbers change, and this page redraws.
// Every text that comes from readers (titles, paths, referrers) is written
// with textContent, never as HTML.
"use strict";

(function () {
  var LANG_KEY = "portalpulse.dashboard.lang";
  var SITE_KEY = "portalpulse.dashboard.site";
  var SESSION_ENDED = 4401;
  var MAX_BACKOFF_MS = 30000;

  var TEXT = {
    vi: {
      title: "Bảng theo dõi bạn đọc — Portal Pulse",
      heading: "Bảng theo dõi bạn đọc",
      site: "Cổng thông tin",
      connecting: "Đang kết nối…",
      live: "Trực tiếp",
      offline: "Mất kết nối, đang thử lại…",
      updated: "Cập nhật lúc {t}",
      sign_out: "Đăng xuất",
      other_lang: "English",
      online_now: "Đang online",
      engaged: "Đang đọc tích cực",
      idle: "Không tương tác",
      engaged_share: "({p} %)",
      engaged_explain: "Tích cực: thẻ đang hiển thị và có thao tác trong 15 giây qua.",
      range_60: "Online từng phút, 60 phút qua",
      range_1440: "Online từng phút, 24 giờ qua",
      range_11520: "Online từng phút, 8 ngày qua",
      range_button_60: "1 giờ",
      range_button_1440: "24 giờ",
      range_button_11520: "8 ngày",
      by_hour: "Lượt xem theo giờ: hôm nay và hôm qua",
      online: "Online",
      today: "Hôm nay",
      yesterday: "Hôm qua",
      today_vs_yesterday: "Hôm nay so với hôm qua",
      visits: "Lượt truy cập",
      views: "Lượt xem trang",
      visitors: "Người xem",
      peak: "Cao nhất cùng lúc",
      peak_at: "lúc {t}",
      total_visits: "Tổng lượt truy cập",
      pages_now: "Trang đang được đọc",
      page: "Trang",
      readers: "Đang đọc",
      engaged_short: "Tích cực",
      views_30: "Lượt xem 30 phút",
      no_pages: "Chưa có ai đang đọc.",
      sources: "Bạn đọc đến từ đâu",
      referrers: "Nguồn cụ thể",
      devices: "Thiết bị",
      direct: "Trực tiếp",
      search: "Tìm kiếm",
      social: "Mạng xã hội",
      internal: "Từ chính cổng",
      other: "Trang khác",
      mobile: "Điện thoại",
      tablet: "Máy tính bảng",
      desktop: "Máy tính",
      unknown: "Không rõ",
      hour: "Giờ",
      same_time_yesterday: "Hôm qua đến giờ này",
      fullscreen: "Toàn màn hình",
      none: "Chưa có",
      wall: "Màn hình lớn",
      history: "Lịch sử",
      this_month: "Tháng này (lượt truy cập)",
      this_year: "Năm nay (lượt truy cập)",
      close: "Đóng",
      click_hint: "Bấm vào một bài để xem chi tiết",
      rising: "Đang lên",
      rising_title: "Số người đọc đã gấp 3 lần mức trung bình 15 phút qua",
      quiet_pages: "Có lượt xem trong 30 phút, nay không ai đọc",
      views_hour: "Lượt xem 1 giờ",
      engaged_time: "Đọc tích cực TB",
      readers_per_minute: "Người đang đọc từng phút, 60 phút qua",
      recirculation: "Đến từ bài khác của cổng",
      drill_explain: "Một giờ qua. Thời gian đọc tích cực là ước tính: số người đọc tích cực mỗi phút, chia cho số lượt xem.",
      minutes_seconds: "{m} phút {s} giây",
      seconds: "{s} giây",
      no_data: "Chưa có số liệu cho bài này trong giờ qua.",
      open_page: "Mở bài viết ↗",
    },
    en: {
      title: "Readership dashboard — Portal Pulse",
      heading: "Readership dashboard",
      site: "Portal",
      connecting: "Connecting…",
      live: "Live",
      offline: "Connection lost, retrying…",
      updated: "Updated {t}",
      sign_out: "Sign out",
      other_lang: "Tiếng Việt",
      online_now: "Online now",
      engaged: "Engaged",
      idle: "Idle",
      engaged_share: "({p}%)",
      engaged_explain: "Engaged: the tab is visible and had input in the last 15 seconds.",
      range_60: "Online per minute, last 60 minutes",
      range_1440: "Online per minute, last 24 hours",
      range_11520: "Online per minute, last 8 days",
      range_button_60: "1 h",
      range_button_1440: "24 h",
      range_button_11520: "8 days",
      by_hour: "Page views by hour: today and yesterday",
      online: "Online",
      today: "Today",
      yesterday: "Yesterday",
      today_vs_yesterday: "Today against yesterday",
      visits: "Visits",
      views: "Page views",
      visitors: "Visitors",
      peak: "Peak online",
      peak_at: "at {t}",
      total_visits: "Total visits",
      pages_now: "Pages being read",
      page: "Page",
      readers: "Readers",
      engaged_short: "Engaged",
      views_30: "Views, 30 min",
      no_pages: "Nobody is reading right now.",
      sources: "Where readers come from",
      referrers: "Named sources",
      devices: "Devices",
      direct: "Direct",
      search: "Search",
      social: "Social",
      internal: "This portal",
      other: "Other sites",
      mobile: "Mobile",
      tablet: "Tablet",
      desktop: "Desktop",
      unknown: "Unknown",
      hour: "Hour",
      same_time_yesterday: "Yesterday by this time",
      fullscreen: "Full screen",
      none: "None yet",
      wall: "Wall mode",
      history: "History",
      this_month: "This month (visits)",
      this_year: "This year (visits)",
      close: "Close",
      click_hint: "Click an article for its detail",
      rising: "Rising",
      rising_title: "Readers reached 3 times its average of the last 15 minutes",
      quiet_pages: "Viewed in the last 30 minutes, nobody reading now",
      views_hour: "Views, 1 hour",
      engaged_time: "Avg. engaged time",
      readers_per_minute: "Readers per minute, last 60 minutes",
      recirculation: "From other articles of the portal",
      drill_explain: "The last hour. Engaged time is an estimate: engaged readers each minute, shared among the views.",
      minutes_seconds: "{m} min {s} s",
      seconds: "{s} s",
      no_data: "No figures for this article in the last hour yet.",
      open_page: "Open the article ↗",
    },
  };
  var REFERRER_NAMES = {
    google: "Google", coccoc: "Cốc Cốc", bing: "Bing", facebook: "Facebook",
    zalo: "Zalo", youtube: "YouTube", tiktok: "TikTok", yahoo: "Yahoo", duckduckgo: "DuckDuckGo",
    twitter: "X (Twitter)", instagram: "Instagram", linkedin: "LinkedIn",
  };
  var SOURCE_KEYS = ["direct", "search", "social", "internal", "other"];
  var DEVICE_KEYS = ["mobile", "tablet", "desktop", "unknown"];
  var COLORS = { online: "#4fc3f7", today: "#ffb74d", yesterday: "#9e9e9e", grid: "#2c3440", axis: "#c9d1d9", engaged: "#66bb6a" };
  var MAX_QUIET_ROWS = 5;      // pages with views but no reader, listed after those being read
  var DRILL_EVERY_MS = 10000;  // the open drill-down is read again this often

  var state = {
    lang: "vi",
    timezone: "Asia/Ho_Chi_Minh",
    sites: [],
    site: null,
    frame: null,
    ws: null,
    retries: 0,
    retryTimer: null,
    charts: { minutes: null, hours: null },
    range: 60,        // minutes the online chart spans
    history: null,    // [[ts, online], ...] for a range beyond the live frame's hour
    drill: { path: null, data: null, chart: null, timer: null, returnTo: null },
  };

  function $(id) { return document.getElementById(id); }

  function t(key, values) {
    var text = (TEXT[state.lang] || TEXT.vi)[key] || key;
    if (values) {
      Object.keys(values).forEach(function (name) { text = text.replace("{" + name + "}", values[name]); });
    }
    return text;
  }

  function storageGet(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }

  function storageSet(key, value) {
    try { localStorage.setItem(key, value); } catch (e) { /* storage may be off */ }
  }

  function chooseLang() {
    var asked = new URLSearchParams(location.search).get("lang");
    if (asked === "vi" || asked === "en") {
      storageSet(LANG_KEY, asked);
      return asked;
    }
    var saved = storageGet(LANG_KEY);
    return saved === "en" ? "en" : "vi";
  }

  // -- formatting ---------------------------------------------------------------

  function number(n) {
    if (typeof n !== "number" || !isFinite(n)) return "–";
    return new Intl.NumberFormat(state.lang === "vi" ? "vi-VN" : "en-US").format(n);
  }

  function clock(ts, seconds) {
    if (!ts) return "";
    var options = { timeZone: state.timezone, hour: "2-digit", minute: "2-digit", hour12: false };
    if (seconds) options.second = "2-digit";
    return new Intl.DateTimeFormat(state.lang === "vi" ? "vi-VN" : "en-GB", options).format(new Date(ts * 1000));
  }

  function localTime(ts) {
    var parts = new Intl.DateTimeFormat("en-GB", {
      timeZone: state.timezone, hour: "2-digit", minute: "2-digit", hour12: false,
    }).formatToParts(new Date(ts * 1000));
    var found = { hour: 0, minute: 0 };
    parts.forEach(function (part) {
      if (part.type === "hour" || part.type === "minute") found[part.type] = parseInt(part.value, 10);
    });
    found.hour %= 24;
    return found;
  }

  function localHour(ts) { return localTime(ts).hour; }

  function setNumber(id, n) {
    var el = $(id);
    el.textContent = number(n);
    el.dataset.value = typeof n === "number" ? String(n) : "";
  }

  // -- static texts ---------------------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = state.lang;
    document.title = t("title");
    document.querySelectorAll("[data-i18n]").forEach(function (el) {
      el.textContent = t(el.dataset.i18n);
    });
    $("lang-toggle").textContent = t("other_lang");
    $("wall-toggle").setAttribute("aria-pressed", String(isWall()));
    $("logout-form").action = "/dashboard/logout?lang=" + state.lang;
  }

  // -- rendering ------------------------------------------------------------------

  function renderNow(frame) {
    setNumber("online", frame.online);
    setNumber("engaged", frame.engaged);
    setNumber("idle", frame.idle);
    var share = frame.online > 0 ? Math.round((100 * frame.engaged) / frame.online) : 0;
    $("engaged-share").textContent = frame.online > 0 ? t("engaged_share", { p: share }) : "";
    $("engaged-bar").style.width = share + "%";
  }

  // Yesterday's page views up to this time of day, from its views per hour (the
  // current hour counted pro rata): a fair match for today's count so far.
  function viewsSoFarYesterday(frame) {
    var hours = (frame.hours && frame.hours.yesterday) || [];
    if (hours.length !== 24 || !frame.ts) return null;
    var now = localTime(frame.ts);
    var hour = now.hour, minute = now.minute;
    var total = 0;
    for (var h = 0; h < hour; h++) total += Number(hours[h]) || 0;
    return Math.round(total + ((Number(hours[hour]) || 0) * minute) / 60);
  }

  function renderDay(prefix, day) {
    day = day || {};
    setNumber(prefix + "-visits", day.visits);
    setNumber(prefix + "-views", day.views);
    setNumber(prefix + "-visitors", day.visitors);
    var peak = $(prefix + "-peak");
    peak.dataset.value = typeof day.peak_online === "number" ? String(day.peak_online) : "";
    peak.textContent = number(day.peak_online);
    if (day.peak_online && day.peak_at) {
      var when = document.createElement("small");
      when.textContent = " " + t("peak_at", { t: clock(day.peak_at) });
      peak.appendChild(when);
    }
  }

  function siteUrl() {
    for (var i = 0; i < state.sites.length; i++) {
      if (state.sites[i].id === state.site) return state.sites[i].url;
    }
    return null;
  }

  function pageCell(page, base) {
    var cell = document.createElement("td");
    cell.className = "page";
    var label = page.title || page.path;
    var title;
    if (base && typeof page.path === "string" && page.path.charAt(0) === "/" && page.path.charAt(1) !== "/") {
      title = document.createElement("a");
      title.href = base + page.path;
      title.target = "_blank";
      title.rel = "noopener noreferrer";
    } else {
      title = document.createElement("span");
    }
    title.className = "title";
    title.title = label;  // the whole title, when two lines are not enough
    if (page.rising) {
      var badge = document.createElement("span");
      badge.className = "rising-badge";
      badge.textContent = "▲ " + t("rising");
      badge.title = t("rising_title");
      title.appendChild(badge);
    }
    title.appendChild(document.createTextNode(label));
    cell.appendChild(title);
    var path = document.createElement("span");
    path.className = "path";
    path.textContent = page.path;
    cell.appendChild(path);
    return cell;
  }

  function numberCell(n, className) {
    var cell = document.createElement("td");
    cell.className = "num " + (className || "");
    cell.textContent = number(n);
    cell.dataset.value = String(n);
    return cell;
  }

  function pageRow(page, rank, base) {
    var row = document.createElement("tr");
    row.dataset.path = page.path;
    row.tabIndex = 0;
    if (page.rising) row.classList.add("rising");
    if (page.path === state.drill.path) row.setAttribute("aria-selected", "true");
    var cell = document.createElement("td");
    cell.className = "rank";
    cell.textContent = String(rank);
    row.appendChild(cell);
    row.appendChild(pageCell(page, base));
    row.appendChild(numberCell(page.readers, "readers"));
    row.appendChild(numberCell(page.engaged, "engaged"));
    row.appendChild(numberCell(page.views, "views"));
    return row;
  }

  // Pages being read first, most readers first (the frame's order); pages with
  // views but nobody reading now come after, under a line of their own, a few.
  function renderPages(pages) {
    var body = $("pages");
    var base = siteUrl();
    var rows = document.createDocumentFragment();
    var read = (pages || []).filter(function (p) { return p.readers > 0; });
    var quiet = (pages || []).filter(function (p) { return !(p.readers > 0); }).slice(0, MAX_QUIET_ROWS);
    read.forEach(function (page, index) { rows.appendChild(pageRow(page, index + 1, base)); });
    if (quiet.length) {
      var head = document.createElement("tr");
      head.className = "quiet-head";
      var cell = document.createElement("td");
      cell.colSpan = 5;
      cell.textContent = t("quiet_pages");
      head.appendChild(cell);
      rows.appendChild(head);
      quiet.forEach(function (page, index) {
        var row = pageRow(page, read.length + index + 1, base);
        row.classList.add("quiet");
        rows.appendChild(row);
      });
    }
    body.replaceChildren(rows);
    $("pages-empty").hidden = read.length > 0;
  }

  function renderBars(containerId, entries) {
    var container = $(containerId);
    var total = entries.reduce(function (sum, e) { return sum + e.value; }, 0);
    var rows = document.createDocumentFragment();
    entries.forEach(function (entry) {
      var row = document.createElement("div");
      row.className = "bar-row";
      row.dataset.key = entry.key;
      row.dataset.value = String(entry.value);
      var label = document.createElement("span");
      label.className = "label";
      label.textContent = entry.label;
      var value = document.createElement("span");
      value.className = "value";
      value.textContent = number(entry.value);
      var track = document.createElement("span");
      track.className = "track";
      var fill = document.createElement("span");
      fill.className = "fill fill-" + containerId;
      fill.style.width = (total > 0 ? (100 * entry.value) / total : 0) + "%";
      track.appendChild(fill);
      row.appendChild(label);
      row.appendChild(value);
      row.appendChild(track);
      rows.appendChild(row);
    });
    if (!entries.length) {
      var none = document.createElement("p");
      none.className = "empty";
      none.textContent = t("none");
      rows.appendChild(none);
    }
    container.replaceChildren(rows);
  }

  function fixedEntries(keys, counts) {
    counts = counts || {};
    return keys.map(function (key) {
      return { key: key, label: t(key), value: Number(counts[key]) || 0 };
    });
  }

  function referrerEntries(counts) {
    counts = counts || {};
    return Object.keys(counts)
      .filter(function (key) { return Number(counts[key]) > 0; })
      .map(function (key) {
        return { key: key, label: REFERRER_NAMES[key] || key, value: Number(counts[key]) };
      })
      .sort(function (a, b) { return b.value - a.value || a.label.localeCompare(b.label); });
  }

  // -- charts ---------------------------------------------------------------------

  function chartSize(el, legend) {
    var height = Math.max(160, el.clientHeight || 220) - (legend ? 34 : 0);
    return { width: Math.max(200, el.clientWidth), height: height };
  }

  function axis(extra) {
    var base = {
      stroke: COLORS.axis,
      grid: { stroke: COLORS.grid, width: 1 },
      ticks: { stroke: COLORS.grid, width: 1 },
      font: "14px system-ui, sans-serif",
    };
    return Object.assign(base, extra || {});
  }

  // Counts on a y axis in the dashboard's language ("1.000" in Vietnamese), not the browser's.
  function countAxis() {
    return axis({
      size: 64,
      incrs: [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 2500, 5e3, 1e4, 2e4, 25e3, 5e4, 1e5, 2e5, 5e5, 1e6],
      values: function (u, splits) { return splits.map(function (n) { return number(n); }); },
    });
  }

  // The online chart's points: the live frame's last hour, laid over the history
  // read for a longer range (kept merged, so a page open for days stays whole).
  function minutePoints(frame) {
    var live = (frame && frame.minutes) || [];
    if (state.range <= 60 || !state.history) return live;
    var byMinute = new Map();
    state.history.forEach(function (p) { byMinute.set(p[0], p[1]); });
    live.forEach(function (p) { byMinute.set(p[0], p[1]); });
    var start = lastMinute() - (state.range - 1) * 60;
    var points = Array.from(byMinute.entries())
      .filter(function (p) { return p[0] >= start; })
      .sort(function (a, b) { return a[0] - b[0]; });
    state.history = points;
    return points;
  }

  function minutesData(frame) {
    var xs = [], ys = [];
    minutePoints(frame).forEach(function (point) { xs.push(point[0]); ys.push(point[1]); });
    return [xs, ys];
  }

  // "27/11" at midnight, else "27/11 12:00": labels for a range of days.
  function dayAndTime(ts) {
    var parts = {};
    new Intl.DateTimeFormat("en-GB", {
      timeZone: state.timezone, day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
    }).formatToParts(new Date(ts * 1000)).forEach(function (part) { parts[part.type] = part.value; });
    var day = parts.day + "/" + parts.month;
    var midnight = Number(parts.hour) % 24 === 0 && Number(parts.minute) === 0;
    return midnight ? day : day + " " + clock(ts);
  }

  function hoursData(frame) {
    var hours = frame.hours || {};
    var today = (hours.today || []).slice(0, 24);
    var yesterday = (hours.yesterday || []).slice(0, 24);
    var now = localHour(frame.ts || Date.now() / 1000);
    var xs = [], a = [], b = [];
    for (var h = 0; h < 24; h++) {
      xs.push(h);
      a.push(h <= now ? Number(today[h]) || 0 : null);
      b.push(Number(yesterday[h]) || 0);
    }
    return [xs, a, b];
  }

  function lastMinute() {
    var points = state.frame && state.frame.minutes;
    if (points && points.length) return points[points.length - 1][0];
    var now = state.frame && state.frame.ts ? state.frame.ts : Date.now() / 1000;
    return Math.floor(now / 60) * 60;
  }

  function makeMinutesChart(frame) {
    var el = $("chart-minutes");
    var size = chartSize(el);
    return new uPlot({
      width: size.width,
      height: size.height,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), state.timezone); },
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // Always the whole range, however few minutes have data yet.
        x: {
          time: true,
          range: function () { var end = lastMinute(); return [end - (state.range - 1) * 60, end]; },
        },
        y: { range: function (u, min, max) { return [0, Math.max(5, Math.ceil(max * 1.15))]; } },
      },
      series: [
        {},
        { label: t("online"), stroke: COLORS.online, width: 3, fill: "rgba(79,195,247,0.18)" },
      ],
      axes: [
        axis({
          space: 70,
          values: function (u, splits) {
            return splits.map(function (ts) { return state.range > 1440 ? dayAndTime(ts) : clock(ts); });
          },
        }),
        countAxis(),
      ],
    }, minutesData(frame), el);
  }

  function makeHoursChart(frame) {
    var el = $("chart-hours");
    var size = chartSize(el, true);
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 40] }) : undefined;
    return new uPlot({
      width: size.width,
      height: size.height,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: false, range: [-0.5, 23.5] },
        y: { range: function (u, min, max) { return [0, Math.max(5, Math.ceil(max * 1.1))]; } },
      },
      series: [
        { label: t("hour") },
        { label: t("today"), stroke: COLORS.today, fill: "rgba(255,183,77,0.55)", width: 1, paths: bars, points: { show: false } },
        { label: t("yesterday"), stroke: COLORS.yesterday, width: 2, dash: [6, 4], points: { show: false } },
      ],
      axes: [
        axis({ values: function (u, splits) { return splits.map(function (h) { return h + "h"; }); }, incrs: [1, 2, 3, 6] }),
        countAxis(),
      ],
    }, hoursData(frame), el);
  }

  function renderCharts(frame) {
    if (typeof uPlot === "undefined") return;
    if (!state.charts.minutes) state.charts.minutes = makeMinutesChart(frame);
    else state.charts.minutes.setData(minutesData(frame));
    if (!state.charts.hours) state.charts.hours = makeHoursChart(frame);
    else state.charts.hours.setData(hoursData(frame));
  }

  function loadHistory() {
    var site = state.site, range = state.range;
    if (!site || range <= 60) return;
    var url = "/api/v1/sites/" + encodeURIComponent(site) + "/history?minutes=" + range;
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) { toLogin(); return null; }
        return response.ok ? response.json() : null;
      })
      .then(function (body) {
        if (!body || state.site !== site || state.range !== range) return;
        state.history = body.minutes || [];
        if (state.charts.minutes) state.charts.minutes.setData(minutesData(state.frame));
      }, function () { /* the live hour still shows; the next switch tries again */ });
  }

  function setRange(minutes) {
    state.range = minutes;
    state.history = null;
    document.querySelectorAll(".range button").forEach(function (button) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.minutes) === minutes));
    });
    $("minutes-title").dataset.i18n = "range_" + minutes;
    $("minutes-title").textContent = t("range_" + minutes);
    if (state.charts.minutes) {
      state.charts.minutes.destroy();
      state.charts.minutes = null;
    }
    if (state.frame) renderCharts(state.frame);
    loadHistory();
  }

  function dropCharts() {
    ["minutes", "hours"].forEach(function (name) {
      if (state.charts[name]) state.charts[name].destroy();
      state.charts[name] = null;
    });
  }

  function resizeCharts() {
    [["minutes", "chart-minutes"], ["hours", "chart-hours"]].forEach(function (pair) {
      var chart = state.charts[pair[0]];
      if (chart) chart.setSize(chartSize($(pair[1]), pair[0] === "hours"));
    });
  }

  // -- one frame ------------------------------------------------------------------

  function render(frame) {
    state.frame = frame;
    $("site-name").textContent = frame.name || frame.site || "";
    renderNow(frame);
    renderDay("today", frame.today);
    renderDay("yesterday", frame.yesterday);
    setNumber("total-visits", frame.total_visits);
    ["month", "year"].forEach(function (period) {
      var counts = frame[period] || {};
      setNumber(period + "-visits", counts.visits);
      setNumber(period + "-views", counts.views);
    });
    setNumber("yesterday-views-so-far", viewsSoFarYesterday(frame));
    renderPages(frame.pages);
    renderBars("sources", fixedEntries(SOURCE_KEYS, frame.sources));
    renderBars("referrers", referrerEntries(frame.referrers));
    renderBars("devices", fixedEntries(DEVICE_KEYS, frame.devices));
    renderCharts(frame);
    $("updated").textContent = t("updated", { t: clock(frame.ts, true) });
  }

  // -- one article: the drill-down ---------------------------------------------------

  function duration(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds)) return "–";
    var m = Math.floor(seconds / 60), sec = Math.round(seconds % 60);
    var padded = (sec < 10 ? "0" : "") + sec;
    return m > 0 ? t("minutes_seconds", { m: number(m), s: padded }) : t("seconds", { s: String(sec) });
  }

  function titleOf(path) {
    var pages = (state.frame && state.frame.pages) || [];
    for (var i = 0; i < pages.length; i++) {
      if (pages[i].path === path && pages[i].title) return pages[i].title;
    }
    return path;
  }

  function drillChartData(body) {
    // Every minute of the hour, with 0 where nobody read (the store leaves those out).
    var points = new Map();
    (body.minutes || []).forEach(function (p) { points.set(p[0], p); });
    var end = Math.floor((state.frame && state.frame.ts ? state.frame.ts : Date.now() / 1000) / 60) * 60;
    var last = (body.minutes || []).length ? body.minutes[body.minutes.length - 1][0] : end;
    end = Math.max(end, last);
    var xs = [], readers = [], engaged = [];
    for (var ts = end - 59 * 60; ts <= end; ts += 60) {
      var p = points.get(ts);
      xs.push(ts);
      readers.push(p ? p[1] : 0);
      engaged.push(p ? p[2] : 0);
    }
    return [xs, readers, engaged];
  }

  function renderDrillChart(body) {
    var data = drillChartData(body);
    if (typeof uPlot === "undefined") return;
    if (state.drill.chart) { state.drill.chart.setData(data); return; }
    var el = $("drill-chart");
    state.drill.chart = new uPlot({
      width: Math.max(200, el.clientWidth),
      height: Math.max(140, el.clientHeight || 200) - 30,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), state.timezone); },
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: function (u, min, max) { return [0, Math.max(5, Math.ceil(max * 1.15))]; } } },
      series: [
        {},
        { label: t("readers"), stroke: COLORS.online, width: 2, fill: "rgba(79,195,247,0.18)" },
        { label: t("engaged_short"), stroke: COLORS.engaged, width: 2 },
      ],
      axes: [axis({ space: 70, values: function (u, splits) { return splits.map(function (ts) { return clock(ts); }); } }), countAxis()],
    }, data, el);
  }

  function renderDrill(body) {
    state.drill.data = body;
    $("drill-title").textContent = body.title || titleOf(body.path);
    var link = $("drill-link");
    var base = siteUrl();
    link.textContent = body.path + (base ? "  " + t("open_page") : "");
    if (base && body.path.charAt(0) === "/" && body.path.charAt(1) !== "/") link.href = base + body.path;
    else link.removeAttribute("href");
    setNumber("drill-readers", body.readers);
    setNumber("drill-views", body.views);
    var engagedTime = $("drill-engaged-time");
    engagedTime.textContent = duration(body.engaged_seconds);
    engagedTime.dataset.value = String(body.engaged_seconds);
    renderBars("drill-sources", fixedEntries(SOURCE_KEYS, body.sources));
    renderBars("drill-devices", fixedEntries(DEVICE_KEYS, body.devices));
    renderBars("drill-referrers", referrerEntries(body.referrers));
    var list = document.createDocumentFragment();
    (body.internal || []).forEach(function (item) {
      var li = document.createElement("li");
      li.dataset.path = item.path;
      li.dataset.value = String(item.views);
      var name = document.createElement("span");
      name.className = "from";
      name.textContent = titleOf(item.path);
      name.title = item.path;
      var count = document.createElement("span");
      count.className = "count";
      count.textContent = number(item.views);
      li.appendChild(name);
      li.appendChild(count);
      list.appendChild(li);
    });
    if (!(body.internal || []).length) {
      var none = document.createElement("li");
      none.className = "empty";
      none.textContent = t("none");
      list.appendChild(none);
    }
    $("drill-internal").replaceChildren(list);
    renderDrillChart(body);
  }

  function loadDrill() {
    var site = state.site, path = state.drill.path;
    if (!site || !path) return;
    var url = "/dashboard/api/sites/" + encodeURIComponent(site) + "/pages?path=" + encodeURIComponent(path);
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) { toLogin(); return null; }
        if (response.status === 404) return { path: path, title: titleOf(path), readers: 0, minutes: [], views: 0, engaged_seconds: 0 };
        return response.ok ? response.json() : null;
      })
      .then(function (body) {
        if (body && state.site === site && state.drill.path === path) renderDrill(body);
      }, function () { /* kept as shown; the next round tries again */ });
  }

  function markSelected() {
    document.querySelectorAll("#pages tr[data-path]").forEach(function (row) {
      if (row.dataset.path === state.drill.path) row.setAttribute("aria-selected", "true");
      else row.removeAttribute("aria-selected");
    });
  }

  function openDrill(path) {
    if (state.drill.path !== path && state.drill.chart) { state.drill.chart.destroy(); state.drill.chart = null; }
    state.drill.path = path;
    $("drill-title").textContent = titleOf(path);
    var wasHidden = $("drill").hidden;
    $("drill").hidden = false;
    if (wasHidden) state.drill.returnTo = document.activeElement;
    $("drill-close").focus({ preventScroll: true });
    markSelected();
    clearInterval(state.drill.timer);
    state.drill.timer = setInterval(loadDrill, DRILL_EVERY_MS);
    loadDrill();
  }

  function closeDrill() {
    clearInterval(state.drill.timer);
    if (state.drill.chart) { state.drill.chart.destroy(); state.drill.chart = null; }
    state.drill.path = null;
    state.drill.data = null;
    $("drill").hidden = true;
    markSelected();
    // Keyboard users land back on the article they opened.
    var back = state.drill.returnTo;
    state.drill.returnTo = null;
    if (back && document.contains(back)) back.focus({ preventScroll: true });
  }

  // A click on an article opens its detail here; with a modifier key (or the
  // middle button) its link opens the article on the portal as links do.
  function onPagesClick(event) {
    var row = event.target.closest("tr[data-path]");
    if (!row) return;
    if (event.target.closest("a") && (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0)) return;
    event.preventDefault();
    openDrill(row.dataset.path);
  }

  // -- wall mode ----------------------------------------------------------------------

  function isWall() { return document.documentElement.classList.contains("wall"); }

  function setWall(on) {
    document.documentElement.classList.toggle("wall", on);
    $("wall-toggle").setAttribute("aria-pressed", String(on));
    var params = new URLSearchParams(location.search);
    if (on) params.set("wall", "1"); else params.delete("wall");
    var query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    resizeCharts();
  }

  // -- connection -----------------------------------------------------------------

  function setStatus(name) {
    // Stale numbers are dimmed by the style sheet while the link is down.
    document.documentElement.dataset.conn = name;
    var status = $("status");
    status.dataset.state = name;
    var text = $("status-text");
    text.dataset.i18n = name === "live" ? "live" : name === "offline" ? "offline" : "connecting";
    text.textContent = t(text.dataset.i18n);
  }

  function toLogin() {
    var next = "/dashboard/" + (state.site ? "?site=" + encodeURIComponent(state.site) : "");
    var params = new URLSearchParams({ next: next, expired: "1", lang: state.lang });
    if (state.site) params.set("site", state.site);
    location.assign("/dashboard/login?" + params.toString());
  }

  function loadSession() {
    return fetch("/dashboard/api/session", { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) { toLogin(); return null; }
        if (!response.ok) throw new Error("session " + response.status);
        return response.json();
      });
  }

  function scheduleReconnect() {
    var delay = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, state.retries));
    state.retries += 1;
    delay = delay / 2 + Math.random() * (delay / 2);
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(function () {
      // A refused handshake looks like any other close: ask whether the session still holds.
      loadSession().then(function (session) {
        if (!session) return;
        if (!state.site) adoptSession(session);
        if (state.site) connect();
      }, scheduleReconnect);
    }, delay);
  }

  function connect() {
    clearTimeout(state.retryTimer);
    if (state.ws) { state.ws.onclose = null; state.ws.close(); }
    setStatus("connecting");
    $("history-link").href = "/dashboard/" + encodeURIComponent(state.site) + "/history";
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var ws = new WebSocket(scheme + "//" + location.host + "/dashboard/ws?site=" + encodeURIComponent(state.site));
    state.ws = ws;
    ws.onopen = function () { state.retries = 0; setStatus("live"); };
    ws.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame && frame.type === "dashboard" && frame.site === state.site) render(frame);
    };
    ws.onclose = function (event) {
      if (state.ws !== ws) return;
      state.ws = null;
      setStatus("offline");
      if (event.code === SESSION_ENDED) { toLogin(); return; }
      scheduleReconnect();
    };
  }

  // -- sites ----------------------------------------------------------------------

  function chooseSite(sites) {
    var ids = sites.map(function (s) { return s.id; });
    var asked = new URLSearchParams(location.search).get("site");
    if (asked && ids.indexOf(asked) >= 0) return asked;
    var saved = storageGet(SITE_KEY);
    if (saved && ids.indexOf(saved) >= 0) return saved;
    return ids.length ? ids[0] : null;
  }

  function fillPicker() {
    var picker = $("site-picker");
    var options = document.createDocumentFragment();
    state.sites.forEach(function (site) {
      var option = document.createElement("option");
      option.value = site.id;
      option.textContent = site.name + " (" + site.id + ")";
      option.selected = site.id === state.site;
      options.appendChild(option);
    });
    picker.replaceChildren(options);
    $("site-picker-label").hidden = state.sites.length < 2;
  }

  function switchSite(siteId) {
    state.site = siteId;
    storageSet(SITE_KEY, siteId);
    var params = new URLSearchParams(location.search);
    params.set("site", siteId);
    history.replaceState(null, "", location.pathname + "?" + params.toString());
    state.frame = null;
    state.history = null;
    closeDrill();
    dropCharts();
    state.retries = 0;
    connect();
    loadHistory();
  }

  function adoptSession(session) {
    state.sites = session.sites || [];
    state.timezone = session.timezone || state.timezone;
    state.site = chooseSite(state.sites);
    if (state.site) storageSet(SITE_KEY, state.site);
    fillPicker();
  }

  function start() {
    state.lang = chooseLang();
    applyLanguage();
    $("lang-toggle").addEventListener("click", function () {
      state.lang = state.lang === "vi" ? "en" : "vi";
      storageSet(LANG_KEY, state.lang);
      var params = new URLSearchParams(location.search);
      params.delete("lang");
      var query = params.toString();
      history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
      applyLanguage();
      dropCharts();
      if (state.frame) render(state.frame);
      if (state.drill.chart) { state.drill.chart.destroy(); state.drill.chart = null; }
      if (state.drill.data) renderDrill(state.drill.data);
    });
    var fullscreen = $("fullscreen");
    if (document.fullscreenEnabled) {
      fullscreen.addEventListener("click", function () {
        if (document.fullscreenElement) document.exitFullscreen();
        else document.documentElement.requestFullscreen().catch(function () { /* refused */ });
      });
    } else {
      fullscreen.hidden = true;
    }
    document.querySelectorAll(".range button").forEach(function (button) {
      button.addEventListener("click", function () { setRange(Number(button.dataset.minutes)); });
    });
    $("site-picker").addEventListener("change", function (event) { switchSite(event.target.value); });
    $("pages").addEventListener("click", onPagesClick);
    $("pages").addEventListener("keydown", function (event) {
      var row = event.target.closest("tr[data-path]");
      if (row && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); openDrill(row.dataset.path); }
    });
    $("drill-close").addEventListener("click", closeDrill);
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && state.drill.path) closeDrill();
    });
    $("wall-toggle").addEventListener("click", function () { setWall(!isWall()); });
    window.addEventListener("resize", resizeCharts);
    loadSession().then(function (session) {
      if (!session) return;
      adoptSession(session);
      if (state.site) connect();
    }, function () { setStatus("offline"); scheduleReconnect(); });
  }

  // For people and tests inspecting a running dashboard: what it shows, read-only.
  window.PortalPulseDashboard = {
    status: function () {
      var minutes = state.charts.minutes, hours = state.charts.hours;
      return {
        site: state.site,
        lang: state.lang,
        connected: !!state.ws && state.ws.readyState === WebSocket.OPEN,
        online: state.frame ? state.frame.online : null,
        range: state.range,
        minutes: minutes ? minutes.data[0].map(function (x, i) { return [x, minutes.data[1][i]]; }) : null,
        hours: hours ? { today: hours.data[1].slice(), yesterday: hours.data[2].slice() } : null,
        // The labels each chart's count axis shows (uPlot draws them on a canvas).
        axes: {
          minutes: minutes && minutes.axes[1]._values ? minutes.axes[1]._values.slice() : null,
          hours: hours && hours.axes[1]._values ? hours.axes[1]._values.slice() : null,
        },
        drill: state.drill.chart ? {
          path: state.drill.path,
          readers: state.drill.chart.data[1].slice(),
          engaged: state.drill.chart.data[2].slice(),
        } : null,
      };
    },
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
