// attnrec web page: live updates without a page load. No framework, no inline code (the CSP forbids it).
// Forms and links marked data-live are sent with fetch; the answer's <main> replaces this page's <main>,
// the address bar follows, and focus moves to the status line so keyboard and screen-reader users hear it.
// Without JavaScript every form and link still works as a plain request.
(function () {
  "use strict";

  function swap(html, url, push) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.getElementById("main");
    var main = document.getElementById("main");
    if (!fresh || !main) { window.location.assign(url); return; }
    main.replaceWith(fresh);
    document.title = doc.title;
    if (push) { window.history.pushState({ live: true }, "", url); }
    var status = document.getElementById("status");
    var target = status && status.textContent.trim() ? status : fresh.querySelector("h1");
    if (target) {
      if (!target.hasAttribute("tabindex")) { target.setAttribute("tabindex", "-1"); }
      target.focus();
    }
    document.dispatchEvent(new CustomEvent("attnrec:updated", { detail: { url: url } }));
  }

  function load(url, options, push) {
    document.body.setAttribute("aria-busy", "true");
    return fetch(url, Object.assign({ credentials: "same-origin", redirect: "follow" }, options))
      .then(function (response) {
        return response.text().then(function (text) { swap(text, response.url || url, push); });
      })
      .catch(function () { window.location.assign(url); })
      .finally(function () { document.body.removeAttribute("aria-busy"); });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-live")) { return; }
    if ((form.getAttribute("method") || "get").toLowerCase() !== "post") { return; }
    event.preventDefault();
    var button = form.querySelector("button");
    if (button) { button.disabled = true; }
    load(form.action, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(new FormData(form)).toString()
    }, true);
  });

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) { return; }
    var link = event.target instanceof Element ? event.target.closest("a[data-live]") : null;
    if (!link) { return; }
    event.preventDefault();
    load(link.href, { method: "GET" }, true);
  });

  window.addEventListener("popstate", function () { load(window.location.href, { method: "GET" }, false); });

  // Reasons arrive after the page: each list marked data-reasons names the /web/reasons fragment of its items and
  // the history version it was computed for. The fragment's elements are matched to the list's items by item id
  // (compared as strings, never put into a selector). A 409 means the history or the model changed since the list
  // was drawn: its reasons are not attached; the page is redrawn once instead. Without JavaScript the
  // "Show the reasons" link above each list loads the page with the reasons inline.
  var refreshes = 0;

  function fillReasons(list, fragment) {
    var items = {};
    Array.prototype.forEach.call(list.children, function (li) {
      if (li.hasAttribute("data-item")) { items[li.getAttribute("data-item")] = li; }
    });
    Array.prototype.forEach.call(fragment.querySelectorAll("[data-reasons-for]"), function (el) {
      var id = el.getAttribute("data-reasons-for");
      var li = Object.prototype.hasOwnProperty.call(items, id) ? items[id] : null;
      if (!li) { return; }
      var old = li.querySelector(".because");
      if (old) { old.remove(); }
      while (el.firstChild) { li.appendChild(el.firstChild); }
    });
  }

  function loadReasons(list) {
    var url = list.getAttribute("data-reasons");
    var version = list.getAttribute("data-version") || "";
    var note = list.previousElementSibling && list.previousElementSibling.hasAttribute("data-reasons-note")
      ? list.previousElementSibling : null;
    list.removeAttribute("data-reasons");  // once per drawn list
    list.setAttribute("aria-busy", "true");
    return fetch(url, { credentials: "same-origin", redirect: "follow" })
      .then(function (response) {
        return response.text().then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fragment = doc.getElementById("reasons");
          if (!fragment) { return; }  // an error page (signed out, rate limit): the link stays
          if (response.status === 409 || fragment.hasAttribute("data-stale")) {
            if (refreshes < 1 && document.body.contains(list)) {
              refreshes += 1;
              load(window.location.href, { method: "GET" }, false);
            }
            return;
          }
          if (!response.ok || (fragment.getAttribute("data-version") || "") !== version) { return; }
          if (!document.body.contains(list)) { return; }  // the page moved on meanwhile
          fillReasons(list, fragment);
          list.setAttribute("data-reasons-loaded", "");
          refreshes = 0;
          if (note) { note.hidden = true; }
        });
      })
      .catch(function () { /* the "Show the reasons" link stays */ })
      .finally(function () { list.removeAttribute("aria-busy"); });
  }

  function loadAllReasons() {
    Array.prototype.forEach.call(document.querySelectorAll("ol[data-reasons]"), loadReasons);
  }

  document.addEventListener("attnrec:updated", loadAllReasons);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", loadAllReasons);
  } else {
    loadAllReasons();
  }
})();
