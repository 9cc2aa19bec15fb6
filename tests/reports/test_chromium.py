"""The report in a real browser: it opens, shows something, throws nothing,
and the case table sorts when a header is clicked."""

import json
import re
import subprocess

import matplotlib.image as mpimg

from reportutil import run_script

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]

# Injected before the report's own scripts: records uncaught errors and
# console.error calls in the page, where --dump-dom can read them.
ERROR_TRAP = """<script>window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push('error: ' + e.message); });
var __ce = console.error; console.error = function () {
  window.__errors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
  __ce.apply(console, arguments); };</script>"""

# Injected at the end: clicks the p50 header twice and reports the order.
SORT_PROBE = """<script>(function () {
  var t = document.getElementById('cases-table'), ths = t.tHead.rows[0].cells, col = -1;
  for (var i = 0; i < ths.length; i++) { if (ths[i].textContent === 'p50') { col = i; } }
  function column() { return Array.prototype.map.call(t.tBodies[0].rows, function (r) {
      return r.cells[col].getAttribute('data-v'); }); }
  ths[col].click(); var asc = column(); ths[col].click(); var desc = column();
  var out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({ready: t.getAttribute('data-sortable'), asc: asc,
      desc: desc, errors: window.__errors, svgs: document.querySelectorAll('svg').length});
  document.body.appendChild(out); })();</script>"""


def chromium_run(chromium, tmp_path, *args):
    profile = tmp_path / "profile"
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


def console_errors(stderr):
    """Chromium's logged console messages that are errors."""
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line and re.search(r"Uncaught|Error|error", line)]


def make_report(tmp_path, result):
    out = tmp_path / "out"
    proc = run_script("report", result, "-o", out)
    assert proc.returncode == 0, proc.stderr
    return out / "report.html"


def test_screenshot_is_not_blank(tmp_path, chromium, browser_result):
    page = make_report(tmp_path, browser_result)
    png = tmp_path / "shot.png"
    proc = chromium_run(chromium, tmp_path, f"--screenshot={png}", "--window-size=1400,3000",
                        page.as_uri())
    assert png.is_file(), proc.stderr[-2000:]
    pixels = mpimg.imread(png)
    assert pixels.shape[0] >= 3000 and pixels.shape[1] >= 1400
    assert pixels.std() > 0.05, "screenshot is (nearly) uniform"
    non_white = (pixels[..., :3].mean(axis=2) < 0.9).mean()
    assert non_white > 0.02, f"only {non_white:.1%} of the page is drawn"
    assert not console_errors(proc.stderr), console_errors(proc.stderr)


def run_probe(tmp_path, chromium, page, probe):
    """Opens `page` with the error trap and `probe` (a script that writes a
    JSON <pre id="probe">) injected; returns the probe's result and the run."""
    html = page.read_text(encoding="utf-8")
    html = html.replace("<head>", "<head>" + ERROR_TRAP, 1)
    html = html.replace("</body>", probe + "</body>", 1)
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(html, encoding="utf-8")
    proc = chromium_run(chromium, tmp_path, "--dump-dom", probe_page.as_uri())
    match = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, flags=re.S)
    assert match, f"probe did not run: {proc.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&")), proc


def test_dom_no_errors_and_table_sorts(tmp_path, chromium, browser_result):
    page = make_report(tmp_path, browser_result)
    result, proc = run_probe(tmp_path, chromium, page, SORT_PROBE)
    assert result["errors"] == []
    assert result["ready"] == "ready"
    assert result["svgs"] >= 4
    asc = [float(v) for v in result["asc"] if v]
    desc = [float(v) for v in result["desc"] if v]
    assert asc and asc == sorted(asc) and desc == sorted(desc, reverse=True)
    assert result["asc"][-1] == "" and result["desc"][-1] == "", "empty cells sort last"
    assert not console_errors(proc.stderr), console_errors(proc.stderr)


