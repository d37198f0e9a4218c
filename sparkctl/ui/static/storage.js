/* The Storage page (cached RDDs) and one cached RDD's page (where its blocks live). */
(function () {
  "use strict";
  var SC = window.SC;
  SC.pages = SC.pages || {};

  SC.pages.storage = async function () {
    var dom = SC.dom, el = dom.el, fmt = SC.fmt;
    var rdds = await SC.api.app("/storage/rdd");
    var page = el("div", {class: "page page-storage"});
    page.appendChild(el("h2", {}, "Storage"));
    page.appendChild(dom.section("rdds", "RDDs", rdds.length, dom.table({
      id: "storage-rdds", rows: rdds, empty: "No RDD is cached.",
      rowAttrs: function (r) { return {"data-rdd-id": r.id}; },
      columns: [
        {key: "id", title: "ID", num: true, value: function (r) { return r.id; }},
        {key: "name", title: "RDD Name", value: function (r) { return r.name; },
          cell: function (r) { return dom.pageLink("/storage/rdd/?id=" + r.id, r.name || "RDD " + r.id); }},
        {key: "level", title: "Storage Level", value: function (r) { return r.storageLevel; }},
        {key: "cached", title: "Cached Partitions", num: true, value: function (r) { return r.numCachedPartitions; },
          cell: function (r) { return fmt.count(r.numCachedPartitions) + " / " + fmt.count(r.numPartitions); }},
        {key: "fraction", title: "Fraction Cached", num: true, value: function (r) { return fmt.percent(r.numCachedPartitions, r.numPartitions); },
          cell: function (r) { return fmt.percent(r.numCachedPartitions, r.numPartitions).toFixed(0) + "%"; }},
        {key: "memory", title: "Size in Memory", num: true, value: function (r) { return r.memoryUsed; },
          cell: function (r) { return fmt.bytes(r.memoryUsed); }},
        {key: "disk", title: "Size on Disk", num: true, value: function (r) { return r.diskUsed; },
          cell: function (r) { return fmt.bytes(r.diskUsed); }},
        // where the blocks are (Spark's list may leave the distribution out: then the RDD's page has it)
        {key: "where", title: "Cached On", value: function (r) {
          return (r.dataDistribution || []).map(function (d) { return d.address; }).join(", ");
        }}
      ]}), true));
    return page;
  };

  SC.pages.rdd = async function () {
    var dom = SC.dom, el = dom.el, fmt = SC.fmt;
    var id = SC.api.param("id", null);
    if (id === null) return el("p", {class: "problem-text"}, "This address names no RDD: add ?id=N.");
    var r = await SC.api.app("/storage/rdd/" + id);
    var page = el("div", {class: "page page-rdd", "data-rdd-id": r.id});
    page.appendChild(el("h2", {}, "RDD Storage Info for " + (r.name || "RDD " + r.id)));
    page.appendChild(dom.keyValueList([
      ["Storage level", r.storageLevel || "–"],
      ["Cached partitions", fmt.count(r.numCachedPartitions) + " of " + fmt.count(r.numPartitions)],
      ["Total size in memory", fmt.bytes(r.memoryUsed)],
      ["Total size on disk", fmt.bytes(r.diskUsed)]
    ]));
    page.appendChild(dom.section("rdd-distribution", "Data Distribution on " + (r.dataDistribution || []).length + " Executors", null,
      dom.table({id: "rdd-distribution-table", rows: r.dataDistribution || [], empty: "No block of this RDD is stored.",
        columns: [
          {key: "address", title: "Host", value: function (d) { return d.address; }},
          {key: "memory", title: "Memory Usage", num: true, value: function (d) { return d.memoryUsed; },
            cell: function (d) { return fmt.bytes(d.memoryUsed) + " (" + fmt.bytes(d.memoryRemaining) + " Remaining)"; }},
          {key: "disk", title: "Disk Usage", num: true, value: function (d) { return d.diskUsed; },
            cell: function (d) { return fmt.bytes(d.diskUsed); }}
        ]}), true));
    page.appendChild(dom.section("rdd-partitions", "Partitions", (r.partitions || []).length,
      dom.table({id: "rdd-partitions-table", rows: r.partitions || [], empty: "No partition is cached.",
        columns: [
          {key: "block", title: "Block Name", value: function (p) { return p.blockName; }},
          {key: "level", title: "Storage Level", value: function (p) { return p.storageLevel; }},
          {key: "memory", title: "Size in Memory", num: true, value: function (p) { return p.memoryUsed; },
            cell: function (p) { return fmt.bytes(p.memoryUsed); }},
          {key: "disk", title: "Size on Disk", num: true, value: function (p) { return p.diskUsed; },
            cell: function (p) { return fmt.bytes(p.diskUsed); }},
          {key: "executors", title: "Executors", value: function (p) { return (p.executors || []).join(", "); }}
        ]}), true));
    return page;
  };
})();
