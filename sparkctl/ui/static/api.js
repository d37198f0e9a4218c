/* The page's context (from the data attributes the server fills into page.html) and
 * its reads of Spark's REST API. The API is served at /api/v1 on both servers: the live
 * UI has one application, the history server many; page links differ only by uiRoot. */
(function () {
  "use strict";
  var body = document.body;
  var appId = body.getAttribute("data-app-id") || "";

  window.SC.ctx = {
    page: body.getAttribute("data-page") || "jobs",
    appId: appId,
    uiRoot: (body.getAttribute("data-ui-root") || "").replace(/\/+$/, ""),
    apiRoot: "/api/v1",
    appApi: "/api/v1/applications/" + encodeURIComponent(appId)
  };

  /** An HTTP answer other than 2xx: the page reports it instead of failing as a bug. */
  function HttpError(url, status, text) {
    var reason = text || "";
    try {
      reason = JSON.parse(text).error || reason;  // the API's errors are {"error": "..."}
    } catch (ignored) { /* a plain-text answer */ }
    this.name = "HttpError";
    this.url = url;
    this.status = status;
    this.reason = String(reason).trim().slice(0, 300);
    this.message = "GET " + url + " answered " + status + (this.reason ? ": " + this.reason : "");
  }
  HttpError.prototype = Object.create(Error.prototype);

  /** GET a JSON document; with optional, a 404 is null (no tasks have reported metrics yet). */
  async function getJSON(url, optional) {
    var r;
    try {
      r = await fetch(url, {headers: {Accept: "application/json"}, cache: "no-store", credentials: "same-origin"});
    } catch (e) {
      throw new HttpError(url, 0, "no answer (" + e.message + ")");
    }
    if (!r.ok) {
      if (optional && r.status === 404) return null;
      throw new HttpError(url, r.status, await r.text().catch(function () { return ""; }));
    }
    return r.json();
  }

  /** GET a path of this application's API, e.g. app("/stages/3/0"). */
  function app(path, query, optional) {
    var q = query ? "?" + new URLSearchParams(query).toString() : "";
    return getJSON(window.SC.ctx.appApi + path + q, optional);
  }

  /** The query parameter of the page's own URL, as an integer (or fallback). */
  function param(name, fallback) {
    var v = new URLSearchParams(window.location.search).get(name);
    var n = v === null ? NaN : parseInt(v, 10);
    return isNaN(n) ? fallback : n;
  }

  window.SC.api = {getJSON: getJSON, app: app, param: param, HttpError: HttpError};
})();
