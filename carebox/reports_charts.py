"""Server-rendered SVG charts (no JavaScript, no style attributes: print, e-mail and a strict CSP) and the digest."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from carebox.duration import format_duration
from carebox.reports import Figures, HeatCell, Report, TrendPoint, day_number

DAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WALL_COLOUR = "#c0392b"
BUSINESS_COLOUR = "#2c6fbb"
FONT = 'font-family="Helvetica, Arial, sans-serif"'


def _dur(seconds: float | None) -> str:
    return "—" if seconds is None else format_duration(seconds)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _svg_open(width: int, height: int, title: str, font_size: int) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" {FONT} font-size="{font_size}">')


def trend_svg(points: Sequence[TrendPoint], title: str = "Median first response per day", width: int = 640,
              height: int = 220, link: str | None = None) -> str:
    """Paired bars per period: median first response on the wall clock and on the business clock.

    `link` is a URL prefix; when given, each period's bars link to its drill-down (`link` + local day number)."""
    left, bottom, top = 56, 36, 28
    plot_w, plot_h = width - left - 10, height - top - bottom
    peak = max([v for p in points for v in (p.frt_wall_p50_s, p.frt_business_p50_s) if v is not None] or [0.0]) or 1.0
    slot = plot_w / max(1, len(points))
    bar = max(1.0, slot * 0.4)
    parts = [_svg_open(width, height, title, 11),
             f'<title>{escape(title)}</title>',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#333"/>']
    for frac in (0.5, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ccc" stroke-dasharray="3,3"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(_dur(peak * frac))}</text>')
    step = max(1, len(points) // 12)
    for i, p in enumerate(points):
        x = left + i * slot + slot * 0.1
        for j, (value, colour, name) in enumerate(((p.frt_wall_p50_s, WALL_COLOUR, "wall clock"),
                                                   (p.frt_business_p50_s, BUSINESS_COLOUR, "business clock"))):
            if value is None:
                continue
            h = plot_h * value / peak
            rect = (f'<rect x="{x + j * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{p.start.isoformat()} {name}: {escape(_dur(value))}</title></rect>')
            parts.append(f'<a href="{escape(link)}{day_number(p.start)}">{rect}</a>' if link else rect)
        if i % step == 0:
            parts.append(f'<text x="{x + bar:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{p.start.strftime("%d %b")}</text>')
    parts.append(_legend(left, height - 6))
    parts.append("</svg>")
    return "".join(parts)


def _legend(x: int, y: int) -> str:
    return (f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{WALL_COLOUR}"/>'
            f'<text x="{x + 14}" y="{y}">customer (wall) clock</text>'
            f'<rect x="{x + 150}" y="{y - 9}" width="10" height="10" fill="{BUSINESS_COLOUR}"/>'
            f'<text x="{x + 164}" y="{y}">business clock</text>')


def _shade(value: float, peak: float) -> str:
    """White to dark blue; readable in grey print too."""
    level = 0.0 if peak <= 0 else min(1.0, value / peak)
    r, g, b = (round(255 - level * (255 - c)) for c in (20, 60, 140))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap_svg(cells: Sequence[HeatCell], link: str | None = None, title: str = "Volume by hour of week") -> str:
    """7 x 24 grid of volume; closed hours hatched with a border; each cell titled with its figures.

    `link` is a URL prefix; when given, every cell links to its drill-down (`link` + hour of week)."""
    cw, ch, left, top = 24, 20, 40, 30
    width, height = left + 24 * cw + 10, top + 7 * ch + 40
    peak = max([c.conversations for c in cells] or [0])
    parts = [_svg_open(width, height, title, 10),
             f'<title>{escape(title)}</title>',
             f'<text x="{left}" y="14" font-size="13" font-weight="bold">{escape(title)}</text>']
    for hour in range(0, 24, 3):
        parts.append(f'<text x="{left + hour * cw + cw / 2}" y="{top - 4}" text-anchor="middle">{hour:02d}h</text>')
    for c in cells:
        day, hour = divmod(c.hour_of_week, 24)
        x, y = left + hour * cw, top + day * ch
        tip = (f"{DAY_LABELS[day]} {hour:02d}:00 · {c.conversations} conversations · median first response "
               f"{_dur(c.frt_wall_p50_s)} · breach rate {_pct(c.breach_rate_pct)}{'' if c.open else ' · closed'}")
        rect = (f'<rect x="{x}" y="{y}" width="{cw - 1}" height="{ch - 1}" fill="{_shade(c.conversations, peak)}" '
                f'stroke="{"#999" if c.open else "#e67e22"}" stroke-width="{1 if c.open else 1.5}">'
                f'<title>{escape(tip)}</title></rect>')
        if link and c.conversations:
            rect = f'<a href="{escape(link)}{c.hour_of_week}">{rect}</a>'
        parts.append(rect)
    for day, label in enumerate(DAY_LABELS):
        parts.append(f'<text x="{left - 6}" y="{top + day * ch + 14}" text-anchor="end">{label}</text>')
    y = top + 7 * ch + 18
    parts.append(f'<rect x="{left}" y="{y - 9}" width="10" height="10" fill="#fff" stroke="#e67e22" stroke-width="1.5"/>'
                 f'<text x="{left + 14}" y="{y}">outside service hours</text>'
                 f'<text x="{left + 160}" y="{y}">darker = more conversations (max {peak} per hour)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _line(f: Figures) -> str:
    return (f"{f.key or 'all':<24} {f.conversations:>7} {f.answered:>7}  {_dur(f.frt_wall.p50):>8} {_dur(f.frt_wall.p90):>8}"
            f"  {_dur(f.frt_business.p50):>8} {_dur(f.frt_business.p90):>8}  {_pct(f.sla_attainment_pct):>7}"
            f"  {_pct(f.within_1h_wall_pct):>7}")


def _header(label: str) -> str:
    return (f"{label:<24} {'convs':>7} {'answered':>7}  {'wall p50':>8} {'wall p90':>8}  {'bus. p50':>8} "
            f"{'bus. p90':>8}  {'SLA':>7}  {'<=1h':>7}")


def text_table(rows: Sequence[Figures], totals: Figures, label: str = "account") -> str:
    """A fixed-width table of groups and totals (terminal and plain-text e-mail)."""
    return "\n".join([_header(label), *(_line(f) for f in rows), _line(totals)])


def _period(report: Report) -> str:
    since = report.since.date().isoformat() if report.since else "the beginning"
    until = report.until.date().isoformat() if report.until else report.generated_at.date().isoformat()
    return f"{since} to {until}"


def render_digest(report: Report) -> tuple[str, str, str]:
    """(subject, plain text, HTML with an inline SVG chart) of a report, for the e-mail digest."""
    t = report.totals
    subject = (f"carebox digest {_period(report)}: {t.conversations} conversations, median first response "
               f"{_dur(t.frt_wall.p50)} (customer clock) / {_dur(t.frt_business.p50)} (business), "
               f"SLA {_pct(t.sla_attainment_pct)}")
    text = "\n".join([
        f"Response times {_period(report)} ({report.timezone})", "",
        text_table(report.by_account, t), "",
        (f"Off-hours arrivals: {t.off_hours_arrivals} ({_pct(t.off_hours_arrival_pct)}), waiting "
         f"{_dur(t.off_hours_wait_mean_s)} on average; {_pct(t.off_hours_wait_share_pct)} of all customer waiting fell "
         "outside service hours."),
        f"Customers: {t.customers}, repeat contacts: {t.repeat_contacts}.",
    ])
    rows = "".join(
        f"<tr><td>{escape(f.key)}</td><td>{f.conversations}</td><td>{f.answered}</td><td>{_dur(f.frt_wall.p50)}</td>"
        f"<td>{_dur(f.frt_wall.p90)}</td><td>{_dur(f.frt_business.p50)}</td><td>{_dur(f.frt_business.p90)}</td>"
        f"<td>{_pct(f.sla_attainment_pct)}</td><td>{_pct(f.within_1h_wall_pct)}</td></tr>" for f in report.by_account)
    html = (
        "<!doctype html><html><body>"
        f"<h2>Response times {escape(_period(report))}</h2>"
        f"<p>{t.conversations} conversations, {t.answered} answered. Median first response "
        f"<b>{_dur(t.frt_wall.p50)}</b> on the customer's clock, <b>{_dur(t.frt_business.p50)}</b> in service hours; "
        f"SLA attainment <b>{_pct(t.sla_attainment_pct)}</b>, answered within the customer's expectation "
        f"<b>{_pct(t.within_1h_wall_pct)}</b>.</p>"
        f"{trend_svg(report.daily)}"
        "<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th>Account</th><th>Conversations</th>"
        "<th>Answered</th><th>Wall p50</th><th>Wall p90</th><th>Business p50</th><th>Business p90</th><th>SLA</th>"
        f"<th>Within expectation</th></tr>{rows}</table>"
        f"<p>{_pct(t.off_hours_wait_share_pct)} of all customer waiting fell outside service hours.</p>"
        "</body></html>"
    )
    return subject, text, html
