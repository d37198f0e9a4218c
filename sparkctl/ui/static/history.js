/* The history server's first page: the applications it found in the event log
 * directory, completed and incomplete, each linking to its pages under /history/APP. */
(function () {
  "use strict";
  var SC = window.SC;
  SC.pages = SC.pages || {};

  function appTable(id, apps) {
    var dom = SC.dom, fmt = SC.fmt;
    function att(a) { return a.attempts && a.attempts.length ? a.attempts[0] : {}; }
    function time(field) {
      return function (a) { var d = fmt.parseDate(att(a)[field]); return d ? d.getTime() : null; };
    }
    return dom.table({id: id, rows: apps, empty: "No applications.",
      rowAttrs: function (a) { return {"data-app-id": a.id}; },
      columns: [
        {key: "id", title: "App ID", value: function (a) { return a.id; },
          cell: function (a) { return dom.link("/history/" + encodeURIComponent(a.id) + "/jobs/", a.id, {class: "app-link"}); }},
        {key: "name", title: "App Name", value: function (a) { return a.name; }},
        {key: "started", title: "Started", value: time("startTime"), cell: function (a) { return fmt.date(att(a).startTime); }},
        {key: "completed", title: "Completed", value: time("endTime"), cell: function (a) { return att(a).completed ? fmt.date(att(a).endTime) : "–"; }},
        {key: "duration", title: "Duration", num: true, value: function (a) { return att(a).duration || 0; },
          cell: function (a) { return fmt.duration(att(a).duration || 0); }},
        {key: "user", title: "Spark User", value: function (a) { return att(a).sparkUser || ""; }},
        {key: "updated", title: "Last Updated", value: time("lastUpdated"), cell: function (a) { return fmt.date(att(a).lastUpdated); }}
      ]});
  }

  SC.pages.history = async function () {
    var dom = SC.dom, el = dom.el;
    var apps = await SC.api.getJSON(SC.ctx.apiRoot + "/applications");
    var done = apps.filter(function (a) { return a.attempts && a.attempts.length && a.attempts[0].completed; });
    var running = apps.filter(function (a) { return done.indexOf(a) < 0; });
    SC.keepPolling = running.length > 0;
    var page = el("div", {class: "page page-history"});
    page.appendChild(el("h2", {}, "History Server"));
    page.appendChild(dom.section("completed-apps", "Completed Applications", done.length, appTable("completed-apps-table", done), true));
    page.appendChild(dom.section("incomplete-apps", "Incomplete Applications", running.length, appTable("incomplete-apps-table", running), true));
    return page;
  };
})();
