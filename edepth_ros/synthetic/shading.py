"""Plausible colours for ray-cast hits: textures anchored to the world (asphalt, paving, facades
with windows, foliage), lane markings, Lambert shading by the surface normal, a sky gradient and
distance haze. Appearance only: nothing here changes depth or labels.
"""

from __future__ import annotations

import numpy as np

from . import world as W

TEX = 256


def noise_texture(rng: np.random.Generator) -> np.ndarray:
    """A tileable (TEX x TEX) multi-octave noise in [-1, 1], float32 (band-limited with an FFT)."""
    f = np.fft.fftfreq(TEX)
    fr = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    out = np.zeros((TEX, TEX))
    for octave, width in enumerate((0.01, 0.03, 0.1, 0.35)):
        spec = np.fft.fft2(rng.standard_normal((TEX, TEX))) * np.exp(-(fr / width) ** 2)
        layer = np.real(np.fft.ifft2(spec))
        out += layer / (layer.std() + 1e-12) * 0.5 ** octave
    out /= np.abs(out).max()
    return out.astype(np.float32)


def sample(tex: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bilinear lookup of the tileable texture at continuous coordinates (texels), any shape."""
    import cv2

    shape = np.shape(a)
    # wrap first: rays grazing the horizon land millions of texels away
    n = int(np.prod(shape))
    if n == 0:
        return np.zeros(shape, np.float32)
    # cv2.remap wants 2-D maps under 32767 a side: lay the points out in rows of 1024
    width = 1024
    rows = -(-n // width)
    ma = np.zeros(rows * width, np.float32)
    mb = np.zeros(rows * width, np.float32)
    np.mod(np.asarray(a, np.float32).ravel(), TEX, out=ma[:n])
    np.mod(np.asarray(b, np.float32).ravel(), TEX, out=mb[:n])
    out = cv2.remap(tex, mb.reshape(rows, width), ma.reshape(rows, width), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_WRAP)
    return out.ravel()[:n].reshape(shape)


def _frac(x):
    return x - np.floor(x)


def lane_marking(layout: W.Layout, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """True where a road point (world x, y) is painted: solid edge lines, dashed lane lines."""
    hw = layout.half_width
    paint = np.abs(np.abs(py) - (hw - 0.3)) < 0.075
    dashed = _frac((px + layout.marking_phase) / 12.0) < 0.25
    for i in range(1, layout.lanes):
        yb = -hw + i * layout.lane_width
        line = np.abs(py - yb) < 0.07
        if layout.lanes >= 4 and i == layout.lanes // 2:  # the centre line of a wide road is solid
            paint |= line
        else:
            paint |= line & dashed
    return paint


def shade(hit_p, normal, prim_material, prim_color, prim_window, pid, sky, dirs_world, t, tex,
          layout: W.Layout, sun: np.ndarray, sky_top, sky_horizon, rng) -> np.ndarray:
    """RGB uint8 for every pixel. hit_p (N, 3) world points of hits; sky: bool (N,)."""
    # every pixel is shaded as a surface (sky pixels with a dummy material), then the sky (a few
    # percent of the image) is painted over: cheaper than gathering and scattering the hits
    p = hit_p.astype(np.float32)
    nrm = normal
    ids = np.maximum(pid, 0)
    mat = np.where(sky, -1, prim_material[ids])
    base = prim_color[ids]
    px, py, pz = p[:, 0], p[:, 1], p[:, 2]
    mod = np.ones(len(p), np.float32)
    up = nrm[:, 2] > 0.5

    # ground surfaces (road plane, sidewalk slabs): asphalt, paving, curb faces, grass
    g = np.flatnonzero((mat == W.M_ROAD) | (mat == W.M_SIDEWALK))
    if g.size:
        gx, gy, gup = px[g], py[g], up[g]
        fine = sample(tex, gx * 40.0, gy * 40.0)
        coarse = sample(tex, gx * 1.5 + 77, gy * 1.5 + 13)
        ay = np.abs(gy)
        on_road = (mat[g] == W.M_ROAD) & (ay < layout.half_width)
        walk_w = np.where(gy > 0, layout.sidewalk_left, layout.sidewalk_right)
        terrain = gup & (ay >= layout.half_width + walk_w)
        paving = ~on_road & ~terrain
        # asphalt: grey, coarse stains, fine grain, lane paint
        gmod = np.where(on_road, 1 + 0.12 * coarse + 0.10 * fine, 1.0)
        # paving slabs with joints; curb faces lighter; grass
        joints = (_frac(gx / 0.6) < 0.05) | (_frac(gy / 0.6) < 0.05)
        gmod = np.where(paving & gup, (1 + 0.06 * coarse + 0.08 * fine) * np.where(joints, 0.8, 1.0), gmod)
        gmod = np.where(terrain, 1 + 0.3 * coarse + 0.25 * fine, gmod)
        mod[g] = gmod
        gbase = base[g]
        gbase[on_road & lane_marking(layout, gx, gy)] = (225, 225, 220)
        gbase[paving & ~gup] = (185, 182, 175)
        gbase[terrain] = (78, 105, 48)
        base[g] = gbase
    # facades: windows on a grid (spacing, offset, floor height) in facade coordinates
    bld = np.flatnonzero((mat == W.M_BUILDING) & ~up)
    if bld.size:
        win = prim_window[ids[bld]]
        s = np.where(np.abs(nrm[bld, 0]) > 0.5, py[bld], px[bld])
        zz = pz[bld]
        col = _frac((s + win[:, 1]) / win[:, 0])
        row = _frac(zz / win[:, 2])
        window = (col > 0.25) & (col < 0.75) & (row > 0.3) & (row < 0.8) & (zz > 2.5)
        sub = base[bld]
        sub[window] = sub[window] * 0.25 + np.array([40, 50, 65], np.float32)
        base[bld] = sub
        mod[bld] = 1 + 0.08 * sample(tex, s * 8.0, zz * 8.0)
    base[(mat == W.M_CAR_CABIN) & ~up] = (35, 40, 50)
    crown = np.flatnonzero(mat == W.M_CROWN)
    if crown.size:
        cx, cy, cz = px[crown], py[crown], pz[crown]
        mod[crown] = 1 + 0.45 * sample(tex, cx * 6 + cz * 3, cy * 6 - cz * 3)
    trunk = np.flatnonzero(mat == W.M_TRUNK)
    if trunk.size:
        mod[trunk] = 1 + 0.2 * sample(tex, pz[trunk] * 10, (px[trunk] + py[trunk]) * 10)

    lambert = 0.55 + 0.45 * np.clip(nrm @ sun, 0, 1)
    rgb = base * (mod * lambert)[:, None]
    haze = (1 - np.exp(-np.where(sky, 0.0, t).astype(np.float32) / 350.0))[:, None]
    rgb += (sky_horizon - rgb) * haze
    # sky: gradient with elevation, faint clouds
    si = np.flatnonzero(sky)
    if si.size:
        d = dirs_world[si]
        elev = d[:, 2] / np.linalg.norm(d, axis=1)
        k = np.clip(elev / 0.5, 0, 1)[:, None]
        dz = np.maximum(d[:, 2], 0.05)
        clouds = np.clip(sample(tex, d[:, 0] / dz * 9, d[:, 1] / dz * 9), 0, 1)[:, None]
        rgb[si] = (sky_horizon * (1 - k) + sky_top * k) * (1 - 0.35 * clouds) + 255 * 0.35 * clouds
    rgb += 2.0 * rng.standard_normal(rgb.shape, dtype=np.float32)  # sensor noise
    return np.clip(rgb, 0, 255).astype(np.uint8)
