"""An SVG flame graph of folded stacks ("a;b;c COUNT" lines), self-contained: hovering a frame shows its name and
share of the samples, clicking zooms to it (its ancestors stretch to the full width), clicking the bottom frame
or "Reset zoom" zooms back out."""

from __future__ import annotations

import html
import zlib
from collections.abc import Iterable

WIDTH = 1200
FRAME = 16
PAD_TOP = 36
PAD_BOTTOM = 28
SIDE = 10
CHAR = 7.0  # average width of a character of the 12px monospace font, for fitting names in frames


class _Node:
    __slots__ = ("children", "count", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.children: dict[str, _Node] = {}


def _tree(stacks: Iterable[tuple[list[str], int]]) -> _Node:
    root = _Node("all")
    for frames, count in stacks:
        root.count += count
        node = root
        for frame in frames:
            node = node.children.setdefault(frame, _Node(frame))
            node.count += count
    return root


def _color(name: str) -> str:
    # warm colours, stable per name; kernel frames ("_[k]") orange-ish, the rest red-yellow
    h = zlib.crc32(name.encode())
    if name.endswith("_[k]"):
        return f"rgb({220 + h % 36},{120 + (h >> 8) % 60},{40 + (h >> 16) % 40})"
    return f"rgb({205 + h % 50},{(h >> 8) % 200},{(h >> 16) % 55})"


def _fit(name: str, width: float) -> str:
    n = int(width / CHAR)
    if n < 3:
        return ""
    return name if len(name) <= n else name[: n - 2] + ".."


def parse_folded(text: str) -> list[tuple[list[str], int]]:
    stacks = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        stacks.append((stack.split(";"), int(count)))
    return stacks


def render(stacks: Iterable[tuple[list[str], int]], title: str = "Flame Graph") -> str:
    root = _tree(stacks)
    total = max(root.count, 1)
    rows: list[tuple[_Node, int, int]] = []  # (node, depth, start sample)

    def walk(node: _Node, depth: int, start: int) -> int:
        rows.append((node, depth, start))
        offset = start
        for child in sorted(node.children.values(), key=lambda c: c.name):
            offset = walk(child, depth + 1, offset)
        return start + node.count

    walk(root, 0, 0)
    depth = max(d for _, d, _ in rows) + 1
    height = PAD_TOP + depth * FRAME + PAD_BOTTOM
    inner = WIDTH - 2 * SIDE
    out = [
        '<?xml version="1.0" standalone="no"?>',
        (f'<svg version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
         f'xmlns="http://www.w3.org/2000/svg" data-total="{root.count}" data-width="{inner}" '
         f'data-side="{SIDE}">'),
        ("<style>.f rect{stroke:#fff;stroke-width:0.5;rx:2} .f:hover rect{stroke:#000} "
         ".f text{font:12px monospace;pointer-events:none} #details,#title,#reset{font:12px monospace} "
         "#title{font-size:17px}</style>"),
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#f8f8f0"/>',
        f'<text id="title" x="{WIDTH / 2}" y="22" text-anchor="middle">{html.escape(title)}</text>',
        f'<text id="reset" x="{SIDE}" y="22" style="cursor:pointer;display:none">Reset zoom</text>',
        f'<text id="details" x="{SIDE}" y="{height - 10}"> </text>',
        '<g id="frames">',
    ]
    for node, d, start in rows:
        x = SIDE + start / total * inner
        w = node.count / total * inner
        y = height - PAD_BOTTOM - (d + 1) * FRAME
        share = 100.0 * node.count / total
        name = html.escape(node.name, quote=True)
        out.append(
            f'<g class="f" data-name="{name}" data-start="{start}" data-count="{node.count}" data-depth="{d}">'
            f"<title>{name} ({node.count} samples, {share:.2f}%)</title>"
            f'<rect x="{x:.3f}" y="{y}" width="{w:.3f}" height="{FRAME - 1}" fill="{_color(node.name)}"/>'
            f'<text x="{x + 3:.3f}" y="{y + FRAME - 4}">{html.escape(_fit(node.name, w))}</text></g>')
    out.append("</g>")
    out.append("<script><![CDATA[" + _SCRIPT + "]]></script>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


_SCRIPT = r"""
(function () {
  var svg = document.documentElement, total = +svg.getAttribute("data-total");
  var inner = +svg.getAttribute("data-width"), side = +svg.getAttribute("data-side");
  var details = document.getElementById("details"), reset = document.getElementById("reset");
  var frames = Array.prototype.slice.call(document.querySelectorAll("g.f"));
  function fit(name, w) {
    var n = Math.floor(w / 7);
    if (n < 3) return "";
    return name.length <= n ? name : name.slice(0, n - 2) + "..";
  }
  function place(g, x, w) {
    var r = g.querySelector("rect"), t = g.querySelector("text");
    r.setAttribute("x", x); r.setAttribute("width", w);
    t.setAttribute("x", x + 3); t.textContent = fit(g.getAttribute("data-name"), w);
    g.style.display = "";
  }
  function zoom(target) {
    var s = +target.getAttribute("data-start"), c = +target.getAttribute("data-count");
    var d = +target.getAttribute("data-depth");
    frames.forEach(function (g) {
      var gs = +g.getAttribute("data-start"), gc = +g.getAttribute("data-count"), gd = +g.getAttribute("data-depth");
      if (gd < d && gs <= s && s + c <= gs + gc) place(g, side, inner);            // an ancestor: full width
      else if (gd >= d && s <= gs && gs + gc <= s + c) place(g, side + (gs - s) / c * inner, gc / c * inner);
      else g.style.display = "none";
    });
    reset.style.display = d > 0 ? "" : "none";
  }
  frames.forEach(function (g) {
    g.addEventListener("mouseover", function () {
      var c = +g.getAttribute("data-count");
      details.textContent = g.getAttribute("data-name") + " (" + c + " samples, " +
        (100 * c / total).toFixed(2) + "%)";
    });
    g.addEventListener("mouseout", function () { details.textContent = " "; });
    g.addEventListener("click", function () { zoom(g); });
  });
  reset.addEventListener("click", function () { zoom(frames[0]); });
})();
"""
