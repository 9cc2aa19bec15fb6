"""Small multiples: a plot of many series drawn as a grid of panels, each
with at most MAX_SERIES series, so any one mechanism can be followed.

Rows are groups of mechanisms: whole families (as the suite records them in
each row's 'family': pipe, socket, shm, ...) packed in registry order while
they fit in MAX_SERIES series; columns are the modes. A mechanism sits in
the same row, with the same colour and marker, in every plot of the report.
All panels of a plot share their axes' limits, so panels compare.

Each panel is its own small matplotlib figure, rendered to inline SVG, with
an HTML legend (buttons) and its points' positions in SVG units, which the
page's own script (templates/plots.js) uses: clicking a legend entry hides
or shows its series, hovering a point shows its values.
"""

import json
from dataclasses import dataclass, field

from markupsafe import Markup
from matplotlib.figure import Figure
from matplotlib.markers import MarkerStyle
from matplotlib.path import Path as MplPath

from . import model, plots

MAX_SERIES = 8
PANEL_WIDTH = 6.4  # inches, at 72 dpi (SVG points); two panels fit a row of the page
PANEL_HEIGHT = 3.3


def family_of(run, mechanism):
    """The family the run's rows give the mechanism, or None (files written
    before rows carried it)."""
    for case in run.cases.values():
        if case.key.mechanism == mechanism:
            found, value = case.field("family")
            if found and isinstance(value, str) and value:
                return value
    return None


@dataclass
class Layout:
    """The report-wide grouping: rows of mechanisms (with a title) and the
    modes, in order. Every plot uses it, so a mechanism stays in its row."""

    groups: list  # [(title, [mechanism, ...])]
    modes: list
    several_runs: bool
    several_places: bool
    families: dict = field(default_factory=dict)  # mechanism -> family, when recorded

    def title(self, mechanisms):
        """A panel's name from what it draws: its families when the rows
        record them, else its mechanisms."""
        fams = [self.families.get(m) for m in mechanisms]
        if all(fams):
            return " · ".join(dict.fromkeys(fams))
        return ", ".join(mechanisms)

    def row_of(self, mechanism):
        for i, (_title, mechs) in enumerate(self.groups):
            if mechanism in mechs:
                return i
        return None

    def index_in_row(self, mechanism):
        row = self.row_of(mechanism)
        return 0 if row is None else self.groups[row][1].index(mechanism)


def layout(runs):
    """Packs the mechanisms of runs into rows of at most MAX_SERIES series
    per mode: whole families while they fit (a family too big for one row
    is split by mechanism)."""
    mechs = []
    for run in runs:
        mechs += [m for m in run.mechanisms() if m not in mechs]
    keys = {model.series_key(r, c) for r in runs for c in r.case_list()}
    modes = [m for m in ("sync", "async") if any(k.mode == m for k in keys)]
    modes += sorted({k.mode for k in keys} - set(modes))
    count = {m: max([sum(1 for k in keys if k.mechanism == m and k.mode == mode)
                     for mode in modes] or [1]) for m in mechs}
    families = []  # [(family, [mechanisms])] in registry order
    for m in mechs:
        fam = next((f for f in (family_of(r, m) for r in runs) if f), None) or f"\0{m}"
        for name, members in families:
            if name == fam:
                members.append(m)
                break
        else:
            families.append((fam, [m]))
    groups, cur, cur_fams, cur_n = [], [], [], 0

    def flush():
        nonlocal cur, cur_fams, cur_n
        if cur:
            groups.append((_title(cur_fams, cur), cur))
        cur, cur_fams, cur_n = [], [], 0

    for fam, members in families:
        n = sum(max(1, count[m]) for m in members)
        if n > MAX_SERIES:
            flush()
            for m in members:
                if cur_n + max(1, count[m]) > MAX_SERIES:
                    flush()
                cur.append(m)
                cur_n += max(1, count[m])
                if fam not in cur_fams:
                    cur_fams.append(fam)
            flush()
            continue
        if cur_n + n > MAX_SERIES:
            flush()
        cur += members
        cur_fams.append(fam)
        cur_n += n
    flush()
    cases = [c for r in runs for c in r.case_list()]
    known = {m: fam for fam, members in families if not fam.startswith("\0") for m in members}
    return Layout(groups, modes, len(runs) > 1, len({c.key.placement for c in cases}) > 1,
                  known)


def _title(families, mechanisms):
    names = [f for f in families if not f.startswith("\0")]
    if len(names) == len(families):
        return " · ".join(names)
    return ", ".join(mechanisms)


def label_of(key, lay, with_mode=False):
    """A series' legend text in its panel: the mode is the panel's, so only
    what varies besides it (with_mode: the mode too, for a hover text)."""
    text = model.CaseKey(key.mechanism, key.mode, "latency", 0, key.placement, key.where,
                         key.engine).series()
    if with_mode:
        text += f" ({key.mode})"
    if lay.several_places:
        text += f" [{key.placement}]"
    if lay.several_runs:
        text = f"{key.run_label}: {text}"
    return text


class Styles(plots.Styles):
    """plots.Styles with a mechanism's colour and marker chosen by its place
    in its row, so no two series of a panel share a colour."""

    def __init__(self, lay, placements=()):
        super().__init__([], placements)
        self._lay = lay

    def of(self, mechanism, mode="sync", placement=None, where="local"):
        self._index[mechanism] = self._lay.index_in_row(mechanism)
        return super().of(mechanism, mode, placement, where)


