// The sign-in page: follow the language the editor chose on the dashboard
// (kept in localStorage), and remember a choice made here.
"use strict";

(function () {
  var KEY = "portalpulse.dashboard.lang";
  var params = new URLSearchParams(location.search);
  var saved = null;
  try { saved = localStorage.getItem(KEY); } catch (e) { /* storage may be off */ }
  if (!params.has("lang") && (saved === "en" || saved === "vi") &&
      saved !== document.documentElement.lang) {
    params.set("lang", saved);
    location.replace(location.pathname + "?" + params.toString());
    return;
  }
  var link = document.getElementById("other-lang");
  if (link) {
    link.addEventListener("click", function () {
      try { localStorage.setItem(KEY, link.dataset.lang); } catch (e) { /* ignore */ }
    });
  }
})();
