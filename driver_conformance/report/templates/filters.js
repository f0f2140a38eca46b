(function () {
  var form = document.getElementById("filters");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#matrix tr.clause"));
  var groups = Array.prototype.slice.call(document.querySelectorAll("#matrix tbody"));
  function checked(name) {
    var on = {};
    form.querySelectorAll("input[name=" + name + "]").forEach(function (box) {
      if (box.checked) { on[box.value] = true; }
    });
    return on;
  }
  function apply() {
    var levels = checked("level"), outcomes = checked("outcome"), shown = 0;
    rows.forEach(function (row) {
      var visible = levels[row.dataset.level] === true &&
        row.dataset.outcomes.split(" ").some(function (o) { return outcomes[o] === true; });
      row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    groups.forEach(function (body) {
      body.hidden = body.querySelector("tr.clause:not([hidden])") === null;
    });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " clauses shown";
  }
  // "?level=MUST,DERIVED&outcome=fail,error" presets the filters, so that a
  // CI link can open the page on the failures alone.
  var query = new URLSearchParams(window.location.search);
  ["level", "outcome"].forEach(function (name) {
    if (!query.has(name)) { return; }
    var wanted = query.get(name).split(",");
    form.querySelectorAll("input[name=" + name + "]").forEach(function (box) {
      box.checked = wanted.indexOf(box.value) >= 0;
    });
  });
  form.addEventListener("change", apply);
  form.hidden = false;
  apply();
})();