@dataclass
class PanelSeries:
    sid: str
    key: model.SeriesKey
    label: str
    style: dict
    cases: list  # the series' cases of the plot's pattern, by size
    text: str = ""  # the series named with its mode, for hover texts


class Panel:
    """One small figure: a title, an axes, the series drawn in it."""

    def __init__(self, title, series, column, height=PANEL_HEIGHT):
        self.title = title
        self.column = column  # the grid's column: the mode, or a load sweep's percentile
        self.series = series
        self.fig = Figure(figsize=(PANEL_WIDTH, height), dpi=72, layout="constrained")
        self.ax = self.fig.add_subplot()
        self.ax.set_title(title, fontsize=10, loc="left")
        self._gids = {}  # gid -> sid
        self._points = []  # (sid, x, y, text) in data coordinates

    def mark(self, artist, sid, name):
        """Tags drawn data (plots.tag) and remembers which series it is."""
        plots.tag(artist, name)
        parts = list(artist) if hasattr(artist, "patches") else [artist]
        for part in parts:
            self._gids[part.get_gid()] = sid

    def point(self, sid, x, y, text):
        self._points.append((sid, x, y, text))

    def render(self, salt, title):
        """The template's data: SVG (series groups carry data-series), the
        legend, and the hover points in SVG units."""
        svg = plots.to_svg(self.fig, salt, title)
        for gid, sid in self._gids.items():
            svg = svg.replace(f'id="{gid}"', f'id="{gid}" data-series="{sid}"', 1)
        height = self.fig.get_figheight() * 72.0
        scale = 72.0 / self.fig.dpi
        pts = []
        for sid, x, y, text in self._points:
            dx, dy = self.ax.transData.transform((x, y))
            pts.append([sid, round(dx * scale, 1), round(height - dy * scale, 1), text])
        return {"title": self.title, "svg": Markup(svg), "points": json.dumps(pts),
                "legend": [{"sid": s.sid, "label": s.label, "swatch": swatch(s.style)}
                           for s in self.series]}


def panels(runs, lay, styles, pattern, size=None, wanted=None):
    """The panels of a plot over one pattern's cases (at size, when given;
    those wanted(case) says, when given): [(row title, mode, [PanelSeries])]
    for every row and mode that has a series, in layout order."""
    by_key = {}
    for run in runs:
        for case in run.case_list(pattern):
            if size is not None and case.key.size != size:
                continue
            if wanted is not None and not wanted(run, case):
                continue
            by_key.setdefault(model.series_key(run, case), []).append(case)
    out = []
    for _title, mechs in lay.groups:
        for mode in lay.modes:
            keys = [k for k in by_key if k.mode == mode and k.mechanism in mechs]
            keys.sort(key=lambda k: (mechs.index(k.mechanism), k.run_label, k.placement,
                                     k.where, k.engine))
            if not keys:
                continue
            series = [PanelSeries(f"s{i}", k, label_of(k, lay),
                                  styles.of(k.mechanism, k.mode, k.placement, k.where),
                                  sorted(by_key[k], key=lambda c: c.key.size),
                                  label_of(k, lay, with_mode=True))
                      for i, k in enumerate(keys)]
            drawn = list(dict.fromkeys(k.mechanism for k in keys))
            out.append((f"{lay.title(drawn)} — {mode}", mode, series))
    return out


def columns(lay, specs):
    """How many panels a row of the grid holds: one per mode drawn."""
    return max(1, len({mode for _t, mode, _s in specs}))


# --- Legend swatches: a short line in the series' dash pattern with its marker.

_DASHES = {"-": "", "--": "5 2.5", ":": "1.3 2", "-.": "6 2 1.3 2"}


def _dash(linestyle):
    if isinstance(linestyle, tuple):
        return " ".join(f"{v:g}" for v in linestyle[1])
    return _DASHES.get(linestyle, "")


def _marker_path(marker, size, cx, cy):
    style = MarkerStyle(marker)
    path = style.get_path().transformed(style.get_transform())
    parts = []
    for verts, code in path.iter_segments(simplify=False, curves=True):
        pts = [(cx + verts[i] * size, cy - verts[i + 1] * size) for i in range(0, len(verts), 2)]
        if code == MplPath.MOVETO:
            parts.append("M%.2f %.2f" % pts[0])
        elif code == MplPath.LINETO:
            parts.append("L%.2f %.2f" % pts[0])
        elif code == MplPath.CURVE3:
            parts.append("Q%.2f %.2f %.2f %.2f" % (*pts[0], *pts[1]))
        elif code == MplPath.CURVE4:
            parts.append("C%.2f %.2f %.2f %.2f %.2f %.2f" % (*pts[0], *pts[1], *pts[2]))
        elif code == MplPath.CLOSEPOLY:
            parts.append("Z")
    return "".join(parts)


def swatch(style):
    """An inline SVG of the series' line and marker, for its legend entry."""
    colour = style.get("color", "#000000")
    dash = _dash(style.get("linestyle", "-"))
    line = "" if style.get("linestyle") in ("none", "None", "") else (
        f'<line x1="1" y1="7" x2="29" y2="7" stroke="{colour}" stroke-width="1.6"'
        + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
    marker = ""
    if style.get("marker"):
        d = _marker_path(style["marker"], 8.0, 15.0, 7.0)
        marker = (f'<path d="{d}" fill="{style.get("markerfacecolor", colour)}" '
                  f'stroke="{style.get("markeredgecolor", colour)}" stroke-width="1"/>')
    return Markup(f'<svg class="swatch" width="30" height="14" viewBox="0 0 30 14" '
                  f'aria-hidden="true">{line}{marker}</svg>')
