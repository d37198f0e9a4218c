/* The event timeline on the jobs page, as SVG: one lane of executors added and removed,
 * and lanes of jobs, each job a bar from submission to completion (to now while it runs).
 * Jobs that overlap in time take separate lanes, first fit. */
(function () {
  "use strict";
  var W = 1000, LABEL = 92, RIGHT = 16, TOP = 8, EXEC_LANE = 30, JOB_LANE = 22, AXIS = 26;

  function niceStep(ms) {
    var steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
    for (var i = 0; i < steps.length; i++) if (steps[i] * 1000 >= ms) return steps[i] * 1000;
    return Math.ceil(ms / 86400000) * 86400000;
  }

  /** opts: {start: Date, end: Date|null (running), jobs: [JobData], executors: [ExecutorSummary], uiRoot} */
  function render(opts) {
    var SC = window.SC, svg = SC.dom.svg, fmt = SC.fmt;
    var now = Date.now();
    var jobs = (opts.jobs || []).filter(function (j) { return fmt.parseDate(j.submissionTime); });
    var execs = opts.executors || [];
    var t0 = opts.start ? opts.start.getTime() : now, t1 = opts.end ? opts.end.getTime() : now;
    jobs.forEach(function (j) {
      t0 = Math.min(t0, fmt.parseDate(j.submissionTime).getTime());
      var c = fmt.parseDate(j.completionTime);
      t1 = Math.max(t1, c ? c.getTime() : now);
    });
    execs.forEach(function (e) {
      var a = fmt.parseDate(e.addTime), r = fmt.parseDate(e.removeTime);
      if (a) { t0 = Math.min(t0, a.getTime()); t1 = Math.max(t1, a.getTime()); }
      if (r) t1 = Math.max(t1, r.getTime());
    });
    if (t1 - t0 < 1000) t1 = t0 + 1000;
    var pad = (t1 - t0) * 0.02;
    t0 -= pad; t1 += pad;
    function px(t) { return LABEL + (t - t0) / (t1 - t0) * (W - LABEL - RIGHT); }

    // first-fit lanes for jobs, in submission order
    var laneEnds = [], placed = [];
    jobs.slice().sort(function (a, b) { return fmt.parseDate(a.submissionTime) - fmt.parseDate(b.submissionTime); })
      .forEach(function (j) {
        var s = px(fmt.parseDate(j.submissionTime).getTime());
        var c = fmt.parseDate(j.completionTime);
        var e = Math.max(px(c ? c.getTime() : now), s + 4);
        var lane = 0;
        while (lane < laneEnds.length && laneEnds[lane] > s - 2) lane += 1;
        laneEnds[lane] = e;
        placed.push({job: j, x: s, w: e - s, lane: lane});
      });
    var lanes = Math.max(1, laneEnds.length);
    var jobsTop = TOP + EXEC_LANE + 8;
    var H = jobsTop + lanes * JOB_LANE + 8 + AXIS;

    var root = svg("svg", {class: "timeline", viewBox: "0 0 " + W + " " + H, width: "100%", role: "img",
      preserveAspectRatio: "xMinYMin meet", "aria-label": "Event timeline", "data-jobs": placed.length, "data-executors": execs.length});
    root.appendChild(svg("rect", {class: "tl-lane", x: LABEL, y: TOP, width: W - LABEL - RIGHT, height: EXEC_LANE}));
    root.appendChild(svg("rect", {class: "tl-lane", x: LABEL, y: jobsTop, width: W - LABEL - RIGHT, height: lanes * JOB_LANE}));
    root.appendChild(svg("text", {class: "tl-label", x: 6, y: TOP + EXEC_LANE / 2 + 4}, "Executors"));
    root.appendChild(svg("text", {class: "tl-label", x: 6, y: jobsTop + lanes * JOB_LANE / 2 + 4}, "Jobs"));

    // axis with round-second ticks
    var axisY = jobsTop + lanes * JOB_LANE + 8;
    var axis = svg("g", {class: "tl-axis"});
    axis.appendChild(svg("line", {x1: LABEL, y1: axisY, x2: W - RIGHT, y2: axisY}));
    var step = niceStep((t1 - t0) / 7);
    for (var t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      var x = px(t);
      axis.appendChild(svg("line", {class: "tl-grid", x1: x, y1: TOP, x2: x, y2: axisY + 4}));
      if (x > LABEL + 24 && x < W - RIGHT - 24) {  // a label cut by the edge reads wrong: leave it out
        axis.appendChild(svg("text", {x: x, y: axisY + 17, "text-anchor": "middle"}, fmt.clock(new Date(t))));
      }
    }
    root.appendChild(axis);

    execs.forEach(function (e) {
      [["added", e.addTime], ["removed", e.removeTime]].forEach(function (ev) {
        var d = fmt.parseDate(ev[1]);
        if (!d) return;
        var x = px(d.getTime()), y = TOP + EXEC_LANE / 2;
        var tip = "Executor " + e.id + " " + ev[0] + " at " + fmt.date(d) + (e.hostPort ? " (" + e.hostPort + ")" : "") +
          (ev[0] === "removed" && e.removeReason ? ": " + e.removeReason : "");
        var mark = ev[0] === "added"
          ? svg("circle", {cx: x, cy: y, r: 5})
          : svg("path", {d: "M" + (x - 4) + "," + (y - 4) + " L" + (x + 4) + "," + (y + 4) + " M" + (x + 4) + "," + (y - 4) + " L" + (x - 4) + "," + (y + 4)});
        root.appendChild(svg("g", {class: "tl-executor " + ev[0], "data-executor-id": e.id, "data-event": ev[0]},
          svg("title", {}, tip), mark));
      });
    });

    placed.forEach(function (p) {
      var j = p.job, status = String(j.status || "UNKNOWN").toLowerCase();
      var y = jobsTop + p.lane * JOB_LANE + 3;
      var a = svg("a", {href: (opts.uiRoot || "") + "/jobs/job/?id=" + j.jobId});
      var g = svg("g", {class: "tl-job status-" + status, "data-job-id": j.jobId},
        svg("title", {}, "Job " + j.jobId + ": " + (j.name || "") + "\n" + status + ", submitted " + fmt.date(j.submissionTime) +
          ", " + fmt.duration(fmt.span(j.submissionTime, j.completionTime))),
        svg("rect", {x: p.x, y: y, width: p.w, height: JOB_LANE - 6, rx: 3}));
      if (p.w > 44) g.appendChild(svg("text", {x: p.x + 5, y: y + JOB_LANE - 11}, "Job " + j.jobId));
      a.appendChild(g);
      root.appendChild(a);
    });
    return root;
  }

  function block(opts) {
    var el = window.SC.dom.el;
    return el("div", {class: "timeline-block"}, render(opts),
      el("div", {class: "legend"},
        el("span", {class: "key key-exec-added"}, "executor added"),
        el("span", {class: "key key-exec-removed"}, "executor removed"),
        el("span", {class: "key key-job-succeeded"}, "succeeded job"),
        el("span", {class: "key key-job-running"}, "running job"),
        el("span", {class: "key key-job-failed"}, "failed job")));
  }

  window.SC.timeline = {render: render, block: block};
})();
