/* Building the page. Every string that comes from the application (names, call sites,
 * error messages, settings) may hold markup, so text only ever enters the DOM through
 * textContent or setAttribute: there is no innerHTML anywhere in the UI. */
(function () {
  "use strict";
  var SVG_NS = "http://www.w3.org/2000/svg";

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  function setAttrs(node, attrs) {
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = String(v);
      else if (k.slice(0, 2) === "on" && typeof v === "function") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    });
    return node;
  }

  /** el("td", {class: "num"}, "12 ms") */
  function el(tag, attrs) {
    var node = setAttrs(document.createElement(tag), attrs);
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function svg(tag, attrs) {
    var node = setAttrs(document.createElementNS(SVG_NS, tag), attrs);
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  /** An http(s) or same-site URL from the data (executor log links), or null: a
   * "javascript:" URL written by user code never becomes a link. */
  function safeUrl(url) {
    if (typeof url !== "string" || url === "") return null;
    try {
      var u = new URL(url, window.location.href);
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch (ignored) {
      return null;
    }
  }

  function link(href, text, attrs) {
    var a = el("a", attrs || {}, text);
    a.setAttribute("href", href);
    return a;
  }

  /** A page link under the UI root ("" live, "/history/APP" on the history server). */
  function pageLink(path, text, attrs) { return link(window.SC.ctx.uiRoot + path, text, attrs); }

  function badge(status) {
    var s = String(status || "UNKNOWN");
    return el("span", {class: "badge badge-" + s.toLowerCase(), "data-status": s}, s.toLowerCase());
  }

  /** A task progress bar: completed and running shares of the total, and the counts. */
  function progress(completed, total, extra) {
    extra = extra || {};
    var fmt = window.SC.fmt;
    var label = fmt.count(completed) + "/" + fmt.count(total);
    if (extra.active) label += " (" + fmt.count(extra.active) + " running)";
    if (extra.failed) label += " (" + fmt.count(extra.failed) + " failed)";
    if (extra.killed) label += " (" + fmt.count(extra.killed) + " killed)";
    if (extra.skipped) label += " (" + fmt.count(extra.skipped) + " skipped)";
    // widths through the CSSOM: the Content-Security-Policy forbids style attributes
    var done = el("div", {class: "progress-done"});
    done.style.width = fmt.percent(completed, total).toFixed(2) + "%";
    var running = el("div", {class: "progress-active"});
    running.style.width = fmt.percent(extra.active || 0, total).toFixed(2) + "%";
    return el("div", {class: "progress", "data-completed": completed, "data-total": total, title: label},
      done, running, el("span", {class: "progress-label"}, label));
  }

  /* Which collapsible sections are open and how each table is sorted survive the
   * page's refresh every two seconds, keyed by their ids. */
  var openState = {};
  var sortState = {};

  /** A titled, collapsible block: <details id=...><summary><h3>title (n)</h3></summary>...</details> */
  function section(id, title, n, body, startOpen) {
    var open = id in openState ? openState[id] : startOpen !== false;
    var d = el("details", {id: id, class: "section", open: open},
      el("summary", {}, el("h3", {}, title, n === null || n === undefined ? "" : el("span", {class: "count"}, " (" + n + ")"))),
      body);
    d.addEventListener("toggle", function () { openState[id] = d.open; });
    return d;
  }

  function keyValueList(pairs) {
    return el("dl", {class: "summary"}, pairs.filter(function (p) { return p; }).map(function (p) {
      return [el("dt", {}, p[0]), el("dd", {}, p[1])];
    }));
  }

  /**
   * A table from column specs: {key, title, value(row) -> sortable, cell(row) -> node or
   * text (defaults to value), num: right-aligned numbers, tip}. Headers sort on click,
   * client side, and remember it across refreshes (opts.id). Numeric cells carry their raw
   * number in data-value, for tests and for sorting. opts.detailRow(row) may give content
   * for a full-width row under a row (it keeps its place when the table is sorted).
   */
  function table(opts) {
    var cols = opts.columns;
    var rows = opts.rows.slice();
    var id = opts.id;
    var st = sortState[id];
    if (st && cols[st.col] && cols[st.col].value && opts.sortable !== false) {
      var c = cols[st.col];
      rows.sort(function (a, b) {
        var x = c.value(a), y = c.value(b);
        var r = (x === null || x === undefined) ? -1 : (y === null || y === undefined) ? 1 : x < y ? -1 : x > y ? 1 : 0;
        return st.desc ? -r : r;
      });
    }
    var wrap = el("div", {class: "table-wrap"});
    var head = el("tr", {}, cols.map(function (c, i) {
      var canSort = opts.sortable !== false && typeof c.value === "function";
      var cls = (c.num ? "num " : "") + (canSort ? "sortable" : "");
      var mark = st && st.col === i ? (st.desc ? " ▾" : " ▴") : "";
      var th = el("th", {class: cls, title: c.tip, "data-col": c.key}, c.title, mark ? el("span", {class: "sort-mark"}, mark) : "");
      if (canSort) {
        th.addEventListener("click", function () {
          var cur = sortState[id];
          sortState[id] = {col: i, desc: cur && cur.col === i ? !cur.desc : false};
          wrap.replaceWith(table(opts));
        });
      }
      return th;
    }));
    var body = el("tbody", {});
    rows.forEach(function (r) {
      var tr = el("tr", opts.rowAttrs ? opts.rowAttrs(r) : {});
      cols.forEach(function (c) {
        var v = c.value ? c.value(r) : null;
        var content = c.cell ? c.cell(r) : v;
        var attrs = {class: c.num ? "num" : c.cls, "data-col": c.key};
        if (c.num && typeof v === "number") attrs["data-value"] = v;
        tr.appendChild(el("td", attrs, content === null || content === undefined ? "–" : content));
      });
      body.appendChild(tr);
      // a full-width row under this one (a failed task's error), when the row has one
      var detail = opts.detailRow ? opts.detailRow(r) : null;
      if (detail) {
        var attrs = opts.rowAttrs ? opts.rowAttrs(r) : {};
        body.appendChild(el("tr", {class: "detail-row", "data-detail-for": attrs["data-task-id"]},
          el("td", {colspan: cols.length}, detail)));
      }
    });
    if (!rows.length) {
      body.appendChild(el("tr", {class: "empty"}, el("td", {colspan: cols.length}, opts.empty || "Nothing yet.")));
    }
    wrap.appendChild(el("table", {class: "data", id: id, "data-rows": rows.length}, el("thead", {}, head), body,
      opts.footer ? el("tfoot", {}, opts.footer) : null));
    return wrap;
  }

  window.SC.dom = {
    el: el, svg: svg, safeUrl: safeUrl, link: link, pageLink: pageLink, badge: badge,
    progress: progress, section: section, table: table, keyValueList: keyValueList
  };
})();
