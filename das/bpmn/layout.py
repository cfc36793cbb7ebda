"""Left-to-right layout computed from the block structure (no npm, no graph search).

The compiler builds a ``Frag`` (relative boxes of every shape plus the y of its main line)
for each block and composes them: sequences side by side, branches stacked, handlers of
boundary events in rows below their task. Edges are routed orthogonally between side
midpoints of the shapes, so every waypoint list starts and ends on a shape border.
``check_layout`` re-verifies a finished diagram: shapes of one container do not overlap and
edges touch their shapes. Sizes follow bpmn-js defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SIZES = {"task": (100.0, 80.0), "event": (36.0, 36.0), "gateway": (50.0, 50.0)}
GAP_X = 50.0
GAP_Y = 40.0
PAD = 30.0
EMPTY_ROW = 40.0


@dataclass
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h


@dataclass
class Frag:
    """Relative geometry of one block: its shapes, size and main-line y."""

    w: float
    h: float
    cy: float
    pos: dict[str, Box] = field(default_factory=dict)
    via: dict[str, float] = field(default_factory=dict)  # flow id -> y of its horizontal run

    def shifted(self, dx: float, dy: float) -> Frag:
        pos = {k: Box(b.x + dx, b.y + dy, b.w, b.h) for k, b in self.pos.items()}
        return Frag(self.w, self.h, self.cy + dy, pos, {k: v + dy for k, v in self.via.items()})

    def absorb(self, other: Frag) -> None:
        self.pos.update(other.pos)
        self.via.update(other.via)


def shape(node_id: str, kind: str, w: float | None = None, h: float | None = None) -> Frag:
    dw, dh = SIZES[kind]
    w, h = w or dw, h or dh
    return Frag(w, h, h / 2, {node_id: Box(0, 0, w, h)})


def empty(height: float = EMPTY_ROW) -> Frag:
    """An empty branch: a row an edge runs along."""
    return Frag(0.0, height, height / 2)


def seq(frags: list[Frag], gap: float = GAP_X) -> Frag:
    """Place fragments left to right with their main lines aligned."""
    frags = [f for f in frags if f.w > 0 or f.pos]
    if not frags:
        return empty()
    top_cy = max(f.cy for f in frags)
    out = Frag(0.0, 0.0, top_cy)
    x = 0.0
    for f in frags:
        g = f.shifted(x, top_cy - f.cy)
        out.absorb(g)
        out.h = max(out.h, top_cy - f.cy + f.h)
        x += f.w + gap
    out.w = x - gap
    return out


def stack(split: Frag, rows: list[Frag], join: Frag, row_flows: list[list[str]], gap: float = GAP_X) -> Frag:
    """Split gateway, rows stacked top to bottom, join gateway; main line = first row.

    ``row_flows[i]`` are flow ids that should run along row i (direct split->join flows).
    """
    inner_w = max((r.w for r in rows), default=0.0)
    y = 0.0
    placed: list[Frag] = []
    for r in rows:
        placed.append(r.shifted(split.w + gap, y))
        y += r.h + GAP_Y
    first_cy = placed[0].cy
    out = Frag(0.0, 0.0, first_cy)
    out.absorb(split.shifted(0, first_cy - split.cy))
    for i, r in enumerate(placed):
        out.absorb(r)
        for fid in row_flows[i]:
            out.via[fid] = r.cy
    join_x = split.w + gap + inner_w + gap
    out.absorb(join.shifted(join_x, first_cy - join.cy))
    out.w = join_x + join.w
    out.h = max(y - GAP_Y, first_cy + split.h / 2)
    top = min(b.y for b in out.pos.values()) if out.pos else 0.0
    if top < 0:
        out = out.shifted(0, -top)
        out.h -= top
    return out


def below(base: Frag, rows: list[tuple[Frag, float]]) -> Frag:
    """Hang rows (fragment, x offset) below ``base``; used for boundary-event handlers."""
    out = Frag(base.w, base.h, base.cy)
    out.absorb(base)
    y = base.h + GAP_Y
    for frag, x in rows:
        out.absorb(frag.shifted(x, y))
        out.w = max(out.w, x + frag.w)
        y += frag.h + GAP_Y
    out.h = y - GAP_Y if rows else base.h
    return out


def boundary_box(host: Box, index: int) -> Box:
    """Boundary events sit on the host's bottom border, left to right."""
    w, h = SIZES["event"]
    return Box(host.x + 12 + index * (w + 8), host.bottom - h / 2, w, h)


