/* Loaded first, before any other script: every uncaught error, rejected promise or
 * script/style that fails to load is appended (as JSON) to <html data-js-errors>, so a
 * browser test can read it from the dumped DOM, where the console is out of reach. */
(function () {
  "use strict";
  var root = document.documentElement;

  function record(attr, message) {
    var list = [];
    try {
      list = JSON.parse(root.getAttribute(attr) || "[]");
    } catch (ignored) {
      list = [];
    }
    list.push(String(message).slice(0, 4000));
    root.setAttribute(attr, JSON.stringify(list));
  }

  window.addEventListener("error", function (ev) {
    var target = ev.target;
    if (target && target !== window && (target.src || target.href)) {
      record("data-js-errors", "failed to load " + (target.src || target.href));
      return;
    }
    var where = ev.filename ? " (" + ev.filename + ":" + ev.lineno + ")" : "";
    var stack = ev.error && ev.error.stack ? "\n" + ev.error.stack : "";
    record("data-js-errors", (ev.message || "error") + where + stack);
  }, true);

  // A script, style or attribute the Content-Security-Policy blocked: a bug of the page.
  document.addEventListener("securitypolicyviolation", function (ev) {
    record("data-js-errors", "blocked by the Content-Security-Policy (" + ev.violatedDirective + "): " +
      (ev.blockedURI || "inline") + (ev.sourceFile ? " in " + ev.sourceFile + ":" + ev.lineNumber : ""));
  });

  window.addEventListener("unhandledrejection", function (ev) {
    var r = ev.reason;
    record("data-js-errors", "unhandled rejection: " + (r && (r.stack || r.message) || r));
  });

  window.SC = window.SC || {};
  /** A bug in our own code, caught where the page keeps going. */
  window.SC.recordError = function (e) { record("data-js-errors", e && e.stack ? e.stack : e); };
  /** A request the page needed that failed (the server is gone, or answered an error). */
  window.SC.recordFetchError = function (msg) { record("data-fetch-errors", msg); };
})();
