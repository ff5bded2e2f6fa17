"""The exported float32 graph with its matrix products in float16: what a strongly typed TensorRT builds.

TensorRT 11 removed the builder's FP16 flag (weak typing): an engine computes in the types its graph
names. This rewrite gives every MatMul, Gemm and Conv (all but a fraction of a percent of the network's
FLOPs) float16 inputs, weights and outputs, with a Cast on each side, and leaves everything else in float32:
LayerNorm, softmax, GELU, the residual sums, the head's sigmoid and the box decoding keep their range and
their accuracy. The graph's inputs and outputs stay float32, so a caller feeds it as the float32 graph.
TensorRT fuses the Casts into the neighbouring kernels.
"""
from __future__ import annotations

from typing import Any

FP16_OPS: tuple[str, ...] = ("MatMul", "Gemm", "Conv")
_SUFFIX = "__fp16"


def to_fp16_compute(onnx_bytes: bytes) -> bytes:
    """``onnx_bytes`` with every :data:`FP16_OPS` node computing in float16 (see the module's comment)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    if any(o.endswith(_SUFFIX) for node in graph.node for o in node.output):
        return onnx_bytes  # rewritten already (an fp16 file given to an fp16 engine)
    initializers = {t.name: t for t in graph.initializer}
    # a tensor that only float16 nodes read has no float32 reader left, and its float32 copy is dropped
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}

    nodes: list[Any] = []
    half: dict[str, str] = {}  # float32 tensor -> its float16 twin
    new_initializers: list[Any] = []

    def fp16_twin(name: str) -> str:
        if name in half:
            return half[name]
        twin = name + _SUFFIX
        if name in initializers and initializers[name].data_type == TensorProto.FLOAT:
            array = numpy_helper.to_array(initializers[name]).astype(np.float16)
            new_initializers.append(numpy_helper.from_array(array, twin))
        else:
            nodes.append(helper.make_node("Cast", [name], [twin], to=TensorProto.FLOAT16, name=twin))
        half[name] = twin
        return twin

    for node in graph.node:
        if node.op_type not in FP16_OPS:
            nodes.append(node)
            continue
        inputs = [fp16_twin(name) if name else name for name in node.input]
        outputs = list(node.output)
        del node.input[:]
        node.input.extend(inputs)
        del node.output[:]
        node.output.extend(o + _SUFFIX for o in outputs)
        nodes.append(node)
        for o in outputs:
            nodes.append(helper.make_node("Cast", [o + _SUFFIX], [o], to=TensorProto.FLOAT, name=o + "__fp32"))

    still_read = {name for node in nodes for name in node.input} | graph_outputs
    kept = [t for t in graph.initializer if t.name in still_read]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_initializers)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # the old intermediate types no longer hold; inference below re-derives them
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def fp16_node_count(onnx_bytes: bytes) -> tuple[int, int]:
    """(float16 compute nodes, all compute nodes of :data:`FP16_OPS`) of a graph: what a rewrite reached."""
    import onnx
    from onnx import TensorProto

    model = onnx.shape_inference.infer_shapes(onnx.load_from_string(onnx_bytes))
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    compute = [n for n in model.graph.node if n.op_type in FP16_OPS]
    fp16 = [n for n in compute if all(types.get(i) == TensorProto.FLOAT16 for i in n.input if i)]
    return len(fp16), len(compute)


__all__ = ["FP16_OPS", "to_fp16_compute", "fp16_node_count"]
