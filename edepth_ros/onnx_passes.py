"""Exact rewrites of an exported graph so that ONNX Runtime's CPU kernels keep it in their fast layout.

ONNX Runtime runs convolutions fastest in a blocked channel layout (NCHWc: channels in blocks of 8
with AVX2, 16 with AVX-512), which its layout pass (``NchwcTransformer``, ORT_ENABLE_ALL) applies
only to some ops. Measured on the realtime network (192 x 640, one thread) three exported patterns
left it; each rewrite below is an identity of the maths (outputs equal up to float rounding, and the
export's parity check runs on the rewritten file), so TensorRT and PyTorch see the same network:

- ``split_concat_convs``: Conv(Concat(a, b)) -> Conv(a, W_a) + Conv(b, W_b). ONNX Runtime 1.31 blocks
  a convolution's input only when its channel count is below the block or a multiple of 4; the
  decoder's full-resolution conv takes head 16 + 3 embodied channels = 19 and fell back to its
  generic im2col kernel (12.8 ms of ~86). Split, 16 channels take the blocked kernel, the 3 embodied
  channels its direct NCHW-input kernel, and the Add fuses into the second conv (6 ms together).
- ``group_norm_affines``: the exporter writes GroupNorm as Reshape, InstanceNormalization, Reshape,
  then Mul(gamma) and Add(beta). The Mul/Add pair becomes one BatchNormalization (mean 0, var 1,
  epsilon 0: y = gamma x + beta, one pass instead of two); where the activation after it feeds a
  Resize, a 1x1 convolution with diagonal weights instead, so the activation and the Resize run in
  the blocked layout (the Resize as ONNX Runtime's blocked bilinear Upsample, 0.8 ms instead of
  2.7 ms at full resolution, and no re-blocking of the full-resolution tensor).
- ``resize_scales``: Resize with constant ``sizes`` that are whole multiples of its input ->
  constant ``scales`` (the same output size and coordinates): the blocked Upsample needs scales.
- ``phase_split_convs``: a stride-1 convolution with very few output channels (the decoder's
  depth/confidence/gate heads: 16 -> 3 at full resolution) -> one stride-2 convolution computing the
  four output phases (pixel (2i + a, 2j + b) of channel c is output channel (2a + b) C + c at (i, j);
  its (k+1) x (k+1) kernel holds the k x k kernel at offset (a, b), zeros elsewhere), then
  DepthToSpace. The blocked kernel pads the output channels to a whole block (3 -> 16 with AVX-512:
  81% of the heads' multiply-adds were padding); 12 phase channels fill 3/4 of a block at a quarter of
  the pixels (5.2 ms -> 2.4 ms + 0.7 ms DepthToSpace). An activation that follows the conv (the heads'
  Clip) is applied per element, so it moves before the DepthToSpace and stays fused into the conv.

Only onnx and numpy: no torch, so it can run on an exported file anywhere.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Optional

import numpy as np

# Elementwise ops an exported activation (GELU: Div, Erf, Add, Mul, Mul) is made of; followed from a
# GroupNorm affine to see whether the activation feeds a Resize.
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Erf", "Sigmoid", "Relu", "Tanh", "Gelu", "Identity"}


def optimize_for_cpu(model) -> dict:
    """Apply every rewrite to ``model`` (an onnx ModelProto, changed in place); returns counts."""
    counts = {"split_concat_convs": split_concat_convs(model), "resize_scales": resize_scales(model),
              "phase_split_convs": phase_split_convs(model)}
    counts.update(group_norm_affines(model))  # after resize_scales: it looks for Resizes with scales
    _drop_unused_initializers(model)
    return counts


def optimize_file(path) -> dict:
    """Rewrite the .onnx file at ``path`` in place (weights stay inside the one file)."""
    import onnx

    model = onnx.load(str(path))
    counts = optimize_for_cpu(model)
    onnx.save(model, str(path))
    return counts


# ---------------------------------------------------------------------------------------------
# helpers


class _Graph:
    """Producer / consumer maps, static shapes and constant initialisers of a graph."""

    def __init__(self, model):
        import onnx
        from onnx import numpy_helper

        self.model = model
        self.g = model.graph
        self.init = {i.name: i for i in self.g.initializer}
        self.producer = {o: n for n in self.g.node for o in n.output}
        self.consumers = defaultdict(list)
        for n in self.g.node:
            for i in n.input:
                if i:
                    self.consumers[i].append(n)
        self.outputs = {o.name for o in self.g.output}
        inferred = onnx.shape_inference.infer_shapes(model)
        self.shape = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            dims = vi.type.tensor_type.shape.dim
            self.shape[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        self._np = numpy_helper
        self._names = {n.name for n in self.g.node} | set(self.init) | set(self.producer)

    def const(self, name) -> Optional[np.ndarray]:
        return self._np.to_array(self.init[name]) if name in self.init else None

    def single_use(self, name) -> bool:
        return len(self.consumers.get(name, [])) == 1 and name not in self.outputs

    def unique(self, base: str) -> str:
        name, k = base, 0
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def add_const(self, base: str, value: np.ndarray) -> str:
        name = self.unique(base)
        self.g.initializer.append(self._np.from_array(np.ascontiguousarray(value), name))
        return name

    def replace(self, replacements: dict, removed: set) -> None:
        """Rebuild the node list: a node's replacement list goes where the node was (keeps topological order)."""
        order = []
        for n in self.g.node:
            if id(n) in replacements:
                order.extend(replacements[id(n)])
            elif id(n) not in removed:
                order.append(n)
        del self.g.node[:]
        self.g.node.extend(order)


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _padded(channels: int, block: int = 16) -> int:
    """Channels rounded up to ONNX Runtime's channel block (16 with AVX-512, the CPU measured here)."""
    return -(-channels // block) * block


def _blockable(channels: int) -> bool:
    """ONNX Runtime 1.31's blocked conv takes an input of this many channels (for blocks of 8 and 16)."""
    return channels < 8 or channels % 4 == 0


def _drop_unused_initializers(model) -> None:
    """Remove initialisers no node reads any more, and value_info of tensors that no longer exist
    (a stale entry would reappear as a dangling output in tools that expose every tensor)."""
    from onnx import AttributeProto

    g = model.graph
    if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for n in g.node for a in n.attribute):
        return  # subgraphs may read outer initialisers: leave them all
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    alive = {o for n in g.node for o in n.output} | {i.name for i in g.input} | {i.name for i in keep}
    info = [vi for vi in g.value_info if vi.name in alive]
    del g.value_info[:]
    g.value_info.extend(info)


