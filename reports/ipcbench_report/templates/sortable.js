// Sortable tables: click (or Enter on) a header to sort by that column;
// click again to reverse. Numeric columns sort on each cell's data-v value
// (the raw number), with empty cells last in either direction.
(function () {
  "use strict";
  function cellKey(cell, numeric) {
    var raw = cell.getAttribute("data-v");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (!numeric) { return raw; }
    return raw === "" ? NaN : parseFloat(raw);
  }
  function compare(a, b, numeric) {
    if (!numeric) { return String(a).localeCompare(String(b), undefined, { numeric: true }); }
    return a - b;
  }
  function sortBy(table, col, th) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var numeric = th.getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return { row: row, key: cellKey(row.cells[col], numeric), index: i };
    });
    rows.sort(function (x, y) {
      var xMissing = numeric && isNaN(x.key), yMissing = numeric && isNaN(y.key);
      if (xMissing || yMissing) { return xMissing === yMissing ? x.index - y.index : (xMissing ? 1 : -1); }
      var c = compare(x.key, y.key, numeric);
      return (ascending ? c : -c) || x.index - y.index;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.title = "Sort by this column";
      th.addEventListener("click", function () { sortBy(table, col, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, col, th); }
      });
    });
    table.setAttribute("data-sortable", "ready");
  });
})();
