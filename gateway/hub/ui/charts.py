"""Charts of the 通报 as inline SVG, written by hand on the server: no chart library, no script, and
they print as sharply as the text around them."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

FONT = "'Noto Sans CJK SC','WenQuanYi Zen Hei','Microsoft YaHei',sans-serif"


def _pct(v: float) -> str:
    return f"{v:.1%}"


def bar_chart(title: str, items: Sequence[tuple[str, float]], color: str = "#c0392b", width: int = 520) -> Markup:
    """Horizontal bars, one per (label, share 0..1), labelled with the share as a percentage."""
    label_w, row_h, top = 200, 22, 30  # 200 px: a 14-character department name whole
    plot_w = width - label_w - 60
    top_value = max([v for _, v in items] + [0.0])
    scale = max(top_value, 0.05)  # a chart of zeros still shows an axis, not one full bar
    height = top + row_h * max(len(items), 1) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{label_w}" y1="{top - 4}" x2="{label_w}" y2="{height - 6}" stroke="#888"/>',
    ]
    for i, (label, value) in enumerate(items):
        y = top + i * row_h
        w = round(plot_w * value / scale, 1)
        name = label if len(label) <= 15 else label[:14] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{row_h - 8}" fill="{color}"/>')
        parts.append(f'<text x="{label_w + w + 4}" y="{y + 14}">{_pct(value)}</text>')
    if not items:
        parts.append(f'<text x="{label_w + 6}" y="{top + 14}" fill="#666">无数据</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    width: int = 520,
) -> Markup:
    """Shares (0..1) over periods: one line per (name, values, colour), a legend, a percentage axis."""
    left, right, top, bottom = 52, 36, 44, 40  # room for the last period's label
    height = 240
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max([v for _, vals, _ in series for v in vals] + [0.0])
    scale = max(0.05, min(1.0, round(top_value * 1.2 + 0.005, 2)))
    n = len(labels)

    def x(i: int) -> float:
        return round(left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2), 1)

    def y(v: float) -> float:
        return round(top + plot_h - plot_h * min(v, scale) / scale, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for k in range(5):  # grid lines at 0, 25, 50, 75, 100 % of the axis
        v = scale * k / 4
        parts.append(f'<line x1="{left}" y1="{y(v)}" x2="{width - right}" y2="{y(v)}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4}" text-anchor="end">{_pct(v)}</text>')
    for i, label in enumerate(labels):
        parts.append(f'<text x="{x(i)}" y="{height - bottom + 16}" text-anchor="middle">{escape(label)}</text>')
    for j, (name, values, color) in enumerate(series):
        pts = " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in enumerate(values):
            parts.append(
                f'<circle cx="{x(i)}" cy="{y(v)}" r="3" fill="{color}"><title>{escape(name)} '
                f"{escape(labels[i])}：{_pct(v)}</title></circle>"
            )
        lx = left + j * 130
        parts.append(f'<rect x="{lx}" y="26" width="14" height="4" fill="{color}"/>')
        parts.append(f'<text x="{lx + 18}" y="32">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
