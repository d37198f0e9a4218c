/* A stage attempt's page: its summary, DAG, task metric quantiles (taskSummary), the
 * per-executor aggregate (the stage data's executorSummary) and its tasks (taskList,
 * paged on the server, 100 a page). */
(function () {
  "use strict";
  var SC = window.SC;
  SC.pages = SC.pages || {};
  var QUANTILES = "0.0,0.25,0.5,0.75,1.0";
  var PAGE_SIZE = 100;
  var taskView = {offset: 0, sortBy: "ID"};

  function bytesAndRecords(b, r) {
    return SC.fmt.bytes(b) + " / " + SC.fmt.count(r);
  }

  /** Whether the stage read merged slices of a push-based shuffle, or tried to (a fallback
   * counts): Spark shows the push read rows for push-enabled stages only. */
  function readMerged(stage) {
    return stage.shuffleMergedRemoteBlocksFetched || stage.shuffleMergedLocalBlocksFetched ||
      stage.shuffleMergedFetchFallbackCount || stage.shuffleCorruptMergedBlockChunks;
  }

  /** Quantile rows: {key, label, values, kind, more} (kind: "ms", "bytes" or "count"; more:
   * a second quantity shown after a slash, records or blocks). */
  function summaryRows(d, stage) {
    var rows = [];
    function add(key, label, values, kind, more) { if (values) rows.push({key: key, label: label, values: values, kind: kind, more: more}); }
    add("duration", "Duration", d.duration || d.executorRunTime, "ms");
    add("scheduler-delay", "Scheduler Delay", d.schedulerDelay, "ms");
    add("deserialize", "Task Deserialization Time", d.executorDeserializeTime, "ms");
    add("gc", "GC Time", d.jvmGcTime, "ms");
    add("result-serialize", "Result Serialization Time", d.resultSerializationTime, "ms");
    add("getting-result", "Getting Result Time", d.gettingResultTime, "ms");
    add("peak-memory", "Peak Execution Memory", d.peakExecutionMemory, "bytes");
    add("result-size", "Result Size", d.resultSize, "bytes");
    if ((stage.inputBytes || stage.inputRecords) && d.inputMetrics) {
      add("input", "Input Size / Records", d.inputMetrics.bytesRead, "bytes", d.inputMetrics.recordsRead);
    }
    if ((stage.outputBytes || stage.outputRecords) && d.outputMetrics) {
      add("output", "Output Size / Records", d.outputMetrics.bytesWritten, "bytes", d.outputMetrics.recordsWritten);
    }
    var sr = d.shuffleReadMetrics;
    if ((stage.shuffleReadBytes || stage.shuffleReadRecords) && sr) {
      add("shuffle-read", "Shuffle Read Size / Records", sr.readBytes, "bytes", sr.readRecords);
      add("shuffle-remote", "Shuffle Remote Reads", sr.remoteBytesRead, "bytes");
      add("shuffle-wait", "Shuffle Read Fetch Wait Time", sr.fetchWaitTime, "ms");
      add("shuffle-remote-reqs", "Shuffle Remote Requests Duration", sr.remoteReqsDuration, "ms");
      var push = sr.shufflePushReadMetricsDist;
      if (push && readMerged(stage)) {
        add("push-remote-reads", "Merged Remote Reads Size / Blocks", push.remoteMergedBytesRead, "bytes",
          push.remoteMergedBlocksFetched);
        add("push-local-reads", "Merged Local Reads Size / Blocks", push.localMergedBytesRead, "bytes",
          push.localMergedBlocksFetched);
        add("push-remote-chunks", "Merged Remote Chunks Fetched", push.remoteMergedChunksFetched, "count");
        add("push-local-chunks", "Merged Local Chunks Fetched", push.localMergedChunksFetched, "count");
        add("push-remote-reqs", "Merged Remote Requests Duration", push.remoteMergedReqsDuration, "ms");
        add("push-fallback", "Merged Fetch Fallback Count", push.mergedFetchFallbackCount, "count");
        add("push-corrupt", "Corrupt Merged Block Chunks", push.corruptMergedBlockChunks, "count");
      }
    }
    var sw = d.shuffleWriteMetrics;
    if ((stage.shuffleWriteBytes || stage.shuffleWriteRecords) && sw) {
      add("shuffle-write", "Shuffle Write Size / Records", sw.writeBytes, "bytes", sw.writeRecords);
      // Spark measures shuffle write time in nanoseconds
      add("shuffle-write-time", "Shuffle Write Time", sw.writeTime && sw.writeTime.map(function (ns) { return ns / 1e6; }), "ms");
    }
    add("spill-memory", "Spill (Memory)", d.memoryBytesSpilled, "bytes");
    add("spill-disk", "Spill (Disk)", d.diskBytesSpilled, "bytes");
    return rows;
  }

  function summaryTable(d, stage) {
    var el = SC.dom.el, fmt = SC.fmt;
    if (!d) return el("p", {class: "muted"}, "No task has reported its metrics yet.");
    var heads = ["Min", "25th percentile", "Median", "75th percentile", "Max"];
    var qs = d.quantiles || [0, 0.25, 0.5, 0.75, 1];
    var body = summaryRows(d, stage).map(function (r) {
      return el("tr", {"data-metric": r.key}, el("th", {scope: "row"}, r.label), qs.map(function (_q, i) {
        var v = r.values[i];
        var text = r.kind === "ms" ? fmt.duration(v) : r.kind === "count" ? fmt.count(v) : fmt.bytes(v);
        if (r.more) text += " / " + fmt.count(Math.round(r.more[i]));
        return el("td", {class: "num", "data-value": v}, text);
      }));
    });
    return el("div", {class: "table-wrap"}, el("table", {class: "data quantiles", id: "task-summary"},
      el("thead", {}, el("tr", {}, el("th", {}, "Metric"), heads.map(function (h) { return el("th", {class: "num"}, h); }))),
      el("tbody", {}, body)));
  }

  function executorTable(summary, hosts, stage) {
    var fmt = SC.fmt, dom = SC.dom;
    var rows = Object.keys(summary || {}).map(function (id) { return Object.assign({id: id}, summary[id]); });
    function num(key, title, field, f) {
      return {key: key, title: title, num: true, value: function (r) { return r[field] || 0; },
        cell: function (r) { return (f || fmt.count)(r[field] || 0); }};
    }
    // as the task table: the input, shuffle and spill columns only where the stage has them
    var has = {
      input: stage.inputBytes || stage.inputRecords, output: stage.outputBytes || stage.outputRecords,
      "shuffle-read": stage.shuffleReadBytes || stage.shuffleReadRecords,
      "shuffle-write": stage.shuffleWriteBytes || stage.shuffleWriteRecords,
      "spill-memory": stage.memoryBytesSpilled || stage.diskBytesSpilled,
      "spill-disk": stage.memoryBytesSpilled || stage.diskBytesSpilled
    };
    return dom.table({id: "stage-executors", rows: rows, empty: "No executor has run a task of this stage yet.",
      rowAttrs: function (r) { return {"data-executor-id": r.id}; },
      columns: [
        {key: "executor", title: "Executor ID", value: function (r) { return r.id; }},
        {key: "address", title: "Address", value: function (r) { return hosts[r.id] ? hosts[r.id].hostPort : ""; }},
        {key: "logs", title: "Logs", cell: function (r) { return SC.logLinks(hosts[r.id] && hosts[r.id].executorLogs); }},
        num("task-time", "Task Time", "taskTime", fmt.duration),
        {key: "total", title: "Total Tasks", num: true, value: function (r) { return (r.succeededTasks || 0) + (r.failedTasks || 0) + (r.killedTasks || 0); }},
        num("failed", "Failed Tasks", "failedTasks"),
        num("killed", "Killed Tasks", "killedTasks"),
        num("succeeded", "Succeeded Tasks", "succeededTasks"),
        {key: "input", title: "Input Size / Records", num: true, value: function (r) { return r.inputBytes || 0; },
          cell: function (r) { return bytesAndRecords(r.inputBytes, r.inputRecords); }},
        {key: "output", title: "Output Size / Records", num: true, value: function (r) { return r.outputBytes || 0; },
          cell: function (r) { return bytesAndRecords(r.outputBytes, r.outputRecords); }},
        {key: "shuffle-read", title: "Shuffle Read Size / Records", num: true, value: function (r) { return r.shuffleRead || 0; },
          cell: function (r) { return bytesAndRecords(r.shuffleRead, r.shuffleReadRecords); }},
        {key: "shuffle-write", title: "Shuffle Write Size / Records", num: true, value: function (r) { return r.shuffleWrite || 0; },
          cell: function (r) { return bytesAndRecords(r.shuffleWrite, r.shuffleWriteRecords); }},
        num("spill-memory", "Spill (Memory)", "memoryBytesSpilled", fmt.bytes),
        num("spill-disk", "Spill (Disk)", "diskBytesSpilled", fmt.bytes)
      ].filter(function (c) { return !(c.key in has) || has[c.key]; })});
  }

  function shuffleRead(m) {
    var s = m && m.shuffleReadMetrics;
    return s ? (s.localBytesRead || 0) + (s.remoteBytesRead || 0) : null;
  }

  function taskTable(tasks, stage, hosts) {
    var fmt = SC.fmt, dom = SC.dom;
    function metric(f) { return function (t) { return t.taskMetrics ? f(t.taskMetrics) : null; }; }
    var cols = [
      {key: "index", title: "Index", num: true, value: function (t) { return t.index; }},
      {key: "task-id", title: "Task ID", num: true, value: function (t) { return t.taskId; }},
      {key: "attempt", title: "Attempt", num: true, value: function (t) { return t.attempt; }},
      {key: "status", title: "Status", value: function (t) { return t.status; },
        cell: function (t) { return [dom.badge(t.status), t.speculative ? dom.el("span", {class: "muted small"}, " speculative") : ""]; }},
      {key: "locality", title: "Locality", value: function (t) { return t.taskLocality; }},
      {key: "executor", title: "Executor ID", value: function (t) { return t.executorId; }},
      {key: "host", title: "Host", value: function (t) { return t.host; }},
      {key: "logs", title: "Logs", cell: function (t) {
        return SC.logLinks(t.executorLogs || (hosts[t.executorId] && hosts[t.executorId].executorLogs));
      }},
      {key: "launch", title: "Launch Time", value: function (t) { var d = fmt.parseDate(t.launchTime); return d ? d.getTime() : null; },
        cell: function (t) { return fmt.date(t.launchTime); }},
      {key: "duration", title: "Duration", num: true, value: function (t) { return t.duration === undefined ? null : t.duration; },
        cell: function (t) { return fmt.duration(t.duration); }},
      {key: "scheduler-delay", title: "Scheduler Delay", num: true, value: function (t) { return t.schedulerDelay === undefined ? null : t.schedulerDelay; },
        cell: function (t) { return fmt.duration(t.schedulerDelay); }},
      {key: "gc", title: "GC Time", num: true, value: metric(function (m) { return m.jvmGcTime; }),
        cell: function (t) { return t.taskMetrics ? fmt.duration(t.taskMetrics.jvmGcTime) : "–"; }},
      {key: "result-size", title: "Result Size", num: true, value: metric(function (m) { return m.resultSize; }),
        cell: function (t) { return t.taskMetrics ? fmt.bytes(t.taskMetrics.resultSize) : "–"; }}
    ];
    if (stage.shuffleReadBytes || stage.shuffleReadRecords) {
      cols.push({key: "shuffle-read", title: "Shuffle Read Size / Records", num: true, value: metric(shuffleRead),
        cell: function (t) { return t.taskMetrics ? bytesAndRecords(shuffleRead(t.taskMetrics), t.taskMetrics.shuffleReadMetrics.recordsRead) : "–"; }});
    }
    if (stage.shuffleWriteBytes || stage.shuffleWriteRecords) {
      cols.push({key: "shuffle-write", title: "Shuffle Write Size / Records", num: true,
        value: metric(function (m) { return m.shuffleWriteMetrics.bytesWritten; }),
        cell: function (t) { return t.taskMetrics ? bytesAndRecords(t.taskMetrics.shuffleWriteMetrics.bytesWritten, t.taskMetrics.shuffleWriteMetrics.recordsWritten) : "–"; }});
    }
    if (stage.memoryBytesSpilled || stage.diskBytesSpilled) {
      cols.push({key: "spill-memory", title: "Spill (Memory)", num: true, value: metric(function (m) { return m.memoryBytesSpilled; }),
        cell: function (t) { return t.taskMetrics ? fmt.bytes(t.taskMetrics.memoryBytesSpilled) : "–"; }});
      cols.push({key: "spill-disk", title: "Spill (Disk)", num: true, value: metric(function (m) { return m.diskBytesSpilled; }),
        cell: function (t) { return t.taskMetrics ? fmt.bytes(t.taskMetrics.diskBytesSpilled) : "–"; }});
    }
    // A failed attempt's error goes in a full-width row below it: a traceback needs the room.
    return dom.table({id: "tasks", columns: cols, rows: tasks, empty: "No tasks have started yet.",
      rowAttrs: function (t) { return {"data-task-id": t.taskId, "data-status": t.status}; },
      detailRow: function (t) {
        return t.errorMessage ? SC.dom.el("div", {class: "task-error"}, SC.dom.el("span", {class: "muted"}, "Error: "),
          SC.errorCell(t.errorMessage, "task-" + t.taskId)) : null;
      }});
  }

  function pager(count, stage) {
    var el = SC.dom.el;
    var first = count ? taskView.offset + 1 : 0, last = taskView.offset + count;
    var prev = el("button", {type: "button", disabled: taskView.offset === 0}, "‹ Previous");
    var next = el("button", {type: "button", disabled: count < PAGE_SIZE}, "Next ›");
    prev.addEventListener("click", function () { taskView.offset = Math.max(0, taskView.offset - PAGE_SIZE); SC.refreshNow(); });
    next.addEventListener("click", function () { taskView.offset += PAGE_SIZE; SC.refreshNow(); });
    var sort = el("select", {"aria-label": "Order tasks by"},
      [["ID", "task index"], ["runtime", "duration, shortest first"], ["-runtime", "duration, longest first"]].map(function (o) {
        return el("option", {value: o[0], selected: taskView.sortBy === o[0]}, o[1]);
      }));
    sort.addEventListener("change", function () { taskView.sortBy = sort.value; taskView.offset = 0; SC.refreshNow(); });
    return el("div", {class: "pager"},
      el("span", {}, count ? "Task attempts " + first + "–" + last : "No task attempts here"),
      el("label", {}, "Order by ", sort), prev, next);
  }

  SC.pages.stage = async function () {
    var dom = SC.dom, el = dom.el, fmt = SC.fmt, api = SC.api;
    var id = api.param("id", null);
    if (id === null) return el("p", {class: "problem-text"}, "This address names no stage: add ?id=N&attempt=A.");
    var attempt = api.param("attempt", null);
    if (attempt === null) {
      var attempts = await api.app("/stages/" + id);
      attempt = attempts.reduce(function (m, s) { return Math.max(m, s.attemptId || 0); }, 0);
    }
    var base = "/stages/" + id + "/" + attempt;
    var got = await Promise.all([
      api.app(base),
      api.app(base + "/taskSummary", {quantiles: QUANTILES}, true),
      api.app(base + "/taskList", {offset: taskView.offset, length: PAGE_SIZE, sortBy: taskView.sortBy}),
      api.app("/allexecutors"),
      api.app("/sparkctl/dag", {stage: id, attempt: attempt}, true)
    ]);
    var stage = got[0], quantiles = got[1], tasks = got[2], dag = got[4];
    var hosts = {};
    got[3].forEach(function (e) { hosts[e.id] = e; });

    var page = el("div", {class: "page page-stage", "data-stage-id": stage.stageId, "data-attempt-id": stage.attemptId});
    page.appendChild(el("h2", {}, "Details for Stage " + stage.stageId + " (Attempt " + stage.attemptId + ") ", dom.badge(stage.status)));
    page.appendChild(dom.keyValueList([
      ["Description", stage.description || stage.name || "–"],
      stage.description ? ["Call site", stage.name] : null,
      ["Submitted", fmt.date(stage.submissionTime)],
      ["Duration", fmt.duration(fmt.span(stage.submissionTime, stage.completionTime))],
      ["Tasks", dom.progress(stage.numCompleteTasks, stage.numTasks,
        {active: stage.numActiveTasks, failed: stage.numFailedTasks, killed: stage.numKilledTasks})],
      ["Total time across all tasks", fmt.duration(stage.executorRunTime)],
      stage.inputBytes || stage.inputRecords ? ["Input Size / Records", bytesAndRecords(stage.inputBytes, stage.inputRecords)] : null,
      stage.outputBytes || stage.outputRecords ? ["Output Size / Records", bytesAndRecords(stage.outputBytes, stage.outputRecords)] : null,
      stage.shuffleReadBytes || stage.shuffleReadRecords ? ["Shuffle Read Size / Records", bytesAndRecords(stage.shuffleReadBytes, stage.shuffleReadRecords)] : null,
      stage.shuffleWriteBytes || stage.shuffleWriteRecords ? ["Shuffle Write Size / Records", bytesAndRecords(stage.shuffleWriteBytes, stage.shuffleWriteRecords)] : null,
      ["Spill (Memory / Disk)", fmt.bytes(stage.memoryBytesSpilled || 0) + " / " + fmt.bytes(stage.diskBytesSpilled || 0)],
      stage.schedulingPool ? ["Scheduling pool", stage.schedulingPool] : null,
      stage.failureReason ? ["Failure reason", SC.errorCell(stage.failureReason, "stage-failure")] : null
    ]));
    page.appendChild(dom.section("stage-dag", "DAG Visualization", null,
      SC.dag.block(dag, {uiRoot: SC.ctx.uiRoot, focus: stage.stageId}), true));
    page.appendChild(dom.section("stage-summary", "Summary Metrics for " +
      fmt.count(stage.numCompleteTasks) + " Completed Tasks", null, summaryTable(quantiles, stage), true));
    page.appendChild(dom.section("stage-executor-summary", "Aggregated Metrics by Executor",
      Object.keys(stage.executorSummary || {}).length, executorTable(stage.executorSummary, hosts, stage), true));
    page.appendChild(dom.section("stage-tasks", "Tasks", stage.numTasks,
      el("div", {}, pager(tasks.length, stage), taskTable(tasks, stage, hosts)), true));
    return page;
  };
})();
