/* The Stages page: every stage attempt, grouped by status, in Spark's order (active,
 * pending, completed, skipped, failed). The job page shows its own stages the same way. */
(function () {
  "use strict";
  var SC = window.SC;
  SC.pages = SC.pages || {};

  function stageHref(s) { return "/stages/stage/?id=" + s.stageId + "&attempt=" + (s.attemptId || 0); }

  function stageColumns(withFailure) {
    var fmt = SC.fmt, dom = SC.dom, el = dom.el;
    function bytesCol(key, title, field) {
      return {key: key, title: title, num: true, value: function (s) { return s[field] || 0; },
        cell: function (s) { return s[field] ? fmt.bytes(s[field]) : ""; }};
    }
    var cols = [
      {key: "id", title: "Stage Id", num: true, value: function (s) { return s.stageId * 1000 + (s.attemptId || 0); },
        cell: function (s) { return s.stageId + (s.attemptId ? " (retry " + s.attemptId + ")" : ""); }},
      {key: "description", title: "Description", value: function (s) { return s.description || s.name || ""; },
        cell: function (s) {
          return [dom.pageLink(stageHref(s), s.description || s.name || "stage " + s.stageId, {class: "stage-link"}),
            s.description && s.name ? el("div", {class: "muted small"}, s.name) : ""];
        }},
      {key: "submitted", title: "Submitted", value: function (s) { var d = fmt.parseDate(s.submissionTime); return d ? d.getTime() : null; },
        cell: function (s) { return fmt.date(s.submissionTime); }},
      {key: "duration", title: "Duration", num: true, value: function (s) { return fmt.span(s.submissionTime, s.completionTime); },
        cell: function (s) { return fmt.duration(fmt.span(s.submissionTime, s.completionTime)); }},
      {key: "tasks", title: "Tasks: Succeeded/Total", value: function (s) { return s.numCompleteTasks; },
        cell: function (s) {
          return dom.progress(s.numCompleteTasks, s.numTasks, {active: s.numActiveTasks, failed: s.numFailedTasks, killed: s.numKilledTasks});
        }},
      bytesCol("input", "Input", "inputBytes"),
      bytesCol("output", "Output", "outputBytes"),
      bytesCol("shuffle-read", "Shuffle Read", "shuffleReadBytes"),
      bytesCol("shuffle-write", "Shuffle Write", "shuffleWriteBytes")
    ];
    if (withFailure) {
      cols.push({key: "failure", title: "Failure Reason", value: function (s) { return s.failureReason || ""; },
        cell: function (s) { return SC.errorCell(s.failureReason, "stage-" + s.stageId + "-" + s.attemptId); }});
    }
    return cols;
  }

  var GROUPS = [
    ["ACTIVE", "active", "Active Stages"],
    ["PENDING", "pending", "Pending Stages"],
    ["COMPLETE", "completed", "Completed Stages"],
    ["SKIPPED", "skipped", "Skipped Stages"],
    ["FAILED", "failed", "Failed Stages"]
  ];

  /** Sections of stage tables, one per status that has stages; prefix keeps ids unique. */
  SC.stageTables = function (stages, prefix) {
    var dom = SC.dom, out = [];
    GROUPS.forEach(function (g) {
      var rows = stages.filter(function (s) { return s.status === g[0]; })
        .sort(function (a, b) { return b.stageId - a.stageId || b.attemptId - a.attemptId; });
      if (!rows.length && g[0] !== "COMPLETE") return;
      var id = prefix + "-" + g[1] + "-stages";
      out.push(dom.section(id, g[2], rows.length, dom.table({
        id: id + "-table", columns: stageColumns(g[0] === "FAILED"), rows: rows, empty: "No completed stages yet.",
        rowAttrs: function (s) { return {"data-stage-id": s.stageId, "data-attempt-id": s.attemptId || 0, "data-status": s.status}; }
      }), g[0] !== "SKIPPED"));
    });
    return out;
  };

  /** An error message cell: its headline, and the whole text (a traceback) when opened. */
  SC.errorCell = function (message, key) {
    var el = SC.dom.el;
    if (!message) return "";
    var text = String(message);
    var lines = text.split("\n").map(function (l) { return l.replace(/\s+$/, ""); }).filter(function (l) { return l; });
    // The line that names the exception: in a Python traceback the last "XxxError: ..."
    // line, not the "Traceback (most recent call last):" that opens it.
    var headline = lines[0] || text;
    for (var i = lines.length - 1; i >= 0; i--) {
      if (/^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failure)\b/.test(lines[i]) && !/Traceback \(most recent/.test(lines[i])) {
        headline = lines[i];
        break;
      }
    }
    if (lines.length <= 1) return el("span", {class: "error-text"}, text);
    var d = el("details", {class: "error-cell", "data-key": key},
      el("summary", {class: "error-text"}, headline.length > 160 ? headline.slice(0, 159) + "…" : headline),
      el("pre", {class: "stacktrace"}, text));
    if (SC.openErrors[key]) d.open = true;
    d.addEventListener("toggle", function () { SC.openErrors[key] = d.open; });
    return d;
  };
  SC.openErrors = {};

  SC.pages.stages = async function () {
    var dom = SC.dom, el = dom.el;
    var stages = await SC.api.app("/stages");
    var page = el("div", {class: "page page-stages"});
    page.appendChild(el("h2", {}, "Stages for All Jobs"));
    var counts = {};
    stages.forEach(function (s) { counts[s.status] = (counts[s.status] || 0) + 1; });
    page.appendChild(dom.keyValueList(GROUPS.map(function (g) { return [g[2], String(counts[g[0]] || 0)]; })));
    SC.stageTables(stages, "all").forEach(function (s) { page.appendChild(s); });
    return page;
  };
})();
