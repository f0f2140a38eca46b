(function () {
  var d = {errors: [], violations: [], resources: []};
  function dump() {
    d.resources = performance.getEntriesByType("resource").map(function (r) { return r.name; });
    var el = document.getElementById("dc-selfcheck");
    if (el) { el.textContent = JSON.stringify(d); }
  }
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window) { d.errors.push("failed to load " + (t.src || t.href || t.tagName)); }
    else { d.errors.push(String(e.message) + " at " + e.filename + ":" + e.lineno); }
    dump();
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    d.errors.push("unhandled rejection: " + String(e.reason)); dump();
  });
  document.addEventListener("securitypolicyviolation", function (e) {
    d.violations.push(e.violatedDirective + " " + e.blockedURI); dump();
  });
  var original = console.error;
  console.error = function () {
    d.errors.push(Array.prototype.join.call(arguments, " ")); dump();
    return original.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", dump);
  window.addEventListener("load", function () { dump(); setTimeout(dump, 0); });
})();