# ---------------------------------------------------------------------------------------------
# rewrites


def split_concat_convs(model) -> int:
    """Conv(Concat(x1..xk, axis=1), W, b) -> sum_i Conv(x_i, W[:, slice_i]) (+ b on the first), where the
    concatenation has a channel count ONNX Runtime cannot block and every part can be blocked."""
    from onnx import helper

    G = _Graph(model)
    replacements, removed, done = {}, set(), 0
    for conv in G.g.node:
        if conv.op_type != "Conv" or len(conv.input) < 2 or conv.input[0] not in G.producer:
            continue
        cat = G.producer[conv.input[0]]
        attrs = _attrs(conv)
        weight = G.const(conv.input[1])
        if (cat.op_type != "Concat" or _attrs(cat).get("axis") != 1 or not G.single_use(cat.output[0])
                or attrs.get("group", 1) != 1 or weight is None or weight.ndim != 4):
            continue
        chans = [(G.shape.get(i) or [None, None])[1] for i in cat.input]
        if None in chans or sum(chans) != weight.shape[1]:
            continue
        if _blockable(sum(chans)) or not all(_blockable(c) for c in chans):
            continue
        nodes, partial, start = [], [], 0
        for k, (x, c) in enumerate(zip(cat.input, chans)):
            w = G.add_const(f"{conv.input[1]}.part{k}", weight[:, start:start + c])
            start += c
            ins = [x, w] + ([conv.input[2]] if k == 0 and len(conv.input) > 2 and conv.input[2] else [])
            out = G.unique(f"{conv.output[0]}.part{k}")
            nodes.append(helper.make_node("Conv", ins, [out], name=G.unique(f"{conv.name}.part{k}"), **attrs))
            partial.append(out)
        acc = partial[0]
        for k, p in enumerate(partial[1:], start=1):
            dst = conv.output[0] if k == len(partial) - 1 else G.unique(f"{conv.output[0]}.sum{k}")
            nodes.append(helper.make_node("Add", [acc, p], [dst], name=G.unique(f"{conv.name}.sum{k}")))
            acc = dst
        replacements[id(conv)] = nodes
        removed.add(id(cat))
        done += 1
    G.replace(replacements, removed)
    return done


