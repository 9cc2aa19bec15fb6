// Plots: each panel's legend entries are buttons that hide or show their
// series (every SVG element of the panel with that data-series); hovering
// near a point shows its values. A panel's points are in its data-points
// attribute: [series, x, y, text] with x and y in the SVG's own units.
(function () {
  "use strict";
  var tip = document.createElement("div");
  tip.className = "plot-tip";
  tip.id = "plot-tip";
  tip.setAttribute("role", "status");
  tip.hidden = true;
  document.body.appendChild(tip);
  var NEAR = 14; // px: how close the pointer must be to a point

  function setShown(panel, sid, shown) {
    Array.prototype.forEach.call(panel.querySelectorAll('svg.plot-svg [data-series="' + sid + '"]'),
      function (el) { el.style.display = shown ? "" : "none"; });
    var button = panel.querySelector('button[data-series="' + sid + '"]');
    if (button) { button.setAttribute("aria-pressed", shown ? "true" : "false"); }
  }

  Array.prototype.forEach.call(document.querySelectorAll(".panel"), function (panel) {
    var svg = panel.querySelector("svg.plot-svg");
    var points = JSON.parse(panel.getAttribute("data-points") || "[]");
    Array.prototype.forEach.call(panel.querySelectorAll("button[data-series]"), function (b) {
      b.addEventListener("click", function () {
        setShown(panel, b.getAttribute("data-series"), b.getAttribute("aria-pressed") !== "true");
      });
    });
    function nearest(clientX, clientY) {
      var m = svg.getScreenCTM(), best = null, bestD = NEAR * NEAR;
      if (!m) { return null; }
      points.forEach(function (p) {
        var b = panel.querySelector('button[data-series="' + p[0] + '"]');
        if (b && b.getAttribute("aria-pressed") !== "true") { return; }
        var dx = m.a * p[1] + m.c * p[2] + m.e - clientX, dy = m.b * p[1] + m.d * p[2] + m.f - clientY;
        var d = dx * dx + dy * dy;
        if (d <= bestD) { bestD = d; best = p; }
      });
      return best;
    }
    svg.addEventListener("mousemove", function (e) {
      var p = nearest(e.clientX, e.clientY);
      if (!p) { tip.hidden = true; return; }
      tip.textContent = p[3];
      tip.hidden = false;
      var x = e.clientX + 14, y = e.clientY + 14;
      if (x + tip.offsetWidth > window.innerWidth) { x = Math.max(0, e.clientX - tip.offsetWidth - 8); }
      if (y + tip.offsetHeight > window.innerHeight) { y = Math.max(0, e.clientY - tip.offsetHeight - 8); }
      tip.style.left = x + "px";
      tip.style.top = y + "px";
    });
    svg.addEventListener("mouseleave", function () { tip.hidden = true; });
    panel.setAttribute("data-interactive", "ready");
  });
})();
