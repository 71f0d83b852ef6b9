"""Self-contained HTML pages: PNG pictures and interactive 3D views of point clouds that work offline.

A page written by :func:`write_page` is ONE file: the plotly.js bundle is inlined in it
(``include_plotlyjs=True``: no CDN, no network), the pictures are embedded as base64 ``data:``
URIs, and every cloud is a plotly ``scatter3d`` trace (WebGL) in its own 3D scene, with its
coordinates embedded as binary (base64) arrays. Opening it from a local file (``file://``) in a
browser needs nothing else. Plotly is imported lazily (only when a figure is built).

Clouds are drawn in pc3d's convention (world **Y up**, objects facing **+Z**): each scene's camera
has ``up = +Y`` and the data aspect ratio; points are coloured by height (world Y) with the ramp
of :func:`pc3d.viz.render.point_colors` (the colours of the PNG renders), and subsampled to at
most ``max_points`` points per cloud (a fixed seed: the same page for the same clouds).

Shapes: a cloud is (N, 3) (NumPy array or torch tensor); pictures are PNG files or bytes.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.io import atomic_write_text

__all__ = ["Picture", "Section", "clouds_figure", "data_uri", "height_colorscale", "page_html", "subsample",
           "write_page"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
p.note { color: #555; margin-top: 0.2em; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #e3e3e3; image-rendering: auto; }
figcaption { font-size: 0.9em; color: #555; }
table.timings { border-collapse: collapse; font-size: 0.9em; } table.timings td { padding: 0.1em 0.8em 0.1em 0; }
table.timings td.s { text-align: right; font-variant-numeric: tabular-nums; }
.plot { width: 100%; }
code { background: #f4f4f4; padding: 0 0.25em; }
"""


@dataclass(frozen=True)
class Picture:
    """A picture of a section: a PNG file (embedded as a ``data:`` URI) with a caption."""

    path: Path
    caption: str = ""


@dataclass
class Section:
    """One part of a page: a heading, a short text (HTML-escaped), pictures, and 3D clouds.

    ``clouds``: ``{label: (N, 3) cloud}``, one interactive 3D scene per cloud (none: no viewer);
    ``links``: ``{text: relative path}`` of files beside the page (a mesh, the arrays).
    """

    title: str
    text: str = ""
    pictures: Sequence[Picture] = ()
    clouds: Mapping[str, Any] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)


def data_uri(png: str | os.PathLike | bytes, mime: str = "image/png") -> str:
    """``data:image/png;base64,...`` of a PNG file (path) or of PNG bytes."""
    raw = png if isinstance(png, bytes | bytearray) else Path(png).read_bytes()
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def subsample(cloud: Any, max_points: int, seed: int = 0) -> np.ndarray:
    """At most ``max_points`` points of a cloud (N, 3), drawn without replacement with ``seed``, in
    their original order; float32 (M, 3), M = min(N, max_points). Raises ``ValueError`` for other shapes."""
    from pc3d.viz.render import as_cloud

    pts = as_cloud(cloud).astype(np.float32)
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if len(pts) <= max_points:
        return pts
    keep = np.sort(np.random.default_rng(seed).choice(len(pts), max_points, replace=False))
    return pts[keep]


def height_colorscale(n: int = 11) -> list[list[Any]]:
    """A plotly colorscale equal to pc3d's height ramp (:func:`pc3d.viz.render.point_colors` with
    ``colors="height"``) sampled at ``n`` stops: ``[[0.0, "rgb(...)"], ..., [1.0, "rgb(...)"]]``."""
    from pc3d.viz.render import point_colors

    t = np.linspace(0.0, 1.0, n)
    rgb = point_colors(np.stack([np.zeros(n), t, np.zeros(n)], 1), "height")
    return [[float(s), "rgb({},{},{})".format(*(int(round(255 * c)) for c in col))] for s, col in zip(t, rgb)]