def _feeds_resize(G: _Graph, name: str, hops: int = 8) -> bool:
    """Whether ``name`` reaches, through elementwise ops only (an activation in between), a Resize
    with constant scales (what ONNX Runtime's blocked Upsample takes)."""
    frontier = list(G.consumers.get(name, []))
    while frontier and hops > 0:
        hops -= 1
        node = frontier.pop(0)
        if node.op_type == "Resize":
            return len(node.input) >= 3 and node.input[2] in G.init
        if node.op_type in _ELEMENTWISE:
            frontier.extend(G.consumers.get(node.output[0], []))
    return False


def group_norm_affines(model) -> dict:
    """InstanceNormalization -> Reshape -> Mul(gamma[C,1,1]) -> Add(beta[C,1,1]), GroupNorm as exported:
    the Mul/Add pair as one BatchNormalization, or as a diagonal 1x1 Conv where it feeds a Resize."""
    from onnx import helper

    G = _Graph(model)
    replacements, removed, bn, diag = {}, set(), 0, 0
    for add in G.g.node:
        if add.op_type != "Add" or add.input[0] not in G.producer:
            continue
        mul = G.producer[add.input[0]]
        if mul.op_type != "Mul" or not G.single_use(mul.output[0]):
            continue
        gamma, beta = G.const(mul.input[1]), G.const(add.input[1])
        reshape = G.producer.get(mul.input[0])
        if (gamma is None or beta is None or reshape is None or reshape.op_type != "Reshape"
                or getattr(G.producer.get(reshape.input[0]), "op_type", None) != "InstanceNormalization"):
            continue
        shape = G.shape.get(mul.input[0]) or []
        c = gamma.shape[0] if gamma.ndim == 3 else None
        if (c is None or gamma.shape != (c, 1, 1) or beta.shape != (c, 1, 1) or len(shape) != 4
                or shape[1] != c or gamma.dtype != np.float32):
            continue
        x, y = mul.input[0], add.output[0]
        if _feeds_resize(G, y):
            w = np.zeros((c, c, 1, 1), np.float32)
            w[np.arange(c), np.arange(c), 0, 0] = gamma.reshape(c)
            node = helper.make_node("Conv", [x, G.add_const(f"{add.name}.diag_weight", w),
                                             G.add_const(f"{add.name}.diag_bias", beta.reshape(c))], [y],
                                    name=G.unique(f"{add.name}.diag"), kernel_shape=[1, 1])
            diag += 1
        else:
            params = [G.add_const(f"{add.name}.{k}", v.astype(np.float32)) for k, v in (
                ("scale", gamma.reshape(c)), ("bias", beta.reshape(c)), ("mean", np.zeros(c)), ("var", np.ones(c)))]
            node = helper.make_node("BatchNormalization", [x] + params, [y], name=G.unique(f"{add.name}.affine"),
                                    epsilon=0.0)
            bn += 1
        replacements[id(add)] = [node]
        removed.add(id(mul))
    G.replace(replacements, removed)
    return {"group_norm_affine_bn": bn, "group_norm_affine_conv": diag}


def resize_scales(model) -> int:
    """Resize(x, sizes=const) with whole-number ratios -> Resize(x, scales=const)."""
    G = _Graph(model)
    done = 0
    for node in G.g.node:
        if node.op_type != "Resize" or len(node.input) != 4 or any(node.input[1:3]):
            continue
        sizes, in_shape = G.const(node.input[3]), G.shape.get(node.input[0])
        if sizes is None or not in_shape or None in in_shape or 0 in in_shape or len(sizes) != len(in_shape):
            continue
        ratio = sizes.astype(np.float64) / np.asarray(in_shape, np.float64)
        if not np.all(ratio == np.round(ratio)) or not np.all(ratio >= 1):
            continue
        x = node.input[0]
        del node.input[:]
        node.input.extend([x, "", G.add_const(f"{node.name}.scales", ratio.astype(np.float32))])
        done += 1
    return done