# Injected at the end: clicks the 'async / sync' header of the sync-vs-async
# table and reports the order and the page's errors.
PAIR_PROBE = """<script>(function () {
  var t = document.getElementById('sync-async-table'), ths = t.tHead.rows[0].cells, col = -1;
  for (var i = 0; i < ths.length; i++) { if (ths[i].textContent === 'async / sync') { col = i; } }
  ths[col].click();
  var asc = Array.prototype.map.call(t.tBodies[0].rows, function (r) {
      return r.cells[col].getAttribute('data-v'); });
  var out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({asc: asc, errors: window.__errors,
      legend: (document.getElementById('limits-legend') || {}).textContent || '',
      left: (document.getElementById('modes-left-out') || {}).textContent || ''});
  document.body.appendChild(out); })();</script>"""


def test_sync_async_view_in_browser(tmp_path, chromium):
    """A version-2 report with the sync-vs-async view, markers and a left-out
    pair opens without errors and its pair table sorts."""
    from reportutil import as_v2, closed_loop, open_loop_v2, save, set_stream, set_wait
    doc = set_stream(open_loop_v2(set_wait(closed_loop(as_v2())), 2000, mechanism="udp",
                                  sender_behind=True), "zmq-tcp", flow_stall=0.2)
    page = make_report(tmp_path, save(doc, tmp_path / "v2.json"))
    result, proc = run_probe(tmp_path, chromium, page, PAIR_PROBE)
    assert result["errors"] == []
    asc = [float(v) for v in result["asc"] if v]
    assert len(asc) == 10 and asc == sorted(asc)
    assert "† sender behind" in result["legend"] and "‡ limited by" in result["legend"]
    assert result["left"].startswith("2 sync vs async latency pair(s) left out")
    assert not console_errors(proc.stderr), console_errors(proc.stderr)


# Injected at the end: in the first panel of the latency plot, clicks the
# first legend entry (hide), hovers points, clicks it again (show); reports
# what the page did. A point is hovered by a mousemove at the point's place
# on screen (the SVG's own transform), as a pointer would.
LEGEND_PROBE = """<script>(function () {
  var out = {errors: window.__errors};
  var panel = document.querySelector('#fig-latency .panel');
  var svg = panel.querySelector('svg.plot-svg');
  var buttons = panel.querySelectorAll('button[data-series]');
  var b = buttons[0], sid = b.getAttribute('data-series');
  function shown(s) { return Array.prototype.map.call(
      svg.querySelectorAll('[data-series="' + s + '"]'),
      function (g) { return getComputedStyle(g).display !== 'none'; }); }
  function area() { return Array.prototype.reduce.call(
      svg.querySelectorAll('[data-series="' + sid + '"]'), function (a, g) {
        var r = g.getBoundingClientRect(); return a + r.width * r.height; }, 0); }
  var points = JSON.parse(panel.getAttribute('data-points'));
  var m = svg.getScreenCTM();
  function at(p) { return [m.a * p[1] + m.c * p[2] + m.e, m.b * p[1] + m.d * p[2] + m.f]; }
  function hover(p) {
    var xy = at(p);
    svg.dispatchEvent(new MouseEvent('mousemove', {clientX: xy[0], clientY: xy[1], bubbles: true}));
    var t = document.getElementById('plot-tip');
    return t.hidden ? null : t.textContent; }
  function alone(p) { var xy = at(p); return points.every(function (q) {
      if (q === p) { return true; } var o = at(q);
      return Math.hypot(o[0] - xy[0], o[1] - xy[1]) > 2; }); }
  var mine = points.filter(function (p) { return p[0] === sid && alone(p); })[0] || null;
  var other = points.filter(function (p) { return p[0] !== sid && alone(p); })[0] || null;
  out.ready = panel.getAttribute('data-interactive');
  out.series = buttons.length;
  out.before = shown(sid); out.areaBefore = area();
  out.hoverMine = mine && hover(mine); out.mineText = mine && mine[3];
  b.click();
  out.after = shown(sid); out.pressed = b.getAttribute('aria-pressed'); out.areaAfter = area();
  out.others = buttons.length > 1 ? shown(buttons[1].getAttribute('data-series')) : [];
  out.hoverHidden = mine && hover(mine);
  out.hoverOther = other && hover(other); out.otherText = other && other[3];
  b.click();
  out.again = shown(sid); out.pressedAgain = b.getAttribute('aria-pressed');
  out.hoverAgain = mine && hover(mine);
  svg.dispatchEvent(new MouseEvent('mouseleave'));
  out.tipAfterLeave = document.getElementById('plot-tip').hidden;
  var pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre); })();</script>"""


