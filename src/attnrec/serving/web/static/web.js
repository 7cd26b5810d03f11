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
})();
