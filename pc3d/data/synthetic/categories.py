"""The eight categories of the built-in data set: one seeded builder per category.

Each builder draws a shape's parameters from a :class:`numpy.random.Generator` and assembles
it from :class:`~pc3d.data.synthetic.primitives.Parts` in real-world-ish units (Y up, facing
+Z); :func:`shape_arrays` normalises the result into the sphere of radius 0.5. See the
package docstring (:mod:`pc3d.data.synthetic`) for what varies in each category.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pc3d.data.synthetic.primitives import Mesh, Parts, clean_and_normalize, o3d_unit, rot_x

__all__ = [
    "CATEGORIES",
    "FINE_CLASSES",
    "FINE_INDEX",
    "SUBSTYLES",
    "SUBSTYLE_CLASSES",
    "fine_classes",
    "substyle_for",
    "SYNSET_TO_NAME",
    "build_parts",
    "fine_class",
    "make_shape",
    "shape_and_style",
    "shape_arrays",
    "shape_style",
]

CATEGORIES: dict[str, str] = {  # name -> synset id (pc3d's own ids)
    "airplane": "90000001",
    "chair": "90000002",
    "table": "90000003",
    "lamp": "90000004",
    "sofa": "90000005",
    "car": "90000006",
    "mug": "90000007",
    "bench": "90000008",
}
SYNSET_TO_NAME: dict[str, str] = {v: k for k, v in CATEGORIES.items()}


def _choice(rng: np.random.Generator, options: Sequence[Any], p: Sequence[float]) -> Any:
    return options[int(rng.choice(len(options), p=np.asarray(p) / np.sum(p)))]


def _leg(parts: Parts, top, bottom, r: float, square: bool) -> None:
    if square:
        parts.box_between(bottom, top, 2 * r, 2 * r, up=(0, 0, 1.0))
    else:
        parts.cylinder(bottom, top, r, res=12)


def _chair(rng: np.random.Generator, sub: str | None = None) -> Parts:
    p = Parts()
    w, d = rng.uniform(0.40, 0.60), rng.uniform(0.38, 0.55)
    h, t = rng.uniform(0.38, 0.50), rng.uniform(0.03, 0.08)
    p.box((w, t, d), (0, h - t / 2, 0))
    support = _choice(rng, ["legs4", "legs3", "legs5", "pedestal"], [0.6, 0.12, 0.1, 0.18])
    if support == "pedestal":
        col_r = rng.uniform(0.025, 0.045)
        base_y = rng.uniform(0.05, 0.09)
        p.cylinder((0, base_y, 0), (0, h - t, 0), col_r, res=14)
        p.cylinder((0, h - t - 0.02, 0), (0, h - t, 0), min(w, d) * 0.3, res=16)  # plate
        if rng.random() < 0.4:
            p.cylinder((0, 0, 0), (0, base_y, 0), rng.uniform(0.18, 0.28), res=24)
        else:
            k = int(rng.integers(4, 6))
            rad = rng.uniform(0.22, 0.3)
            off = rng.uniform(0, 2 * np.pi / k)
            for i in range(k):
                a = off + 2 * np.pi * i / k
                end = np.array([rad * math.sin(a), 0.035, rad * math.cos(a)])
                p.box_between((0, base_y, 0), end, 0.04, 0.03)
                p.ellipsoid(end - (0, 0.01, 0), (0.025,) * 3, res=6)
    else:
        lr = rng.uniform(0.014, 0.03)
        square = bool(rng.random() < 0.45)
        splay = rng.uniform(1.0, 1.25)
        inset = rng.uniform(0.02, 0.06)
        hx, hz = w / 2 - inset - lr, d / 2 - inset - lr
        if support == "legs4":
            tops = [(sx * hx, sz * hz) for sx in (-1, 1) for sz in (-1, 1)]
        else:
            k = 3 if support == "legs3" else 5
            tops = [(hx * math.sin(2 * np.pi * i / k), hz * math.cos(2 * np.pi * i / k)) for i in range(k)]
        for x, z in tops:
            _leg(p, (x, h - t, z), (x * splay, 0, z * splay), lr, square)
        if support == "legs4" and rng.random() < 0.35:  # stretchers
            y = rng.uniform(0.1, 0.2)
            for sx in (-1, 1):
                p.cylinder((sx * hx, y, -hz), (sx * hx, y, hz), lr * 0.6, res=8)
    # back: rises from the rear edge of the seat, tilted backwards (towards -Z)
    bh = rng.uniform(0.30, 0.60)
    tilt = rng.uniform(0.0, np.deg2rad(20))
    bt = rng.uniform(0.02, 0.06)
    bw = w * rng.uniform(0.8, 1.0)
    rot = rot_x(-tilt)
    pivot = np.array([0, h, -d / 2 + bt / 2])

    def back_box(size, local_center) -> None:
        p.box(size, pivot + rot @ np.asarray(local_center, float), rot)

    style = _choice(rng, ["panel", "vslats", "hslats"], [0.5, 0.25, 0.25])
    if style == "panel":
        back_box((bw, bh, bt), (0, bh / 2, 0))
    else:
        post = rng.uniform(0.03, 0.05)
        for sx in (-1, 1):
            back_box((post, bh, bt), (sx * (bw - post) / 2, bh / 2, 0))
        rail = rng.uniform(0.05, 0.1)
        back_box((bw, rail, bt), (0, bh - rail / 2, 0))
        k = int(rng.integers(2, 6))
        if style == "vslats":
            for i in range(k):
                x = -bw / 2 + post + (bw - 2 * post) * (i + 0.5) / k
                back_box((0.6 * (bw - 2 * post) / k, bh - rail, bt * 0.7), (x, (bh - rail) / 2, 0))
        else:
            k = min(k, 4)
            for i in range(k):
                y = (bh - rail) * (i + 0.5) / (k + 0.5)
                back_box((bw - 2 * post, 0.05, bt * 0.7), (0, y, 0))
    arms = bool(rng.random() < 0.35)
    p.style = {"support": support, "back": style, "arms": arms}
    if sub == "footrest":  # a board between the legs (around the column of a pedestal)
        p.box((w * 0.75, 0.02, d * 0.75), (0, h * 0.3, 0))
    elif sub == "skirt":  # boards under the seat's edges
        sk = 0.08
        for sz in (-1, 1):
            p.box((w * 0.9, sk, 0.02), (0, h - t - sk / 2, sz * (d / 2 - 0.04)))
        for sx in (-1, 1):
            p.box((0.02, sk, d * 0.9), (sx * (w / 2 - 0.04), h - t - sk / 2, 0))
    if arms:
        aw = rng.uniform(0.04, 0.07)
        ah = rng.uniform(0.18, 0.26)
        al = d * rng.uniform(0.7, 1.0)
        for sx in (-1, 1):
            x = sx * (w / 2 - aw / 2)
            p.box((aw, 0.03, al), (x, h + ah, -d / 2 + al / 2))
            _leg(p, (x, h + ah, -d / 2 + al - 0.04), (x, h, -d / 2 + al - 0.04), 0.015, bool(rng.random() < 0.5))
    return p


def _table(rng: np.random.Generator, sub: str | None = None) -> Parts:
    p = Parts()
    top = _choice(rng, ["rect", "square", "round"], [0.5, 0.2, 0.3])
    height = rng.uniform(0.55, 0.8)
    th = rng.uniform(0.025, 0.06)
    ytop = height - th / 2
    if top == "round":
        rad = rng.uniform(0.35, 0.65)
        p.cylinder((0, height - th, 0), (0, height, 0), rad, res=32)
        hw = hd = rad / math.sqrt(2)
    else:
        wd = rng.uniform(1.0, 1.8) if top == "rect" else rng.uniform(0.7, 1.1)
        dp = rng.uniform(0.55, 1.0) if top == "rect" else wd
        p.box((wd, th, dp), (0, ytop, 0))
        hw, hd = wd / 2, dp / 2
    ybot = height - th
    lr = rng.uniform(0.02, 0.05)
    square = bool(rng.random() < 0.5)
    if top == "round":
        legs = _choice(rng, [1, 3, 4], [0.5, 0.3, 0.2])
    else:
        legs = _choice(rng, [4, 2], [0.8, 0.2])
    p.style = {"top": top, "legs": int(legs)}
    if legs == 1:
        cr = rng.uniform(0.04, 0.08)
        p.cylinder((0, 0.03, 0), (0, ybot, 0), cr, res=16)
        if rng.random() < 0.5:
            p.cylinder((0, 0, 0), (0, 0.03, 0), rad * rng.uniform(0.45, 0.7), res=28)
        else:
            k = int(rng.integers(3, 5))
            for i in range(k):
                a = 2 * np.pi * i / k
                fr = rad * rng.uniform(0.5, 0.7)
                p.box_between((0, 0.05, 0), (fr * math.sin(a), 0.02, fr * math.cos(a)), 0.05, 0.04)
    elif legs in (3, 4) and top == "round":
        inset = rad * rng.uniform(0.55, 0.8)
        splay = rng.uniform(1.0, 1.25)
        for i in range(legs):
            a = 2 * np.pi * i / legs + (np.pi / 4 if legs == 4 else 0)
            x, z = inset * math.sin(a), inset * math.cos(a)
            _leg(p, (x, ybot, z), (x * splay, 0, z * splay), lr, square)
    elif legs == 4:
        inset = rng.uniform(0.03, 0.1)
        lx, lz = hw - inset - lr, hd - inset - lr
        for sx in (-1, 1):
            for sz in (-1, 1):
                _leg(p, (sx * lx, ybot, sz * lz), (sx * lx, 0, sz * lz), lr, square)
        p.style["apron"] = bool(rng.random() < 0.4)
        if p.style["apron"] and sub is None:  # apron
            ah = rng.uniform(0.06, 0.12)
            for sz in (-1, 1):
                p.box((2 * lx, ah, 0.02), (0, ybot - ah / 2, sz * lz))
            for sx in (-1, 1):
                p.box((0.02, ah, 2 * lz), (sx * lx, ybot - ah / 2, 0))
        p.style["shelf"] = bool(rng.random() < 0.2)
        y_shelf = rng.uniform(0.12, 0.25) if p.style["shelf"] else 0.0
        if p.style["shelf"] and sub is None:  # lower shelf
            p.box((2 * lx, 0.02, 2 * lz), (0, y_shelf, 0))
    else:  # two trestle panels
        inset = rng.uniform(0.08, 0.2)
        pw = 2 * hd * rng.uniform(0.6, 0.9)
        for sx in (-1, 1):
            x = sx * (hw - inset)
            p.box((0.04, ybot, pw), (x, ybot / 2, 0))
            p.box((0.08, 0.04, 2 * hd * 0.9), (x, 0.02, 0))
        p.box((2 * (hw - inset), 0.06, 0.03), (0, rng.uniform(0.15, 0.35), 0))
    if sub == "shelf":  # a lower shelf inside the legs, whatever the support
        if top == "round":
            p.cylinder((0, 0.18 * height - 0.01, 0), (0, 0.18 * height + 0.01, 0), rad * 0.6, res=28)
        else:
            p.box((1.3 * hw, 0.02, 1.3 * hd), (0, 0.18 * height, 0))
    elif sub == "apron":  # boards under the top, inside its edge
        ah = 0.1
        ax, az = 0.8 * hw, 0.8 * hd
        for sz in (-1, 1):
            p.box((2 * ax, ah, 0.02), (0, ybot - ah / 2, sz * az))
        for sx in (-1, 1):
            p.box((0.02, ah, 2 * az), (sx * ax, ybot - ah / 2, 0))
    return p


def _lamp(rng: np.random.Generator) -> Parts:
    p = Parts()
    base = _choice(rng, ["disk", "box", "dome", "frustum"], [0.35, 0.2, 0.2, 0.25])
    br = rng.uniform(0.08, 0.18)
    bh = rng.uniform(0.02, 0.06)
    if base == "disk":
        p.cylinder((0, 0, 0), (0, bh, 0), br, res=28)
    elif base == "box":
        p.box((2 * br, bh, 2 * br * rng.uniform(0.6, 1.0)), (0, bh / 2, 0))
    elif base == "dome":
        bh *= 1.5
        prof = (
            [(0.0, 0.0)]
            + [(br * math.cos(a), bh * math.sin(a)) for a in np.linspace(0, np.pi / 2 * 0.9, 6)]
            + [(0.0, bh)]
        )
        p.lathe(prof, res=24)
    else:
        p.frustum((0, 0, 0), (0, bh * 2, 0), br, br * rng.uniform(0.3, 0.7), res=24)
        bh *= 2
    pole = bool(rng.random() < 0.5)
    p.style = {"base": base, "kind": "pole" if pole else "desk"}
    if pole:  # straight pole, shade on top
        pole_h = rng.uniform(0.3, 1.2)
        pr = rng.uniform(0.008, 0.02)
        p.cylinder((0, bh, 0), (0, bh + pole_h, 0), pr, res=10)
        sr = rng.uniform(0.1, 0.25)
        top_r = sr * (rng.uniform(0.45, 0.85) if rng.random() < 0.7 else 1.0)
        sh = rng.uniform(0.12, 0.3)
        y0 = bh + pole_h - sh * rng.uniform(0.3, 0.6)
        p.frustum((0, y0, 0), (0, y0 + sh, 0), sr, top_r, res=28, wall=0.006)
        p.ellipsoid((0, y0 + sh * 0.35, 0), (0.035,) * 3, res=6)  # bulb
    else:  # desk lamp: 2-3 arm segments with joints, conical head
        n = int(rng.integers(2, 4))
        pt = np.array([0.0, bh, -br * rng.uniform(0.0, 0.6)])
        ar = rng.uniform(0.008, 0.016)
        angles = [rng.uniform(-np.deg2rad(25), np.deg2rad(15))]
        for _ in range(n - 1):
            angles.append(rng.uniform(np.deg2rad(35), np.deg2rad(100)))
        for a in angles:
            seg = rng.uniform(0.25, 0.42)
            nxt = pt + seg * np.array([0, math.cos(a), math.sin(a)])
            p.cylinder(pt, nxt, ar, res=10)
            p.ellipsoid(nxt, (ar * 2.2,) * 3, res=6)
            pt = nxt
        head_a = rng.uniform(np.deg2rad(10), np.deg2rad(60))  # from -Y towards +Z
        axis = np.array([0, -math.cos(head_a), math.sin(head_a)])
        hl = rng.uniform(0.1, 0.2)
        p.frustum(pt, pt + axis * hl, rng.uniform(0.025, 0.04), rng.uniform(0.07, 0.13), res=24, wall=0.004)
        p.ellipsoid(pt, (0.035,) * 3, res=6)
    return p


def _sofa(rng: np.random.Generator, sub: str | None = None) -> Parts:
    p = Parts()
    n = _choice(rng, [2, 3, 4], [0.35, 0.45, 0.2])
    sw = rng.uniform(0.5, 0.7)
    arms = _choice(rng, ["box", "rolled", "none"], [0.5, 0.3, 0.2])
    p.style = {"seats": int(n), "arms": arms}
    aw = rng.uniform(0.1, 0.25) if arms != "none" else 0.0
    inner = n * sw
    length = inner + 2 * aw
    depth = rng.uniform(0.75, 0.95)
    lh = rng.uniform(0.04, 0.12) if rng.random() < 0.7 else 0.0
    bh = rng.uniform(0.18, 0.28)
    ct = rng.uniform(0.1, 0.18)
    back_t = rng.uniform(0.15, 0.25)
    back_h = rng.uniform(0.3, 0.5)
    y_base = lh + bh
    p.box((length if arms == "none" else inner, bh, depth), (0, lh + bh / 2, 0))
    gap = rng.uniform(0.005, 0.02)
    for i in range(n):  # seat cushions
        x = -inner / 2 + sw * (i + 0.5)
        p.box((sw - gap, ct, depth - back_t), (x, y_base + ct / 2, back_t / 2))
    tilt = rng.uniform(0, np.deg2rad(12))
    rot = rot_x(-tilt)
    pivot = np.array([0, y_base, -depth / 2 + back_t / 2])
    p.box((inner, back_h + ct, back_t), pivot + rot @ np.array([0, (back_h + ct) / 2, 0]), rot)
    p.style["back_cushions"] = bool(rng.random() < 0.5)
    if (p.style["back_cushions"] if sub is None else sub == "back-cushions"):
        bct = rng.uniform(0.08, 0.14)
        for i in range(n):
            x = -inner / 2 + sw * (i + 0.5)
            c = pivot + rot @ np.array([x, ct + back_h * 0.5, back_t / 2 + bct / 2])
            p.box((sw - gap, back_h * 0.8, bct), c, rot)
    if sub == "bolster":  # one long round headrest cushion along the top of the back, in front
        br = 0.4 * back_t
        c = pivot + rot @ np.array([0, ct + back_h - 2 * br, back_t / 2 + br])
        p.cylinder((-inner / 2 + 0.02, c[1], c[2]), (inner / 2 - 0.02, c[1], c[2]), br, res=16)
    ah = rng.uniform(0.1, 0.25)
    if arms != "none":
        for sx in (-1, 1):
            x = sx * (inner / 2 + aw / 2)
            top = y_base + ct + ah
            p.box((aw, top - lh, depth), (x, lh + (top - lh) / 2, 0))
            if arms == "rolled":
                p.cylinder((x, top, -depth / 2), (x, top, depth / 2), aw * 0.6, res=16)
    if lh > 0:
        legs_x = [-length / 2 + 0.06, length / 2 - 0.06] + ([0.0] if n >= 4 else [])
        for x in legs_x:
            for sz in (-1, 1):
                _leg(
                    p,
                    (x, lh, sz * (depth / 2 - 0.06)),
                    (x, 0, sz * (depth / 2 - 0.06)),
                    0.025,
                    bool(rng.random() < 0.5),
                )
    return p


def _car(rng: np.random.Generator) -> Parts:
    p = Parts()
    length = rng.uniform(3.6, 5.0)
    width = rng.uniform(1.6, 1.95)
    wr = rng.uniform(0.28, 0.4)
    ww = rng.uniform(0.18, 0.3)
    clear = wr * rng.uniform(0.35, 0.7)
    body_h = rng.uniform(0.45, 0.75)
    kind = _choice(rng, ["sedan", "suv", "pickup"], [0.5, 0.3, 0.2])
    p.style = {"kind": kind}
    # body: a box whose front top edge is lowered (hood slope) and rear slightly
    v, f = o3d_unit("box")
    v = v * np.array([width, body_h, length])
    hood = rng.uniform(0.0, 0.35) * body_h
    trunk = rng.uniform(0.0, 0.2) * body_h
    top = v[:, 1] > 0
    v[top & (v[:, 2] > 0), 1] -= hood
    v[top & (v[:, 2] < 0), 1] -= trunk
    p.add(v + np.array([0, clear + body_h / 2, 0]), f)
    ytop_body = clear + body_h - max(hood, trunk) * 0.5
    # cabin: a trapezoid prism (top face shorter than the bottom: windscreens)
    if kind == "suv":
        cl, ch, cz = length * rng.uniform(0.55, 0.7), rng.uniform(0.5, 0.7), rng.uniform(-0.15, 0.0)
    elif kind == "pickup":
        cl, ch, cz = length * rng.uniform(0.25, 0.35), rng.uniform(0.45, 0.6), rng.uniform(0.05, 0.15)
    else:
        cl, ch, cz = length * rng.uniform(0.38, 0.52), rng.uniform(0.35, 0.5), rng.uniform(-0.1, 0.05)
    cw = width * rng.uniform(0.8, 0.95)
    v, f = o3d_unit("box")
    v = v * np.array([cw, ch, cl])
    topc = v[:, 1] > 0
    front_in = rng.uniform(0.1, 0.35) * cl
    rear_in = rng.uniform(0.02, 0.25) * cl
    v[topc & (v[:, 2] > 0), 2] -= front_in
    v[topc & (v[:, 2] < 0), 2] += rear_in
    v[topc, 0] *= rng.uniform(0.85, 1.0)
    p.add(v + np.array([0, ytop_body + ch / 2 - 0.02, cz * length]), f)
    if kind == "pickup":  # open bed behind the cabin
        bed_front = cz * length - cl / 2
        bed_back = -length / 2 + 0.05
        wall = rng.uniform(0.15, 0.3)
        yb = clear + body_h
        for sx in (-1, 1):
            p.box(
                (0.05, wall, bed_front - bed_back),
                (sx * (width / 2 - 0.025), yb + wall / 2, (bed_front + bed_back) / 2),
            )
        p.box((width, wall, 0.05), (0, yb + wall / 2, bed_back + 0.025))
    wb = length * rng.uniform(0.55, 0.68)
    zoff = rng.uniform(-0.05, 0.05) * length
    for sz in (-1, 1):
        for sx in (-1, 1):
            x = sx * (width / 2 - ww / 2 + rng.uniform(0.0, 0.04))
            p.cylinder((x - ww / 2, wr, sz * wb / 2 + zoff), (x + ww / 2, wr, sz * wb / 2 + zoff), wr, res=20)
    if kind == "sedan" and rng.random() < 0.25:  # spoiler
        ys = clear + body_h - trunk + 0.12
        p.box((width * 0.85, 0.03, 0.2), (0, ys, -length / 2 + 0.15))
        for sx in (-1, 1):
            p.box((0.04, 0.12, 0.06), (sx * width * 0.3, ys - 0.06, -length / 2 + 0.15))
    if rng.random() < 0.6:  # mirrors
        zm = cz * length + cl / 2 - front_in * 0.8
        for sx in (-1, 1):
            p.box((0.15, 0.08, 0.06), (sx * (width / 2 + 0.06), ytop_body + 0.08, zm))
    return p


def _mug(rng: np.random.Generator, sub: str | None = None) -> Parts:
    p = Parts()
    rb = rng.uniform(0.035, 0.055)
    height = rng.uniform(0.08, 0.13)
    rt = rb * rng.uniform(0.9, 1.15)
    wall = rng.uniform(0.003, 0.007)
    bot = rng.uniform(0.006, 0.012)
    rin_b = rb + (rt - rb) * bot / height - wall
    p.lathe([(0.0, 0.0), (rb, 0.0), (rt, height), (rt - wall, height), (rin_b, bot), (0.0, bot)], res=32)

    def radius_at(y: float) -> float:
        return rb + (rt - rb) * y / height

    if sub in ("half", "full"):  # the surface of a drink inside
        yf = bot + (height - bot) * (0.5 if sub == "half" else 0.9)
        rf = radius_at(yf) - wall
        p.cylinder((0, yf - 0.001, 0), (0, yf, 0), rf, res=32)
    yc = height * rng.uniform(0.42, 0.58)
    torus = bool(rng.random() < 0.75)
    p.style = {"handle": "round" if torus else "square"}
    if torus:  # torus handle in the XY plane, on +X
        a = height * rng.uniform(0.22, 0.36)
        tube = rng.uniform(0.005, 0.011)
        sy = rng.uniform(1.0, 1.4)
        a = min(a, (height / 2 - tube) / sy * 0.98)
        xc = radius_at(yc) + a * rng.uniform(0.15, 0.55)

        def outside(tri: np.ndarray) -> np.ndarray:
            return (tri[:, :, 0] > radius_at(yc) - 1.5 * tube).any(axis=1)

        p.torus((xc, yc, 0), a, tube, scale=(1.0, sy, 1.0), res=(28, 8), keep=outside)
    else:  # squared handle from three bars
        r = rng.uniform(0.004, 0.008)
        hh = height * rng.uniform(0.45, 0.65) / 2
        out = rng.uniform(0.02, 0.035)
        x0 = radius_at(yc) - r
        x1 = radius_at(yc) + out
        p.cylinder((x0, yc + hh, 0), (x1, yc + hh, 0), r, res=10)
        p.cylinder((x0, yc - hh, 0), (x1, yc - hh, 0), r, res=10)
        p.cylinder((x1, yc - hh - r, 0), (x1, yc + hh + r, 0), r, res=10)
    return p


def _bench(rng: np.random.Generator, sub: str | None = None) -> Parts:
    p = Parts()
    length = rng.uniform(1.2, 2.0)
    depth = rng.uniform(0.3, 0.48)
    h = rng.uniform(0.4, 0.5)
    t = rng.uniform(0.03, 0.06)
    slats = bool(rng.random() < 0.4)
    if slats:  # slats along X
        k = int(rng.integers(3, 6))
        sd = depth / k
        for i in range(k):
            p.box((length, t, sd * 0.8), (0, h - t / 2, -depth / 2 + sd * (i + 0.5)))
    else:
        p.box((length, t, depth), (0, h - t / 2, 0))
    legs = _choice(rng, ["legs", "panels"], [0.65, 0.35])
    p.style = {"support": legs, "back": False, "slats": slats}
    lr = rng.uniform(0.02, 0.04)
    inset = rng.uniform(0.05, 0.2)
    xs = [-length / 2 + inset, length / 2 - inset]
    if legs == "legs":
        if length > 1.6 and rng.random() < 0.5:
            xs.append(0.0)
        square = bool(rng.random() < 0.5)
        for x in xs:
            for sz in (-1, 1):
                z = sz * (depth / 2 - lr - 0.02)
                _leg(p, (x, h - t, z), (x, 0, z), lr, square)
            if rng.random() < 0.5:
                p.box((0.03, 0.03, depth * 0.9), (x, rng.uniform(0.08, 0.2), 0))
    else:
        for x in xs:
            p.box((0.04, h - t, depth * rng.uniform(0.8, 1.0)), (x, (h - t) / 2, 0))
    if sub == "shelf":  # a board near the floor between the supports
        p.box((abs(xs[1] - xs[0]), 0.02, depth * 0.8), (0, 0.12, 0))
    elif sub == "board":  # a vertical stretcher board along the length
        p.box((abs(xs[1] - xs[0]), 0.12, 0.02), (0, (h - t) * 0.45, 0))
    back = bool(rng.random() < 0.5)
    p.style["back"] = back
    if back:  # backrest
        bh = rng.uniform(0.3, 0.45)
        tilt = rng.uniform(0, np.deg2rad(15))
        rot = rot_x(-tilt)
        pivot = np.array([0, h, -depth / 2 + 0.03])
        for x in xs:
            p.box((0.04, bh, 0.04), pivot + rot @ np.array([x, bh / 2, 0]), rot)
        k = int(rng.integers(1, 4))
        sh = rng.uniform(0.05, 0.1)
        for i in range(k):
            y = bh - sh / 2 - i * (bh * 0.8 / k)
            p.box((length * 0.98, sh, 0.025), pivot + rot @ np.array([0, y, 0.03]), rot)
        if rng.random() < 0.4:  # arms
            ah = rng.uniform(0.18, 0.25)
            for x in (-length / 2 + 0.03, length / 2 - 0.03):
                p.box((0.05, 0.03, depth * 0.9), (x, h + ah, 0))
                p.box((0.03, ah, 0.03), (x, h + ah / 2, depth * 0.35))
    return p


def _airplane(rng: np.random.Generator) -> Parts:
    p = Parts()
    lf = rng.uniform(0.8, 1.2)
    rf = lf * rng.uniform(0.04, 0.07)
    z_front, z_back = lf * 0.3, -lf * 0.3
    p.cylinder((0, 0, z_back), (0, 0, z_front), rf, res=18)
    nose = lf * rng.uniform(0.08, 0.2)
    if rng.random() < 0.6:
        p.ellipsoid((0, 0, z_front), (rf, rf, nose), res=10)
    else:
        p.cone((0, 0, z_front), (0, -rf * 0.3, z_front + nose), rf, res=18)
    tail_len = lf * rng.uniform(0.15, 0.25)
    tail_tip = np.array([0, rf * rng.uniform(0.2, 0.7), z_back - tail_len])
    p.cone((0, 0, z_back), tail_tip, rf, res=18)
    # main wings
    span = lf * rng.uniform(0.4, 0.7)
    c_root = lf * rng.uniform(0.15, 0.3)
    c_tip = c_root * rng.uniform(0.25, 0.8)
    sweep = rng.uniform(0.0, np.deg2rad(40))
    dihedral = rng.uniform(np.deg2rad(-3), np.deg2rad(8))
    wt = c_root * rng.uniform(0.08, 0.14)
    mount = _choice(rng, [-0.6, 0.0, 0.6], [0.45, 0.25, 0.3]) * rf
    zw = lf * rng.uniform(-0.05, 0.15) + c_root / 2
    for sx in (-1, 1):
        sd = np.array([sx * math.cos(dihedral), math.sin(dihedral), 0])
        p.surface((0, mount, zw), sd, (0, 1.0, 0), span, c_root, c_tip, sweep, wt)
    # tail
    tail = _choice(rng, ["conventional", "t", "v", "twin"], [0.45, 0.2, 0.15, 0.2])
    hs = span * rng.uniform(0.25, 0.4)
    hc = c_root * rng.uniform(0.45, 0.7)
    fin_h = span * rng.uniform(0.25, 0.45)
    fc = c_root * rng.uniform(0.5, 0.8)
    fin_sweep = rng.uniform(np.deg2rad(20), np.deg2rad(50))
    z_tail = z_back - tail_len * 0.2
    if tail == "v":
        va = rng.uniform(np.deg2rad(30), np.deg2rad(50))
        for sx in (-1, 1):
            sd = np.array([sx * math.cos(va), math.sin(va), 0])
            p.surface(
                (0, rf * 0.3, z_tail),
                sd,
                np.cross(sd, [0, 0, 1.0]) * sx,
                hs * 1.1,
                hc,
                hc * 0.6,
                sweep * 0.8 + 0.1,
                hc * 0.1,
            )
    else:
        if tail != "twin":
            p.surface((0, rf * 0.5, z_tail), (0, 1.0, 0), (1.0, 0, 0), fin_h, fc, fc * 0.5, fin_sweep, fc * 0.1)
        y_h = rf * 0.3 if tail != "t" else rf * 0.5 + fin_h * 0.95
        z_h = z_tail if tail != "t" else z_tail - fin_h * 0.95 * math.tan(fin_sweep)
        for sx in (-1, 1):
            p.surface((0, y_h, z_h), (sx, 0, 0), (0, 1.0, 0), hs, hc, hc * 0.55, sweep * 0.8, hc * 0.1)
        if tail == "twin":
            for sx in (-1, 1):
                root = (sx * hs, y_h, z_h - hs * math.tan(sweep * 0.8))
                p.surface(root, (0, 1.0, 0), (1.0, 0, 0), fin_h * 0.7, hc * 0.55, hc * 0.35, fin_sweep, hc * 0.06)
    # engines
    eng = _choice(rng, ["none", "wing2", "wing4", "rear2"], [0.3, 0.4, 0.15, 0.15])
    p.style = {"tail": tail, "engines": eng}
    er = rf * rng.uniform(0.35, 0.6)
    el = c_root * rng.uniform(0.6, 1.0)
    if eng in ("wing2", "wing4"):
        fracs = [rng.uniform(0.28, 0.42)] if eng == "wing2" else [0.25, 0.55]
        for fr in fracs:
            d = fr * span
            for sx in (-1, 1):
                x = sx * d * math.cos(dihedral)
                y = mount + d * math.sin(dihedral) - wt / 2 - er * 1.1
                zle = zw - d * math.tan(sweep)
                p.cylinder((x, y, zle - el * 0.6), (x, y, zle + el * 0.4), er, res=14)
                p.box((0.01 * lf, er * 1.1, el * 0.5), (x, y + er * 0.8, zle - el * 0.2))
    elif eng == "rear2":
        for sx in (-1, 1):
            x = sx * (rf + er * 1.2)
            y = rf * 0.4
            p.cylinder((x, y, z_back - el * 0.3), (x, y, z_back + el * 0.7), er, res=14)
            p.box((er * 1.2, 0.01 * lf, el * 0.5), (sx * (rf + er * 0.5), y, z_back + el * 0.2))
    return p


_BUILDERS: dict[str, Callable[[np.random.Generator], Parts]] = {
    "airplane": _airplane,
    "chair": _chair,
    "table": _table,
    "lamp": _lamp,
    "sofa": _sofa,
    "car": _car,
    "mug": _mug,
    "bench": _bench,
}


#: Fine-grained classes of the built-in set: ``"<category>/<sub-style>"``, grouped by category in
#: :data:`CATEGORIES` order; a shape's fine label is its index here (:func:`fine_class`). Each
#: sub-style is a discrete choice the builder already makes (recorded in ``Parts.style``), picked
#: to be visible in a sparse cloud: a different support, a whole extra part (arms, backrest,
#: engines, truck bed), not a slat count. Expected shares at the builders' probabilities in brackets.
FINE_CLASSES: tuple[str, ...] = (
    "airplane/no-engines",  # engines "none" (30%)
    "airplane/wing-engines",  # 2 or 4 under the wings (55%)
    "airplane/rear-engines",  # 2 beside the tail cone (15%)
    "chair/legs",  # 3, 4 or 5 legs, no arms (53%)
    "chair/legs+arms",  # 3, 4 or 5 legs, arms (29%)
    "chair/pedestal",  # column on a disk or star base, with or without arms (18%)
    "table/legs",  # rectangular or square top on 4 legs (56%)
    "table/trestle",  # rectangular or square top on 2 side panels (14%)
    "table/round-legs",  # round top on 3 or 4 legs (15%)
    "table/round-pedestal",  # round top on one column (15%)
    "lamp/pole",  # straight pole with a shade on top (50%)
    "lamp/desk",  # 2-3 jointed arm segments and a conical head (50%)
    "sofa/box-arms",  # (50%)
    "sofa/rolled-arms",  # box arms with a roll on top (30%)
    "sofa/armless",  # (20%)
    "car/sedan",  # (50%)
    "car/suv",  # (30%)
    "car/pickup",  # short cabin and an open bed (20%)
    "mug/round-handle",  # torus handle (75%)
    "mug/square-handle",  # three-bar handle (25%)
    "bench/legs",  # 4 or 6 legs, no backrest (32.5%)
    "bench/legs+back",  # (32.5%)
    "bench/panels",  # 2 side panels, no backrest (17.5%)
    "bench/panels+back",  # (17.5%)
)
FINE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FINE_CLASSES)}

#: Interior sub-styles of the ``substyles=True`` variant of the built-in set (``pc3d-data generate
#: --substyles``): shape ``index`` of a category listed here gets ``SUBSTYLES[category][index % k]``
#: on top of its usual random build. Each adds or removes a large part *inside* the shape's outline
#: (a board between chair legs, a table's lower shelf, a drink in a mug), so the silhouette (the
#: convex hull, which the max-pooled features of a random PointNet already read well) says little
#: about it, while the surface (and so a reconstruction loss) changes a lot. The other categories
#: keep their usual random build and are one class each.
SUBSTYLES: dict[str, tuple[str, ...]] = {
    "chair": ("plain", "footrest", "skirt"),  # nothing / a board between the legs / boards under the seat's edges
    "table": ("plain", "shelf", "apron"),  # nothing / a lower shelf / boards under the top (whatever the support)
    "sofa": ("bare", "back-cushions", "bolster"),  # nothing / one cushion per seat on the back / a roll along its top
    "mug": ("empty", "half", "full"),  # the surface of a drink at half or 90% height
    "bench": ("plain", "shelf", "board"),  # nothing / a board near the floor / a vertical stretcher board
}
#: The fine classes of the ``substyles=True`` variant (18): ``"<category>/<sub-style>"`` for the
#: categories of :data:`SUBSTYLES`, the bare category name for the others; in :data:`CATEGORIES` order.
SUBSTYLE_CLASSES: tuple[str, ...] = tuple(
    name for c in CATEGORIES for name in ([f"{c}/{s}" for s in SUBSTYLES[c]] if c in SUBSTYLES else [c])
)
SUBSTYLE_INDEX: dict[str, int] = {name: i for i, name in enumerate(SUBSTYLE_CLASSES)}


def substyle_for(category: str, index: int) -> str | None:
    """The interior sub-style of shape ``index`` of ``category`` in the ``substyles=True`` variant
    (``None`` for a category without sub-styles)."""
    subs = SUBSTYLES.get(category)
    return None if subs is None else subs[int(index) % len(subs)]


def fine_classes(substyles: bool = False) -> tuple[str, ...]:
    """The fine class list of a built-in set: :data:`SUBSTYLE_CLASSES` for the ``substyles``
    variant, else :data:`FINE_CLASSES`."""
    return SUBSTYLE_CLASSES if substyles else FINE_CLASSES


def _fine_name(category: str, style: dict[str, Any]) -> str:
    if category == "airplane":
        eng = style["engines"]
        return "airplane/" + ("no-engines" if eng == "none" else "rear-engines" if eng == "rear2" else "wing-engines")
    if category == "chair":
        if style["support"] == "pedestal":
            return "chair/pedestal"
        return "chair/legs+arms" if style["arms"] else "chair/legs"
    if category == "table":
        if style["top"] == "round":
            return "table/round-pedestal" if style["legs"] == 1 else "table/round-legs"
        return "table/trestle" if style["legs"] == 2 else "table/legs"
    if category == "lamp":
        return f"lamp/{style['kind']}"
    if category == "sofa":
        return "sofa/armless" if style["arms"] == "none" else f"sofa/{style['arms']}-arms"
    if category == "car":
        return f"car/{style['kind']}"
    if category == "mug":
        return f"mug/{style['handle']}-handle"
    if category == "bench":
        return f"bench/{style['support']}" + ("+back" if style["back"] else "")
    raise ValueError(f"unknown category {category!r}; expected one of {list(CATEGORIES)}")


def fine_class(category: str, style: dict[str, Any], substyles: bool = False) -> int:
    """Fine label of a ``category`` shape built with ``style`` (the ``Parts.style`` its builder
    recorded): an index into :data:`FINE_CLASSES`, or with ``substyles`` (the variant set) into
    :data:`SUBSTYLE_CLASSES` (by ``style["sub"]`` for the categories of :data:`SUBSTYLES`)."""
    if substyles:
        return SUBSTYLE_INDEX[f"{category}/{style['sub']}" if category in SUBSTYLES else category]
    return FINE_INDEX[_fine_name(category, style)]


def build_parts(category: str, rng: np.random.Generator, sub: str | None = None) -> Parts:
    """The un-normalised :class:`Parts` of one shape (with its ``style``), drawn from ``rng``;
    ``sub``: an interior sub-style of :data:`SUBSTYLES` (then recorded as ``style["sub"]``)."""
    if category not in _BUILDERS:
        raise ValueError(f"unknown category {category!r}; expected one of {list(CATEGORIES)}")
    if sub is None:
        return _BUILDERS[category](rng)
    if sub not in SUBSTYLES.get(category, ()):
        raise ValueError(f"unknown sub-style {sub!r} for {category}; expected one of {SUBSTYLES.get(category, ())}")
    parts = _BUILDERS[category](rng, sub=sub)
    parts.style["sub"] = sub
    return parts


def shape_style(category: str, rng: np.random.Generator, sub: str | None = None) -> dict[str, Any]:
    """The discrete style choices of the shape ``rng`` builds (runs the builder only: no mesh
    cleaning, no sampling). Same draws as :func:`shape_arrays`, so the same style."""
    return dict(build_parts(category, rng, sub).style)


def shape_and_style(category: str, rng: np.random.Generator, sub: str | None = None) -> tuple[Mesh, dict[str, Any]]:
    """:func:`shape_arrays` and the builder's style choices (``Parts.style``) of one shape."""
    parts = build_parts(category, rng, sub)
    v, f = parts.mesh()
    return clean_and_normalize(v, f), dict(parts.style)


def shape_arrays(category: str, rng: np.random.Generator, sub: str | None = None) -> Mesh:
    """Vertices (V, 3) float64 and triangles (T, 3) int64 of one normalised shape (``sub``: an
    interior sub-style of :data:`SUBSTYLES`, the ``substyles=True`` variant)."""
    return shape_and_style(category, rng, sub)[0]


def make_shape(category: str, rng: np.random.Generator):
    """Build one random shape of ``category`` as an Open3D ``TriangleMesh``.

    Args:
        category: a name in :data:`CATEGORIES`.
        rng: the generator all shape parameters are drawn from.

    Returns:
        ``o3d.geometry.TriangleMesh`` centred at the origin, max vertex radius 0.5, Y up,
        facing +Z, with triangle normals computed.
    """
    import open3d as o3d

    v, f = shape_arrays(category, rng)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f))
    mesh.compute_triangle_normals()
    return mesh