def test_legend_hides_and_shows_a_series_and_hover_shows_values(tmp_path, chromium,
                                                                browser_result):
    page = make_report(tmp_path, browser_result)
    r, proc = run_probe(tmp_path, chromium, page, LEGEND_PROBE)
    assert r["errors"] == [] and r["ready"] == "ready"
    assert 1 <= r["series"] <= 8
    assert r["before"] and all(r["before"]) and r["areaBefore"] > 0
    assert r["after"] and not any(r["after"]) and r["pressed"] == "false"
    assert r["areaAfter"] == 0, "a hidden series still takes room on the plot"
    assert all(r["others"]), "hiding one series hid another"
    assert all(r["again"]) and r["pressedAgain"] == "true"
    if r["mineText"] is not None:
        assert r["hoverMine"] == r["mineText"] and "p50" in r["mineText"]
        assert r["hoverHidden"] != r["mineText"], "a hidden series' point still shows its values"
        assert r["hoverAgain"] == r["mineText"]
    if r["otherText"] is not None:
        assert r["hoverOther"] == r["otherText"]
    assert r["mineText"] is not None or r["otherText"] is not None, "no point to hover"
    assert r["tipAfterLeave"] is True
    assert not console_errors(proc.stderr), console_errors(proc.stderr)


# Injected at the end of two copies of the page: both move the latency plot
# to the top (into the screenshot); one also clicks every legend entry of its
# first panel and then gives the entries back their usual look, so only the
# drawing can differ between the two screenshots.
MOVE_UP = """<script>(function () {
  var fig = document.getElementById('fig-latency');
  document.body.insertBefore(fig, document.body.firstChild);
  %s })();</script>"""
HIDE_ALL = """var panel = fig.querySelector('.panel');
  Array.prototype.forEach.call(panel.querySelectorAll('button[data-series]'), function (b) {
    b.click(); b.style.opacity = '1'; b.style.textDecoration = 'none'; });"""


def test_hiding_series_changes_the_drawn_plot(tmp_path, chromium, browser_result):
    page = make_report(tmp_path, browser_result)
    html = page.read_text(encoding="utf-8")
    shots = []
    for name, extra in (("base", ""), ("hidden", HIDE_ALL)):
        variant = tmp_path / f"{name}.html"
        variant.write_text(html.replace("</body>", MOVE_UP % extra + "</body>", 1),
                           encoding="utf-8")
        png = tmp_path / f"{name}.png"
        proc = chromium_run(chromium, tmp_path, f"--screenshot={png}",
                            "--window-size=1400,900", variant.as_uri())
        assert png.is_file(), proc.stderr[-2000:]
        shots.append(mpimg.imread(png)[..., :3])
    base, hidden = shots
    changed = (abs(base - hidden).max(axis=2) > 0.1)
    assert changed.mean() > 0.002, f"only {changed.sum()} pixels changed"
    # The drawn data went away, the frame did not: the hidden page has less ink.
    ink = [(s.mean(axis=2) < 0.9).sum() for s in shots]
    assert ink[1] < ink[0]


def test_load_sweep_plot_in_browser(tmp_path, chromium):
    """The latency-under-load plot opens without errors and its legend
    hides and shows a line."""
    from reportutil import DATA
    page = make_report(tmp_path, DATA / "load-sweep.json")
    r, proc = run_probe(tmp_path, chromium, page,
                        LEGEND_PROBE.replace("#fig-latency .panel", "#fig-load-64 .panel"))
    assert r["errors"] == [] and r["ready"] == "ready"
    assert r["before"] and all(r["before"]) and not any(r["after"]) and all(r["again"])
    assert r["areaAfter"] == 0
    assert not console_errors(proc.stderr), console_errors(proc.stderr)
