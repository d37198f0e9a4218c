/* The DAG picture of a job or a stage, drawn as inline SVG from sparkctl's dag endpoint:
 *
 *   {"stages": [{stageId, attemptId, name, status, parentIds,
 *                rdds: [{id, name, callsite, parentIds, cached, numPartitions}]}]}
 *
 * A layered layout, in two levels. Stages are placed in columns by their depth in the
 * stage graph (parents to the left), stacked when several share a depth. Inside a stage
 * box, each RDD sits in the row of its longest narrow chain from the stage's first RDD, so
 * data flows top to bottom inside a stage and left to right across shuffles. An RDD whose
 * parent lives in another stage is the reading end of a shuffle: that edge crosses between
 * the boxes. Skipped stages (their shuffle output was reused) are drawn greyed. */
(function () {
  "use strict";
  var NODE_W = 184, NODE_H = 42, GAP_X = 16, GAP_Y = 28, PAD = 14, HEAD = 40;
  var STAGE_GAP_X = 72, STAGE_GAP_Y = 28, MARGIN = 8;
  var CHAR_W = 6.8;  // average width of an 11px bold sans-serif character, for truncating labels
  var dagCount = 0;
  var STATUS_WORD = {ACTIVE: "running", PENDING: "pending", SKIPPED: "skipped", FAILED: "failed"};

  function truncate(text, px) {
    var max = Math.max(4, Math.floor(px / CHAR_W));
    text = String(text === null || text === undefined ? "" : text);
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  /** "map at /long/path/app.py:12" -> "map at app.py:12": the box is small, its tooltip has it all. */
  function shortCallsite(text) {
    return String(text || "").replace(/(^|\s)(?:[^\s:]*[\/\\])+([^\s\/\\]+)/g, "$1$2");
  }

  /** Depth of every stage in the stage graph: 0 without parents in the picture. */
  function stageDepths(stages) {
    var byId = {};
    stages.forEach(function (s) { byId[s.stageId] = s; });
    var depth = {};
    function visit(s, seen) {
      if (s.stageId in depth) return depth[s.stageId];
      if (seen[s.stageId]) return 0;  // a cycle cannot happen in Spark; never loop on bad data
      seen[s.stageId] = true;
      var d = 0;
      (s.parentIds || []).forEach(function (p) { if (byId[p]) d = Math.max(d, visit(byId[p], seen) + 1); });
      depth[s.stageId] = d;
      return d;
    }
    stages.forEach(function (s) { visit(s, {}); });
    return depth;
  }

  /** Rows of a stage's RDDs: each one a row below the lowest of its parents in the stage. */
  function rddRows(stage) {
    var inStage = {};
    (stage.rdds || []).forEach(function (r) { inStage[r.id] = r; });
    var rank = {};
    function visit(r, seen) {
      if (r.id in rank) return rank[r.id];
      if (seen[r.id]) return 0;
      seen[r.id] = true;
      var k = 0;
      (r.parentIds || []).forEach(function (p) { if (inStage[p]) k = Math.max(k, visit(inStage[p], seen) + 1); });
      rank[r.id] = k;
      return k;
    }
    var rows = [];
    (stage.rdds || []).slice().sort(function (a, b) { return a.id - b.id; }).forEach(function (r) {
      var k = visit(r, {});
      (rows[k] = rows[k] || []).push(r);
    });
    return rows.filter(function (row) { return row && row.length; });
  }

  /** Positions: stage boxes {x, y, w, h} and RDD nodes {x, y} in picture coordinates. An
   * RDD that two stages both compute (a narrow ancestor of two shuffles) is drawn in each,
   * so nodes are keyed "stageId:rddId". */
  function layout(stages) {
    var depth = stageDepths(stages);
    var columns = [];
    stages.forEach(function (s) { (columns[depth[s.stageId]] = columns[depth[s.stageId]] || []).push(s); });
    var boxes = {}, nodes = {}, x = MARGIN, height = 0;
    columns.forEach(function (col) {
      if (!col) return;
      var y = MARGIN, colW = 0;
      col.sort(function (a, b) { return a.stageId - b.stageId; }).forEach(function (s) {
        var rows = rddRows(s);
        var widest = rows.reduce(function (m, row) { return Math.max(m, row.length); }, 1);
        var w = 2 * PAD + widest * NODE_W + (widest - 1) * GAP_X;
        var h = HEAD + PAD + Math.max(1, rows.length) * NODE_H + Math.max(0, rows.length - 1) * GAP_Y + PAD;
        boxes[s.stageId] = {x: x, y: y, w: w, h: h, rows: rows};
        y += h + STAGE_GAP_Y;
        colW = Math.max(colW, w);
      });
      col.forEach(function (s) {
        var b = boxes[s.stageId];
        b.x = x + (colW - b.w) / 2;
        b.rows.forEach(function (row, k) {
          var rowW = row.length * NODE_W + (row.length - 1) * GAP_X;
          row.forEach(function (r, i) {
            nodes[s.stageId + ":" + r.id] = {x: b.x + (b.w - rowW) / 2 + i * (NODE_W + GAP_X), y: b.y + HEAD + k * (NODE_H + GAP_Y),
              stageId: s.stageId, leftmost: i === 0};
          });
        });
      });
      height = Math.max(height, y - STAGE_GAP_Y + MARGIN);
      x += colW + STAGE_GAP_X;
    });
    return {boxes: boxes, nodes: nodes, width: Math.max(x - STAGE_GAP_X + MARGIN, 2 * MARGIN), height: Math.max(height, 2 * MARGIN)};
  }

  /** Narrow edges go straight down inside a stage; a shuffle edge curves from the right
   * side of its map-side RDD to the left side of the RDD reading it. When another RDD
   * stands to the reader's left, the edge enters the stage along its header band and comes
   * down onto the reader, instead of running behind its neighbours. */
  function edgePath(from, to, crossing, box) {
    if (!crossing) {
      var x1 = from.x + NODE_W / 2, y1 = from.y + NODE_H, x2 = to.x + NODE_W / 2, y2 = to.y;
      if (y2 > y1) return "M" + x1 + "," + y1 + " L" + x2 + "," + (y2 - 2);
    }
    var sx = from.x + NODE_W, sy = from.y + NODE_H / 2;
    if (box && !to.leftmost) {
      var hy = box.y + 25, cx = to.x + NODE_W / 2, bend = Math.max(30, Math.abs(box.x - sx) / 2);
      return "M" + sx + "," + sy + " C" + (sx + bend) + "," + sy + " " + (box.x - bend) + "," + hy + " " + box.x + "," + hy +
        " L" + (cx - 8) + "," + hy + " Q" + cx + "," + hy + " " + cx + "," + (hy + 7) + " L" + cx + "," + (to.y - 2);
    }
    var tx = to.x, ty = to.y + NODE_H / 2;
    var dx = Math.max(30, Math.abs(tx - sx) / 2);
    return "M" + sx + "," + sy + " C" + (sx + dx) + "," + sy + " " + (tx - dx) + "," + ty + " " + (tx - 2) + "," + ty;
  }

  /**
   * The SVG element for a dag document. opts.focus: the stage id the page is about (its
   * box is outlined); opts.uiRoot: prefix for links to stage pages.
   */
  function render(data, opts) {
    var svg = window.SC.dom.svg;
    opts = opts || {};
    var stages = (data && data.stages ? data.stages : []).slice();
    var geo = layout(stages);
    var markerId = "dag-arrow-" + (++dagCount);
    var rddCount = 0, edgeCount = 0;
    var root = svg("svg", {
      class: "dag", xmlns: "http://www.w3.org/2000/svg", role: "img",
      width: geo.width, height: geo.height, viewBox: "0 0 " + geo.width + " " + geo.height
    });
    root.appendChild(svg("defs", {},
      svg("marker", {id: markerId, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"},
        svg("path", {d: "M0,0 L10,5 L0,10 z", class: "dag-arrowhead"}))));

    var stageLayer = svg("g", {class: "dag-stages"});
    var edgeLayer = svg("g", {class: "dag-edges"});
    var nodeLayer = svg("g", {class: "dag-rdds"});
    root.appendChild(stageLayer);
    root.appendChild(edgeLayer);
    root.appendChild(nodeLayer);

    stages.forEach(function (s) {
      var b = geo.boxes[s.stageId];
      var status = String(s.status || "PENDING").toUpperCase();
      var g = svg("g", {
        class: "dag-stage status-" + status.toLowerCase() + (opts.focus === s.stageId ? " focus" : ""),
        "data-stage-id": s.stageId, "data-attempt-id": s.attemptId || 0, "data-status": status
      });
      var label = "Stage " + s.stageId + (s.attemptId ? " (attempt " + s.attemptId + ")" : "") +
        (STATUS_WORD[status] ? " · " + STATUS_WORD[status] : "");
      g.appendChild(svg("title", {}, label + "\n" + (s.name || "") + "\n" + status.toLowerCase()));
      g.appendChild(svg("rect", {class: "dag-stage-box", x: b.x, y: b.y, width: b.w, height: b.h, rx: 6}));
      var href = (opts.uiRoot || "") + "/stages/stage/?id=" + s.stageId + "&attempt=" + (s.attemptId || 0);
      var a = svg("a", {href: href, class: "dag-stage-link"});
      a.appendChild(svg("text", {class: "dag-stage-label", x: b.x + 10, y: b.y + 19}, truncate(label, b.w - 20)));
      g.appendChild(a);
      stageLayer.appendChild(g);

      (s.rdds || []).forEach(function (r) {
        var n = geo.nodes[s.stageId + ":" + r.id];
        if (!n) return;
        rddCount += 1;
        var name = (r.name || "RDD") + " [" + r.id + "]";
        var node = svg("g", {class: "dag-rdd" + (r.cached ? " cached" : ""), "data-rdd-id": r.id, "data-stage-id": s.stageId,
          transform: "translate(" + n.x + "," + n.y + ")"});
        node.appendChild(svg("title", {}, name + "\n" + (r.callsite || "") +
          (r.numPartitions !== undefined ? "\n" + r.numPartitions + " partitions" : "") + (r.cached ? "\ncached" : "")));
        node.appendChild(svg("rect", {width: NODE_W, height: NODE_H, rx: 4}));
        node.appendChild(svg("text", {class: "dag-rdd-name", x: 8, y: 17}, truncate(name, NODE_W - (r.cached ? 26 : 14))));
        node.appendChild(svg("text", {class: "dag-rdd-callsite", x: 8, y: 33}, truncate(shortCallsite(r.callsite), NODE_W - 14)));
        if (r.cached) node.appendChild(svg("circle", {class: "dag-cached-dot", cx: NODE_W - 10, cy: 12, r: 4}));
        nodeLayer.appendChild(node);
      });
    });

    // Edges between RDDs: to a parent in the same stage, else to the parent in one of the
    // stage's parent stages (a shuffle), else wherever it is drawn. A stage edge with no
    // RDD edge across it is drawn box to box.
    // A shuffle's map side is the stage whose last RDD (one no RDD of that stage reads) it
    // is: another stage may compute the same RDD on its way to a different shuffle.
    var holders = {}, inner = {};
    stages.forEach(function (s) {
      (s.rdds || []).forEach(function (r) {
        (holders[r.id] = holders[r.id] || []).push(s.stageId);
        (r.parentIds || []).forEach(function (p) { inner[s.stageId + ":" + p] = true; });
      });
    });
    function parentNode(s, p) {
      var where = holders[p] || [];
      if (where.indexOf(s.stageId) >= 0) return geo.nodes[s.stageId + ":" + p];
      function rank(t) {
        return (inner[t + ":" + p] ? 2 : 0) + ((s.parentIds || []).indexOf(t) >= 0 ? 0 : 1);
      }
      var t = where.slice().sort(function (a, b) { return rank(a) - rank(b) || a - b; })[0];
      return t === undefined ? null : geo.nodes[t + ":" + p];
    }
    var crossed = {};
    stages.forEach(function (s) {
      (s.rdds || []).forEach(function (r) {
        var to = geo.nodes[s.stageId + ":" + r.id];
        if (!to) return;
        (r.parentIds || []).forEach(function (p) {
          var from = parentNode(s, p);
          if (!from) return;
          var crossing = from.stageId !== to.stageId;
          if (crossing) crossed[from.stageId + ">" + to.stageId] = true;
          edgeCount += 1;
          edgeLayer.appendChild(svg("path", {class: "dag-edge" + (crossing ? " shuffle" : ""),
            d: edgePath(from, to, crossing, crossing ? geo.boxes[to.stageId] : null),
            "marker-end": "url(#" + markerId + ")", "data-from": p, "data-to": r.id, "data-from-stage": from.stageId,
            "data-to-stage": s.stageId}));
        });
      });
    });
    stages.forEach(function (s) {
      (s.parentIds || []).forEach(function (p) {
        var pb = geo.boxes[p], cb = geo.boxes[s.stageId];
        if (!pb || !cb || crossed[p + ">" + s.stageId]) return;
        var from = {x: pb.x + pb.w - NODE_W, y: pb.y + pb.h / 2 - NODE_H / 2};
        var to = {x: cb.x, y: cb.y + cb.h / 2 - NODE_H / 2};
        edgeCount += 1;
        edgeLayer.appendChild(svg("path", {class: "dag-edge shuffle stage-edge", d: edgePath(from, to, true),
          "marker-end": "url(#" + markerId + ")", "data-from-stage": p, "data-to-stage": s.stageId}));
      });
    });

    root.setAttribute("data-stages", stages.length);
    root.setAttribute("data-rdds", rddCount);
    root.setAttribute("data-edges", edgeCount);
    root.setAttribute("aria-label", "DAG: " + stages.length + " stages, " + rddCount + " RDDs");
    return root;
  }

  /** The DAG block of a page: the picture in a scrolling frame, and its legend. */
  function block(data, opts) {
    var el = window.SC.dom.el;
    if (!data || !data.stages || !data.stages.length) {
      return el("p", {class: "muted"}, "No DAG to show yet.");
    }
    return el("div", {class: "dag-block"},
      el("div", {class: "dag-frame"}, render(data, opts)),
      el("div", {class: "legend"},
        el("span", {class: "key key-stage"}, "stage"),
        el("span", {class: "key key-running"}, "running stage"),
        el("span", {class: "key key-pending"}, "pending stage"),
        el("span", {class: "key key-skipped"}, "skipped stage (its shuffle output was reused)"),
        el("span", {class: "key key-rdd"}, "RDD"),
        el("span", {class: "key key-cached"}, "cached RDD"),
        el("span", {class: "key key-shuffle"}, "shuffle")));
  }

  window.SC.dag = {render: render, block: block, layout: layout};
})();
