/* The Environment page: the runtime, then every list of name/value pairs the API has
 * (sparkProperties, hadoopProperties, systemProperties, metricsProperties,
 * classpathEntries), each a sortable table. Secrets arrive already redacted. */
(function () {
  "use strict";
  var SC = window.SC;
  SC.pages = SC.pages || {};

  var TITLES = {
    sparkProperties: "Spark Properties", hadoopProperties: "Hadoop Properties",
    systemProperties: "System Properties", metricsProperties: "Metrics Properties",
    classpathEntries: "Classpath Entries"
  };

  var RUNTIME = {javaVersion: "Java Version", javaHome: "Java Home", scalaVersion: "Scala Version"};

  function pairTable(id, pairs, heads) {
    return SC.dom.table({id: id, rows: pairs, empty: "None.", columns: [
      {key: "name", title: heads[0], value: function (p) { return String(p[0]); }, cls: "key-cell"},
      {key: "value", title: heads[1], value: function (p) { return String(p[1]); }, cls: "value-cell"}
    ]});
  }

  function title(key) {
    if (TITLES[key]) return TITLES[key];
    var words = key.replace(/([A-Z])/g, " $1");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  SC.pages.environment = async function () {
    var dom = SC.dom, el = dom.el;
    var env = await SC.api.app("/environment");
    var page = el("div", {class: "page page-environment"});
    page.appendChild(el("h2", {}, "Environment"));
    var runtime = env.runtime || {};
    page.appendChild(dom.section("env-runtime", "Runtime Information", null,
      pairTable("env-runtime-table", Object.keys(runtime).map(function (k) { return [RUNTIME[k] || k, runtime[k]]; }), ["Name", "Value"]), true));
    Object.keys(env).forEach(function (key) {
      var v = env[key];
      // resourceProfiles holds objects, not name/value pairs
      if (key === "runtime" || key === "resourceProfiles" || !Array.isArray(v)) return;
      if (v.length && !Array.isArray(v[0])) return;
      var heads = key === "classpathEntries" ? ["Resource", "Source"] : ["Name", "Value"];
      page.appendChild(dom.section("env-" + key, title(key), v.length,
        pairTable("env-" + key + "-table", v, heads), key === "sparkProperties"));
    });
    return page;
  };
})();