def clouds_figure(clouds: Mapping[str, Any], *, max_points: int = 2048, ncols: int = 4, cell_height: int = 320,
                  point_size: float = 2.0, seed: int = 0):
    """A plotly figure with one 3D scene per cloud, each holding one ``scatter3d`` trace.

    Args:
        clouds: ``{label: (N, 3) cloud}``; the labels become the subplot titles and trace names.
        max_points: per cloud, see :func:`subsample`.
        ncols: scenes per row; rows of ``cell_height`` pixels.
        point_size: marker size in pixels.
    Returns:
        ``plotly.graph_objects.Figure``. Raises ``ValueError`` for no clouds or a bad shape.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not clouds:
        raise ValueError("clouds_figure: no clouds")
    labels = list(clouds)
    ncols = max(1, min(int(ncols), len(labels)))
    nrows = -(-len(labels) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, specs=[[{"type": "scene"}] * ncols for _ in range(nrows)],
                        subplot_titles=labels, horizontal_spacing=0.01, vertical_spacing=0.04)
    scale = height_colorscale()
    for i, label in enumerate(labels):
        pts = subsample(clouds[label], max_points, seed)
        fig.add_trace(go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="markers", name=label,
                                   marker={"size": point_size, "color": pts[:, 1], "colorscale": scale,
                                           "showscale": False, "opacity": 1.0},
                                   hovertemplate="x %{x:.3f}<br>y %{y:.3f}<br>z %{z:.3f}<extra>" +
                                                 html.escape(label) + "</extra>"),
                      row=i // ncols + 1, col=i % ncols + 1)
    axis = {"showticklabels": False, "title": {"text": ""}, "showbackground": False, "gridcolor": "#eee",
            "zerolinecolor": "#ddd"}
    # pc3d is Y up, objects face +Z: look from the front-right, slightly above (pc3d-view's default camera)
    camera = {"up": {"x": 0, "y": 1, "z": 0}, "eye": {"x": 1.1, "y": 0.9, "z": 1.6}}
    fig.update_scenes(aspectmode="data", camera=camera, xaxis=axis, yaxis=axis, zaxis=axis)
    fig.update_layout(height=nrows * cell_height + 40, margin={"l": 0, "r": 0, "t": 30, "b": 0}, showlegend=False,
                      paper_bgcolor="white", modebar={"orientation": "v"},
                      template="none")  # no template: its data defaults for every trace type would bloat the page
    return fig


def _figure_div(fig, div_id: str, include_plotlyjs: bool) -> str:
    # include_plotlyjs=True inlines the whole plotly.js bundle (offline, ~4.8 MB) in this div's HTML
    config = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "png"}}
    return fig.to_html(full_html=False, include_plotlyjs=include_plotlyjs, div_id=div_id, config=config,
                       include_mathjax=False)


def page_html(title: str, sections: Sequence[Section], *, intro: str = "", timings: Mapping[str, float] | None = None,
              max_points: int = 2048, ncols: int = 4) -> str:
    """The HTML text of a self-contained page (see the module docstring).

    ``intro``: a paragraph under the title (escaped); ``timings``: ``{step: seconds}``, shown as a table.
    Every picture is embedded (``data:`` URI); the plotly.js bundle is inlined once, before the first viewer.
    """
    esc = html.escape
    parts = [f"<h1>{esc(title)}</h1>"]
    if intro:
        parts.append(f'<p class="note">{esc(intro)}</p>')
    plotly_inlined = False
    for k, sec in enumerate(sections):
        parts.append(f'<section id="section-{k}"><h2>{esc(sec.title)}</h2>')
        if sec.text:
            parts.append(f'<p class="note">{esc(sec.text)}</p>')
        for pic in sec.pictures:
            alt = esc(pic.caption or Path(pic.path).name)
            parts.append(f'<figure><img class="picture" src="{data_uri(pic.path)}" alt="{alt}" '
                         f'data-file="{esc(Path(pic.path).name)}">'
                         + (f"<figcaption>{esc(pic.caption)}</figcaption>" if pic.caption else "") + "</figure>")
        if sec.clouds:
            fig = clouds_figure(sec.clouds, max_points=max_points, ncols=ncols)
            parts.append(f'<div class="plot">{_figure_div(fig, f"plot-{k}", not plotly_inlined)}</div>')
            parts.append('<p class="note">Drag to rotate, scroll to zoom, double-click to reset a view. Colours: '
                         f"height (Y up); at most {max_points} points per cloud.</p>")
            plotly_inlined = True
        if sec.links:
            items = ", ".join(f'<a href="{esc(rel)}">{esc(text)}</a>' for text, rel in sec.links.items())
            parts.append(f'<p class="note">Files beside this page: {items}</p>')
        parts.append("</section>")
    if timings:
        rows = "".join(f'<tr><td>{esc(k)}</td><td class="s">{v:.2f} s</td></tr>' for k, v in timings.items())
        parts.append(f'<section id="timings"><h2>Timings</h2><table class="timings">{rows}</table></section>')
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
            f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def write_page(path: str | os.PathLike, title: str, sections: Sequence[Section], **kwargs: Any) -> Path:
    """Write :func:`page_html` to ``path`` atomically (UTF-8); returns the path."""
    return atomic_write_text(Path(path), page_html(title, sections, **kwargs))