def route(
    src: Box, tgt: Box, src_kind: str, tgt_kind: str, via: float | None = None, boundary: bool = False
) -> list[tuple[float, float]]:
    """Orthogonal waypoints from a border midpoint of ``src`` to one of ``tgt``."""
    if boundary:  # out of the bottom of a boundary event, then along the target's row
        y = tgt.cy if via is None else via
        pts = [(src.cx, src.bottom), (src.cx, y)]
        return pts + _enter(tgt, tgt_kind, y, pts[-1][0])
    if tgt.cx < src.cx - 1:  # back edge (loop): below both shapes
        y = via if via is not None else max(src.bottom, tgt.bottom) + GAP_Y / 2
        return [(src.cx, src.bottom), (src.cx, y), (tgt.cx, y), (tgt.cx, tgt.bottom)]
    if via is None:
        via = tgt.cy if (src_kind == "gateway" and tgt_kind != "gateway") else src.cy
    if abs(via - src.cy) < 0.5:
        pts = [(src.right, src.cy)]
    else:
        pts = [(src.cx, src.bottom if via > src.cy else src.y), (src.cx, via)]
    return pts + _enter(tgt, tgt_kind, via, pts[-1][0])


def _enter(tgt: Box, kind: str, y: float, x_from: float) -> list[tuple[float, float]]:
    if abs(y - tgt.cy) < 0.5:
        return [(tgt.x, tgt.cy)]
    if kind == "gateway":
        return [(tgt.cx, y), (tgt.cx, tgt.bottom if y > tgt.cy else tgt.y)]
    x = max(tgt.x - GAP_X / 2, x_from)
    return [(x, y), (x, tgt.cy), (tgt.x, tgt.cy)]


def on_border(pt: tuple[float, float], b: Box, tol: float = 1.0) -> bool:
    x, y = pt
    inside_x = b.x - tol <= x <= b.right + tol
    inside_y = b.y - tol <= y <= b.bottom + tol
    return (inside_x and inside_y) and (
        abs(x - b.x) <= tol or abs(x - b.right) <= tol or abs(y - b.y) <= tol or abs(y - b.bottom) <= tol
    )


def overlaps(a: Box, b: Box) -> bool:
    return a.x < b.right and b.x < a.right and a.y < b.bottom and b.y < a.bottom


def check_layout(
    shapes: dict[str, Box],
    containers: dict[str, str | None],
    attached: dict[str, str],
    edges: dict[str, tuple[str, str, list[tuple[float, float]]]],
) -> list[str]:
    """Findings for a finished diagram: overlapping shapes, edges not touching their shapes.

    ``containers`` maps element -> its parent sub-process (None at top level); ``attached``
    maps boundary event -> host (allowed to overlap it).
    """
    findings: list[str] = []
    ids = sorted(shapes)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            if containers.get(a) != containers.get(b):
                continue
            if attached.get(a) == b or attached.get(b) == a:
                continue
            if attached.get(a) and attached.get(a) == attached.get(b):
                continue
            if overlaps(shapes[a], shapes[b]):
                findings.append(f"shapes {a} and {b} overlap")
    for fid, (src, tgt, pts) in sorted(edges.items()):
        if src not in shapes or tgt not in shapes:
            findings.append(f"edge {fid}: missing shape for {src if src not in shapes else tgt}")
            continue
        if len(pts) < 2:
            findings.append(f"edge {fid}: fewer than two waypoints")
            continue
        if not on_border(pts[0], shapes[src]):
            findings.append(f"edge {fid} does not start on the border of {src}")
        if not on_border(pts[-1], shapes[tgt]):
            findings.append(f"edge {fid} does not end on the border of {tgt}")
    return findings
