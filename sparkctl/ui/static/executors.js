/* The Executors page: every executor the application had (allexecutors), active and
 * dead, with its tasks, task time, shuffle traffic and links to its stdout and stderr. */
(function () {
  "use strict";
  var SC = window.SC;
  SC.pages = SC.pages || {};

  /** Links to an executor's logs (executorLogs: {"stdout": url, "stderr": url}). */
  SC.logLinks = function (logs) {
    var dom = SC.dom, out = [];
    var order = {stdout: 0, stderr: 1};  // as Spark lists them; any other log after these
    Object.keys(logs || {}).sort(function (a, b) {
      return ((a in order ? order[a] : 2) - (b in order ? order[b] : 2)) || (a < b ? -1 : a > b ? 1 : 0);
    }).forEach(function (name) {
      var url = dom.safeUrl(logs[name]);
      if (url) out.push(dom.link(url, name, {class: "log-link", "data-log": name}), " ");
    });
    return out.length ? out : "";
  };

  function columns() {
    var fmt = SC.fmt, dom = SC.dom;
    function num(key, title, field, f, tip) {
      return {key: key, title: title, num: true, tip: tip, value: function (e) { return e[field] || 0; },
        cell: function (e) { return (f || fmt.count)(e[field] || 0); }};
    }
    return [
      {key: "id", title: "Executor ID", value: function (e) { return e.id === "driver" ? -1 : Number(e.id); },
        cell: function (e) { return e.id; }},
      {key: "address", title: "Address", value: function (e) { return e.hostPort; }},
      {key: "status", title: "Status", value: function (e) { return e.isActive ? 0 : 1; },
        cell: function (e) {
          if (e.isActive) return dom.badge("ACTIVE");
          var dead = dom.badge("DEAD");
          if (e.removeReason) dead.setAttribute("title", "Removed: " + e.removeReason);  // why, on hover
          return dead;
        }},
      num("rdd-blocks", "RDD Blocks", "rddBlocks"),
      {key: "storage-memory", title: "Storage Memory", num: true, value: function (e) { return e.memoryUsed || 0; },
        tip: "Memory used by cached blocks / memory available for them",
        cell: function (e) { return fmt.bytes(e.memoryUsed || 0) + " / " + fmt.bytes(e.maxMemory || 0); }},
      num("disk", "Disk Used", "diskUsed", fmt.bytes),
      num("cores", "Cores", "totalCores"),
      num("active", "Active Tasks", "activeTasks"),
      num("failed", "Failed Tasks", "failedTasks"),
      num("completed", "Complete Tasks", "completedTasks"),
      num("total", "Total Tasks", "totalTasks"),
      {key: "task-time", title: "Task Time (GC Time)", num: true, value: function (e) { return e.totalDuration || 0; },
        cell: function (e) { return fmt.duration(e.totalDuration || 0) + " (" + fmt.duration(e.totalGCTime || 0) + ")"; }},
      num("input", "Input", "totalInputBytes", fmt.bytes),
      num("shuffle-read", "Shuffle Read", "totalShuffleRead", fmt.bytes),
      num("shuffle-write", "Shuffle Write", "totalShuffleWrite", fmt.bytes),
      {key: "added", title: "Added", value: function (e) { var d = fmt.parseDate(e.addTime); return d ? d.getTime() : null; },
        cell: function (e) { return fmt.date(e.addTime); }},
      {key: "logs", title: "Logs", cell: function (e) { return SC.logLinks(e.executorLogs); }}
    ];
  }

  function totals(list) {
    var t = {count: list.length, totalCores: 0, activeTasks: 0, failedTasks: 0, completedTasks: 0, totalTasks: 0,
      totalDuration: 0, totalShuffleRead: 0, totalShuffleWrite: 0, memoryUsed: 0, diskUsed: 0};
    list.forEach(function (e) { Object.keys(t).forEach(function (k) { if (k !== "count") t[k] += e[k] || 0; }); });
    return t;
  }

  SC.pages.executors = async function () {
    var dom = SC.dom, el = dom.el, fmt = SC.fmt;
    var execs = await SC.api.app("/allexecutors");
    var page = el("div", {class: "page page-executors"});
    page.appendChild(el("h2", {}, "Executors"));
    var active = execs.filter(function (e) { return e.isActive; }), dead = execs.filter(function (e) { return !e.isActive; });
    var sumCols = ["", "Executors", "Cores", "Storage Memory", "Disk Used", "Active Tasks", "Failed Tasks", "Complete Tasks",
      "Total Tasks", "Task Time", "Shuffle Read", "Shuffle Write"];
    var sumRows = [["Active", active], ["Dead", dead], ["Total", execs]].map(function (r) {
      var t = totals(r[1]);
      return el("tr", {"data-row": r[0].toLowerCase()}, el("th", {scope: "row"}, r[0]),
        [t.count, t.totalCores].map(function (v) { return el("td", {class: "num", "data-value": v}, fmt.count(v)); }),
        el("td", {class: "num"}, fmt.bytes(t.memoryUsed)), el("td", {class: "num"}, fmt.bytes(t.diskUsed)),
        [t.activeTasks, t.failedTasks, t.completedTasks, t.totalTasks].map(function (v) { return el("td", {class: "num", "data-value": v}, fmt.count(v)); }),
        el("td", {class: "num"}, fmt.duration(t.totalDuration)),
        el("td", {class: "num"}, fmt.bytes(t.totalShuffleRead)), el("td", {class: "num"}, fmt.bytes(t.totalShuffleWrite)));
    });
    page.appendChild(dom.section("executors-summary", "Summary", null, el("div", {class: "table-wrap"},
      el("table", {class: "data", id: "executor-totals"},
        el("thead", {}, el("tr", {}, sumCols.map(function (c, i) { return el("th", {class: i > 0 ? "num" : ""}, c); }))),
        el("tbody", {}, sumRows))), true));
    page.appendChild(dom.section("executors-list", "Executors", execs.length, dom.table({
      id: "executors", columns: columns(), rows: execs, empty: "No executors yet.",
      rowAttrs: function (e) { return {"data-executor-id": e.id, "data-active": e.isActive ? "true" : "false"}; }
    }), true));
    return page;
  };
})();