# Activations applied per element that ONNX Runtime fuses into the conv before them.
_FUSABLE_ACTIVATIONS = {"Clip", "Relu", "Sigmoid", "Tanh"}


def phase_split_convs(model) -> int:
    """Conv(x, W: C x Cin x kh x kw, stride 1, "same" size) with few output channels, on an even-sized
    input -> DepthToSpace(Conv(x, W4: 4C x Cin x (kh+1) x (kw+1), stride 2, same pads), blocksize 2, DCR).

    Output phase (a, b) of channel c is channel (2a + b) C + c of the stride-2 conv; its kernel is W at
    offset (a, b) in the larger kernel, zeros elsewhere, so every output is the same sum of products
    (the zero taps add exact zeros). Done only where it cuts the blocked kernel's padded multiply-adds
    at least in half (C <= 4 for a 3 x 3 kernel; a 1 x 1 conv never qualifies) and the conv reads at
    least 8 channels."""
    from onnx import helper

    G = _Graph(model)
    replacements, removed, done = {}, set(), 0
    for conv in G.g.node:
        if conv.op_type != "Conv" or len(conv.input) < 2:
            continue
        attrs = _attrs(conv)
        weight = G.const(conv.input[1])
        bias = G.const(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
        if (weight is None or weight.ndim != 4 or weight.dtype != np.float32 or attrs.get("group", 1) != 1
                or any(s != 1 for s in attrs.get("strides", [1, 1]))
                or any(d != 1 for d in attrs.get("dilations", [1, 1]))
                or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
                or (len(conv.input) > 2 and conv.input[2] and bias is None)):
            continue
        cout, cin, kh, kw = weight.shape
        shape, out_shape = G.shape.get(conv.input[0]), G.shape.get(conv.output[0])
        if (not shape or not out_shape or len(shape) != 4 or None in shape or None in out_shape
                or shape[2] % 2 or shape[3] % 2 or out_shape[2:] != shape[2:] or not _blockable(cin)
                or cin < 8):  # fewer inputs: the conv is too cheap to pay for the DepthToSpace (demo 4 -> 4: no gain)
            continue
        if 2 * _padded(4 * cout) * (kh + 1) * (kw + 1) > 4 * _padded(cout) * kh * kw:
            continue
        w4 = np.zeros((4 * cout, cin, kh + 1, kw + 1), np.float32)
        for a in (0, 1):
            for b in (0, 1):
                w4[(2 * a + b) * cout:(2 * a + b + 1) * cout, :, a:a + kh, b:b + kw] = weight
        ins = [conv.input[0], G.add_const(f"{conv.input[1]}.phases", w4)]
        if bias is not None:
            ins.append(G.add_const(f"{conv.input[2]}.phases", np.tile(bias.astype(np.float32), 4)))
        y = conv.output[0]
        phases = G.unique(f"{y}.phases")
        nodes = [helper.make_node("Conv", ins, [phases], name=G.unique(f"{conv.name}.phases"),
                                  kernel_shape=[kh + 1, kw + 1], strides=[2, 2],
                                  pads=list(attrs.get("pads", [0, 0, 0, 0])))]
        at = conv
        act = G.consumers.get(y, [])
        if len(act) == 1 and act[0].op_type in _FUSABLE_ACTIVATIONS and G.single_use(y):
            at = act = act[0]
            y, activated = act.output[0], G.unique(f"{act.output[0]}.phases")
            nodes.append(helper.make_node(act.op_type, [phases] + list(act.input[1:]), [activated],
                                          name=G.unique(f"{act.name}.phases"), **_attrs(act)))
            phases = activated
            removed.add(id(conv))  # the nodes go where the activation was: its Clip bounds exist by then
        nodes.append(helper.make_node("DepthToSpace", [phases], [y], name=G.unique(f"{conv.name}.depth_to_space"),
                                      blocksize=2, mode="DCR"))
        replacements[id(at)] = nodes
        done += 1
    G.replace(replacements, removed)
    return done
