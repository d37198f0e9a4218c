/* How numbers, sizes, durations and dates read on every page: sizes in binary units
 * (KiB, MiB, as Spark prints them), durations in the largest unit that keeps them short,
 * dates in the browser's local time. Dates from the REST API come as Spark writes them,
 * "2026-11-30T14:35:02.123GMT", or as epoch milliseconds. */
(function () {
  "use strict";
  var SIZE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  var COUNT = new Intl.NumberFormat("en-US");

  function missing(v) { return v === null || v === undefined || (typeof v === "number" && isNaN(v)); }

  function bytes(n) {
    if (missing(n)) return "–";
    n = Number(n);
    var i = 0;
    while (Math.abs(n) >= 1024 && i < SIZE_UNITS.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + " " + SIZE_UNITS[i];
  }

  function duration(ms) {
    if (missing(ms)) return "–";
    ms = Number(ms);
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60 * 1000) return (ms / 1000).toFixed(1) + " s";
    if (ms < 3600 * 1000) return (ms / 60000).toFixed(1) + " min";
    if (ms < 48 * 3600 * 1000) return (ms / 3600000).toFixed(1) + " h";
    return (ms / 86400000).toFixed(1) + " d";
  }

  function count(n) { return missing(n) ? "–" : COUNT.format(n); }

  /** A Date, or null for a missing date (Spark writes "no end yet" as epoch -1). */
  function parseDate(v) {
    if (missing(v) || v === "") return null;
    var ms = typeof v === "number" ? v : Date.parse(String(v).replace(/GMT$/, "Z"));
    if (isNaN(ms) || ms <= 0) return null;
    return new Date(ms);
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function date(v) {
    var d = v instanceof Date ? v : parseDate(v);
    if (!d) return "–";
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function clock(d) { return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()); }

  /** Milliseconds from start to end; to now while it runs; null when it never started. */
  function span(start, end) {
    var s = parseDate(start);
    if (!s) return null;
    var e = parseDate(end);
    return (e ? e.getTime() : Date.now()) - s.getTime();
  }

  function percent(part, whole) { return whole > 0 ? Math.min(100, Math.max(0, 100 * part / whole)) : 0; }

  window.SC.fmt = {
    bytes: bytes, duration: duration, count: count, date: date, clock: clock,
    parseDate: parseDate, span: span, percent: percent, missing: missing
  };
})();
