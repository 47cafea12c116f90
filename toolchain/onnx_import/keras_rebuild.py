"""Rebuild a convolutional ONNX graph as a ``tf_keras`` model with the same weights.

Why not onnx2tf here: its SavedModel is a frozen function, so a BiLSTM put after it in one graph
does not fuse into TFLite's ``UNIDIRECTIONAL_SEQUENCE_LSTM`` (the converter leaves a float
``WHILE`` loop; measured on PP-OCRv6's backbone), and its weights cannot be fine-tuned. The
graphs this handles are PaddleOCR backbones after onnx-simplifier: Conv (any group, explicit or
SAME_UPPER padding), Relu, HardSigmoid, the exact GELU chain ``(x·0.5)·(erf(x/√2)+1)`` (either
association), Mul/Add/Div, MaxPool over non-negative inputs, AveragePool without padding,
Concat on channels and a spatial ReduceMean. Anything else raises :class:`UnsupportedOpError`
naming the node.

Tensors are NHWC on the Keras side (ONNX's NCHW axis 1 is Keras' axis -1).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


class UnsupportedOpError(ValueError):
    """The ONNX graph holds an op (or an op form) this rebuild does not translate."""


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _gelu_chains(nodes: list[onnx.NodeProto], consts: dict[str, np.ndarray]) -> tuple[dict[str, str], set[str]]:
    """{output of a GELU chain: its input} and the names of the chain's inner nodes."""
    producer = {o: n for n in nodes for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs, inner = {}, set()
    for erf in (n for n in nodes if n.op_type == "Erf"):
        div = producer.get(erf.input[0])
        if div is None or div.op_type != "Div" or not np.isclose(float(consts.get(div.input[1], 0)), np.sqrt(2)):
            raise UnsupportedOpError(f"{erf.name}: Erf outside an exact GELU chain")
        x = div.input[0]
        (add,) = consumers[erf.output[0]]
        (final,) = consumers[add.output[0]]
        half = next((producer[i] for i in final.input if i != add.output[0]), None)
        if half is None or half.op_type != "Mul" or x not in half.input:
            raise UnsupportedOpError(f"{erf.name}: GELU chain of an unexpected shape")
        outputs[final.output[0]] = x
        inner |= {div.name, erf.name, add.name, half.name, final.name}
    return outputs, inner


def rebuild(model: onnx.ModelProto, outputs: list[str], channels: int = 3, height: int | None = None,
            name: str = "backbone"):
    """A ``tf_keras`` model (input NHWC, batch 1-free, width dynamic) computing ``outputs`` (NHWC)
    of ``model`` with its weights; BatchNorm must already be folded into the convolutions."""
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers

    graph = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
    nodes = [n for n in graph.node if n.op_type != "Constant"]
    gelu_out, gelu_inner = _gelu_chains(nodes, consts)
    inp = keras.Input((height, None, channels), name="image")
    t: dict[str, object] = {graph.input[0].name: inp}

    def pad(x, pads: list[int], kernel: list[int], strides: list[int], node: onnx.NodeProto):
        """(input, Keras padding): "same" where it equals ``pads`` (stride 1, the extra row and
        column at the end), else an explicit zero padding and "valid"."""
        top, left, bottom, right = pads
        (kh, kw) = kernel
        if strides == [1, 1] and [top, left, bottom, right] == [(kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2]:
            return x, "same"
        if any(pads):
            x = layers.ZeroPadding2D(((top, bottom), (left, right)), name=f"{node.name}_pad")(x)
        return x, "valid"

    def onnx_pads(a: dict, kernel: list[int], strides: list[int], node: onnx.NodeProto) -> list[int]:
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"SAME_UPPER", b"VALID"):
            raise UnsupportedOpError(f"{node.name}: auto_pad {a['auto_pad']!r}")
        if a.get("auto_pad") == b"SAME_UPPER":
            if strides != [1, 1]:
                raise UnsupportedOpError(f"{node.name}: SAME_UPPER padding with a stride other than 1")
            return [(kernel[0] - 1) // 2, (kernel[1] - 1) // 2, kernel[0] // 2, kernel[1] // 2]
        return list(a.get("pads", [0] * 4))

    for node in nodes:
        if node.name in gelu_inner and node.output[0] not in gelu_out:
            continue
        out = node.output[0]
        if out in gelu_out:
            t[out] = layers.Activation(lambda v: tf.nn.gelu(v, approximate=False), name=node.name)(t[gelu_out[out]])
            continue
        a, op = _attrs(node), node.op_type
        ins = [t.get(i) for i in node.input]
        if op == "Conv":
            w = consts[node.input[1]]
            bias = consts[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            kernel, strides, group = list(a["kernel_shape"]), list(a.get("strides", [1, 1])), a.get("group", 1)
            if a.get("dilations", [1, 1]) != [1, 1]:
                raise UnsupportedOpError(f"{node.name}: dilated convolution")
            x, padding = pad(ins[0], onnx_pads(a, kernel, strides, node), kernel, strides, node)
            if group == 1:
                layer = layers.Conv2D(w.shape[0], kernel, strides, padding, name=node.name)
                x = layer(x)
                layer.set_weights([w.transpose(2, 3, 1, 0), bias])
            elif group == w.shape[0] and w.shape[1] == 1:
                layer = layers.DepthwiseConv2D(kernel, strides, padding, name=node.name)
                x = layer(x)
                layer.set_weights([w.transpose(2, 3, 0, 1), bias])
            else:
                raise UnsupportedOpError(f"{node.name}: grouped convolution that is not depthwise")
            t[out] = x
        elif op == "Relu":
            t[out] = layers.ReLU(name=node.name)(ins[0])
        elif op == "HardSigmoid":
            alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
            t[out] = layers.Activation(lambda v, al=alpha, be=beta: tf.clip_by_value(v * al + be, 0.0, 1.0),
                                       name=node.name)(ins[0])
        elif op in ("Mul", "Add", "Div"):
            const = [consts.get(i) for i in node.input]
            if all(v is not None for v in ins):
                if op == "Div":
                    raise UnsupportedOpError(f"{node.name}: division of two tensors")
                t[out] = (layers.Multiply if op == "Mul" else layers.Add)(name=node.name)(ins)
            else:
                x, c = (ins[0], const[1]) if ins[0] is not None else (ins[1], const[0])
                if c is None or c.size != 1:
                    raise UnsupportedOpError(f"{node.name}: {op} with a non-scalar constant")
                c = float(c.ravel()[0])
                fn = {"Mul": lambda v, c=c: v * c, "Add": lambda v, c=c: v + c, "Div": lambda v, c=c: v / c}[op]
                t[out] = layers.Lambda(fn, name=node.name)(x)
        elif op == "MaxPool":
            kernel, strides = list(a["kernel_shape"]), list(a.get("strides", [1, 1]))
            pads = onnx_pads(a, kernel, strides, node)
            x, padding = pad(ins[0], pads, kernel, strides, node)
            # An explicit zero padding equals the max's own (ignored) padding only over non-negative inputs.
            src = next((n for n in nodes if node.input[0] in n.output), None)
            if padding == "valid" and any(pads) and getattr(src, "op_type", "") != "Relu":
                raise UnsupportedOpError(f"{node.name}: padded max pool over a signed input")
            t[out] = layers.MaxPool2D(kernel, strides, padding, name=node.name)(x)
        elif op == "AveragePool":
            if any(a.get("pads", [0] * 4)) or a.get("ceil_mode", 0):
                raise UnsupportedOpError(f"{node.name}: padded or ceil-mode average pool")
            t[out] = layers.AveragePooling2D(list(a["kernel_shape"]), list(a["strides"]), name=node.name)(ins[0])
        elif op == "Concat":
            if a["axis"] != 1:
                raise UnsupportedOpError(f"{node.name}: concatenation on axis {a['axis']}")
            t[out] = layers.Concatenate(name=node.name)(ins)
        elif op == "ReduceMean":
            axes = list(a.get("axes", consts.get(node.input[1], np.array([])).tolist() if len(node.input) > 1 else []))
            if sorted(axes) != [2, 3] or not a.get("keepdims", 1):
                raise UnsupportedOpError(f"{node.name}: mean over axes {axes}")
            t[out] = layers.GlobalAveragePooling2D(keepdims=True, name=node.name)(ins[0])
        else:
            raise UnsupportedOpError(f"{node.name}: op {op} not translated")
    missing = [o for o in outputs if o not in t]
    if missing:
        raise UnsupportedOpError(f"outputs {missing} not reached")
    return keras.Model(inp, [t[o] for o in outputs], name=name)
