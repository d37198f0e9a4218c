/* Loaded last: marks the nav tab of this page, reads the application's state, renders
 * the page, and does it again every two seconds while the application has not completed.
 * Once it has (or on the history list, once no application is incomplete), the page
 * stops polling. The state of the page is on <html> for tests: data-ui-state ("ready"
 * after the first render, "error" if it never rendered), data-renders, data-polling. */
(function () {
  "use strict";
  var SC = window.SC, ctx = SC.ctx, el = SC.dom.el;
  var root = document.documentElement;
  var POLL_MS = 2000, GIVE_UP_AFTER = 3;
  var TAB = {jobs: "jobs", job: "jobs", stages: "stages", stage: "stages", storage: "storage", rdd: "storage",
    environment: "environment", executors: "executors"};
  var main = document.getElementById("content");
  var problem = document.getElementById("problem");
  var liveNote = document.getElementById("live");
  var renders = 0, failures = 0, timer = null, busy = false, redraw = false;

  document.querySelectorAll("nav.tabs a").forEach(function (a) {
    if (a.getAttribute("data-tab") === TAB[ctx.page]) a.classList.add("active");
  });
  // On the history server the brand leads back to the list of applications.
  if (ctx.page === "history" || ctx.uiRoot.indexOf("/history/") === 0) {
    document.querySelector(".brand").setAttribute("href", "/");
    if (ctx.page !== "history") {
      document.querySelector("nav.tabs").appendChild(el("a", {href: "/", class: "tab-history"}, "All applications"));
    }
  }

  /* Redrawing replaces the page's content: keep where its scrolling frames were scrolled
   * (a wide task table, a large DAG), keyed by the id of the table inside, and leave the
   * page alone while the reader has text selected in it (copying a traceback). */
  function frameKey(frame) {
    var inner = frame.querySelector("[id]");
    return inner ? inner.id : frame.className;
  }

  function scrollPositions() {
    var saved = {};
    main.querySelectorAll(".table-wrap, .dag-frame").forEach(function (f) {
      if (f.scrollLeft || f.scrollTop) saved[frameKey(f)] = [f.scrollLeft, f.scrollTop];
    });
    return saved;
  }

  function restoreScroll(saved) {
    main.querySelectorAll(".table-wrap, .dag-frame").forEach(function (f) {
      var s = saved[frameKey(f)];
      if (s) { f.scrollLeft = s[0]; f.scrollTop = s[1]; }
    });
  }

  function readerIsSelecting() {
    var sel = window.getSelection();
    return !!(sel && !sel.isCollapsed && sel.anchorNode && main.contains(sel.anchorNode));
  }

  function completed(app) {
    return !!(app && app.attempts && app.attempts.length && app.attempts[0].completed);
  }

  function showApp(app) {
    var name = document.getElementById("app-name");
    name.textContent = "";
    name.appendChild(el("span", {class: "app-title", title: app.id}, app.name || app.id));
    name.appendChild(el("span", {class: "muted"}, " application UI"));
  }

  function setLive(text, cls) {
    liveNote.textContent = text;
    liveNote.className = "live " + cls;
  }

  function showProblem(text) {
    problem.textContent = text;
    problem.hidden = !text;
  }

  async function findApp() {
    var apps = await SC.api.getJSON(ctx.apiRoot + "/applications");
    var app = apps.filter(function (a) { return a.id === ctx.appId; })[0];
    if (!app) throw new SC.api.HttpError(ctx.apiRoot + "/applications", 404, "no application " + ctx.appId + " here");
    return app;
  }

  async function tick() {
    timer = null;
    if (busy) { redraw = true; return; }  // drawn again as soon as the current draw ends
    busy = true;
    redraw = false;
    var again = false;
    var began = Date.now();
    try {
      var render = SC.pages[ctx.page];
      if (!render) throw new Error("no page named " + ctx.page);
      var app = null;
      if (ctx.page !== "history") {
        app = await findApp();
        showApp(app);
      }
      SC.keepPolling = false;
      var node = await render(app);
      if (!renders || !readerIsSelecting()) {
        var scrolled = scrollPositions();
        main.replaceChildren(node);
        restoreScroll(scrolled);
      }
      renders += 1;
      failures = 0;
      showProblem("");
      root.setAttribute("data-ui-state", "ready");
      root.setAttribute("data-renders", String(renders));
      again = app ? !completed(app) : SC.keepPolling;
      if (!again) setLive(app ? "completed" : "up to date", "done");
      else setLive("live · refreshing every " + POLL_MS / 1000 + " s", "running");
    } catch (e) {
      if (e instanceof SC.api.HttpError) {
        // No answer or a server error may pass (a restart, a busy driver): try again a few
        // times. A 4xx answer (no such job) will not change by asking again.
        failures += 1;
        SC.recordFetchError(e.message);
        var transient = e.status === 0 || e.status >= 500;
        again = transient && failures < GIVE_UP_AFTER;
        if (e.status === 0) {
          showProblem("No answer from the server" + (again ? "; trying again." : ": the application may have ended."));
        } else if (e.status === 404) {
          showProblem("Not found: " + (e.reason || e.url) + ".");
        } else {
          showProblem("The server answered " + e.status + (e.reason ? ": " + e.reason : "") + (again ? "; trying again." : ""));
        }
        if (!again) setLive("stopped refreshing", "stopped");
      } else {
        SC.recordError(e);
        showProblem("This page could not be drawn: " + (e && e.message ? e.message : e));
        setLive("stopped refreshing", "stopped");
      }
      if (!renders) root.setAttribute("data-ui-state", "error");
    } finally {
      busy = false;
    }
    root.setAttribute("data-polling", again ? "on" : "stopped");
    // A page that took long to fetch and draw (a stage of many thousand tasks) asks less
    // often, so a browser tab left open never keeps the driver busy.
    if (redraw) timer = setTimeout(tick, 0);
    else if (again) timer = setTimeout(tick, Math.max(POLL_MS, 4 * (Date.now() - began)));
  }

  /** Render now (after a pager or sort change), then go on polling as before. */
  SC.refreshNow = function () {
    if (timer) { clearTimeout(timer); timer = null; }
    tick();
  };

  tick();
})();
