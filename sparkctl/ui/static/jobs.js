/* The Jobs page (all jobs, the event timeline) and a job's page (its stages and DAG). */
(function () {
  "use strict";
  var SC = window.SC;
  SC.pages = SC.pages || {};

  function jobColumns(uiRoot) {
    var fmt = SC.fmt, dom = SC.dom;
    return [
      {key: "id", title: "Job Id", num: true, value: function (j) { return j.jobId; },
        cell: function (j) { return [String(j.jobId), j.jobGroup ? dom.el("div", {class: "muted small"}, "(" + j.jobGroup + ")") : ""]; }},
      {key: "description", title: "Description", value: function (j) { return j.description || j.name || ""; },
        cell: function (j) {
          return [dom.pageLink("/jobs/job/?id=" + j.jobId, j.description || j.name || "job " + j.jobId, {class: "job-link"}),
            j.description && j.name ? dom.el("div", {class: "muted small"}, j.name) : ""];
        }},
      {key: "submitted", title: "Submitted", value: function (j) { var d = fmt.parseDate(j.submissionTime); return d ? d.getTime() : null; },
        cell: function (j) { return fmt.date(j.submissionTime); }},
      {key: "duration", title: "Duration", num: true, value: function (j) { return fmt.span(j.submissionTime, j.completionTime); },
        cell: function (j) { return fmt.duration(fmt.span(j.submissionTime, j.completionTime)); }},
      {key: "status", title: "Status", value: function (j) { return j.status; }, cell: function (j) { return dom.badge(j.status); }},
      {key: "stages", title: "Stages: Succeeded/Total", num: true, value: function (j) { return j.numCompletedStages; },
        cell: function (j) {
          var total = (j.stageIds || []).length - (j.numSkippedStages || 0);
          var text = j.numCompletedStages + "/" + total;
          if (j.numFailedStages) text += " (" + j.numFailedStages + " failed)";
          if (j.numSkippedStages) text += " (" + j.numSkippedStages + " skipped)";
          return text;
        }},
      {key: "tasks", title: "Tasks (for all stages): Succeeded/Total", value: function (j) { return j.numCompletedIndices; },
        cell: function (j) {
          return dom.progress(j.numCompletedIndices, j.numTasks - (j.numSkippedTasks || 0),
            {active: j.numActiveTasks, failed: j.numFailedTasks, killed: j.numKilledTasks});
        }}
    ];
  }

  function jobTable(id, jobs) {
    return SC.dom.table({id: id, columns: jobColumns(SC.ctx.uiRoot), rows: jobs, empty: "No jobs.",
      rowAttrs: function (j) { return {"data-job-id": j.jobId, "data-status": j.status}; }});
  }

  function appAttempt(app) { return app && app.attempts && app.attempts.length ? app.attempts[0] : null; }

  SC.pages.jobs = async function (app) {
    var dom = SC.dom, el = dom.el, fmt = SC.fmt;
    var got = await Promise.all([SC.api.app("/jobs"), SC.api.app("/allexecutors")]);
    var jobs = got[0].slice().sort(function (a, b) { return b.jobId - a.jobId; });
    var executors = got[1];
    var attempt = appAttempt(app) || {};
    var start = fmt.parseDate(attempt.startTime), end = attempt.completed ? fmt.parseDate(attempt.endTime) : null;
    var groups = {RUNNING: [], SUCCEEDED: [], FAILED: [], UNKNOWN: []};
    jobs.forEach(function (j) { (groups[j.status] || groups.UNKNOWN).push(j); });

    var page = el("div", {class: "page page-jobs"});
    page.appendChild(el("h2", {}, "Spark Jobs"));
    page.appendChild(dom.keyValueList([
      ["User", attempt.sparkUser || "–"],
      ["Started", fmt.date(start)],
      ["Total uptime", fmt.duration(start ? (end ? end.getTime() : Date.now()) - start.getTime() : null)],
      ["Active jobs", String(groups.RUNNING.length)],
      ["Completed jobs", String(groups.SUCCEEDED.length)],
      ["Failed jobs", String(groups.FAILED.length)]
    ]));
    page.appendChild(dom.section("timeline", "Event Timeline", null,
      SC.timeline.block({start: start, end: end, jobs: jobs, executors: executors, uiRoot: SC.ctx.uiRoot}), true));
    if (groups.RUNNING.length) page.appendChild(dom.section("active-jobs", "Active Jobs", groups.RUNNING.length, jobTable("active-jobs-table", groups.RUNNING)));
    page.appendChild(dom.section("completed-jobs", "Completed Jobs", groups.SUCCEEDED.length, jobTable("completed-jobs-table", groups.SUCCEEDED)));
    if (groups.FAILED.length) page.appendChild(dom.section("failed-jobs", "Failed Jobs", groups.FAILED.length, jobTable("failed-jobs-table", groups.FAILED)));
    if (groups.UNKNOWN.length) page.appendChild(dom.section("unknown-jobs", "Jobs in an Unknown State", groups.UNKNOWN.length, jobTable("unknown-jobs-table", groups.UNKNOWN)));
    return page;
  };

  SC.pages.job = async function () {
    var dom = SC.dom, el = dom.el, fmt = SC.fmt;
    var id = SC.api.param("id", null);
    if (id === null) return el("p", {class: "problem-text"}, "This address names no job: add ?id=N.");
    var got = await Promise.all([
      SC.api.app("/jobs/" + id), SC.api.app("/stages"), SC.api.app("/sparkctl/dag", {job: id}, true)]);
    var job = got[0], dag = got[2];
    var ids = {};
    (job.stageIds || []).forEach(function (s) { ids[s] = true; });
    var stages = got[1].filter(function (s) { return ids[s.stageId]; });

    var page = el("div", {class: "page page-job", "data-job-id": job.jobId});
    page.appendChild(el("h2", {}, "Details for Job " + job.jobId, " ", dom.badge(job.status)));
    page.appendChild(dom.keyValueList([
      ["Description", job.description || job.name || "–"],
      job.description ? ["Call site", job.name] : null,
      job.jobGroup ? ["Job group", job.jobGroup] : null,
      ["Submitted", fmt.date(job.submissionTime)],
      ["Completed", fmt.date(job.completionTime)],
      ["Duration", fmt.duration(fmt.span(job.submissionTime, job.completionTime))],
      ["Stages", job.numCompletedStages + " completed, " + (job.numActiveStages || 0) + " active, " +
        (job.numSkippedStages || 0) + " skipped, " + (job.numFailedStages || 0) + " failed"],
      ["Tasks", dom.progress(job.numCompletedIndices, job.numTasks - (job.numSkippedTasks || 0),
        {active: job.numActiveTasks, failed: job.numFailedTasks, killed: job.numKilledTasks})]
    ]));
    page.appendChild(dom.section("job-dag", "DAG Visualization", null, SC.dag.block(dag, {uiRoot: SC.ctx.uiRoot}), true));
    SC.stageTables(stages, "job").forEach(function (s) { page.appendChild(s); });
    return page;
  };
})();
