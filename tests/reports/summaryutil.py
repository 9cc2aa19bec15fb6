"""Reading the Markdown summary (summary.md) in tests: its '###' sections,
the table of each question, the collapsed <details> blocks."""

ROUND_TRIP = "Round trip (p50) by message size"
THROUGHPUT = "Throughput by message size"
FLOORS = "Against the calibration floor"


def headings(md):
    """The '### ' headings, in order."""
    return [line[4:] for line in md.splitlines() if line.startswith("### ")]


def section(md, heading):
    """The text of a '### heading' section ('' when there is none)."""
    part = md.split(f"### {heading}\n", 1)
    return part[1].split("\n### ", 1)[0] if len(part) == 2 else ""


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def table(text):
    """(head, rows) of the first Markdown table in text: rows are lists of
    cells, the separator line left out; ([], []) without a table."""
    lines = []
    for line in text.splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    if not lines:
        return [], []
    return cells(lines[0]), [cells(line) for line in lines[2:]]


def rows_by(head, rows, column="mechanism"):
    """{cell of column: {header: cell}}."""
    at = head.index(column)
    return {r[at]: dict(zip(head, r)) for r in rows}


def question(md, heading=ROUND_TRIP):
    """(head, {mechanism label: {header: cell}}) of a question's table."""
    head, rows = table(section(md, heading))
    return head, rows_by(head, rows) if head else {}


def paragraph(md, heading=ROUND_TRIP):
    """The paragraph under a question's table (its last paragraph)."""
    return section(md, heading).strip().split("\n\n")[-1]


def details(md, summary):
    """The text inside the <details> block whose <summary> starts with
    summary ('' when there is none)."""
    start = md.find(f"<details><summary>{summary}")
    if start < 0:
        return ""
    return md[start:md.index("</details>", start)]


def floor_rows(md):
    """{mechanism label: {header: cell}} of the calibration-floor table."""
    head, rows = table(details(md, FLOORS))
    return rows_by(head, rows) if head else {}


def pair_rows(md):
    """{(mechanism label, figure): {header: cell}} of the Sync vs async table."""
    head, rows = table(section(md, "Sync vs async"))
    if not head:
        return {}
    return {(r[head.index("mechanism")], r[head.index("figure")]): dict(zip(head, r))
            for r in rows}
