"""`python -m shard_node.sketch_model`: write the ONNX graph the scan sketch runs (one MatMulInteger).

The graph is committed (shard_node/int8_dot.onnx, a few hundred bytes) so shard nodes need onnxruntime only,
not the onnx package that writes it; tests/unit/shard_node/test_sketch.py checks the file is what this writes.
"""

from __future__ import annotations

from pathlib import Path

MODEL_FILE = Path(__file__).with_name("int8_dot.onnx")
ZERO_POINT = 128  # rows are stored as uint8 codes + 128: MLAS's fast integer kernels take uint8 x int8


def model_bytes() -> bytes:
    """The serialised graph: Y[n, q] = (A[n, d] - 128) @ B[d, q] in int32, A uint8 and B int8."""
    from onnx import TensorProto, helper  # the convert/images extras; not needed to run the graph

    a = helper.make_tensor_value_info("A", TensorProto.UINT8, ["n", "d"])
    b = helper.make_tensor_value_info("B", TensorProto.INT8, ["d", "q"])
    y = helper.make_tensor_value_info("Y", TensorProto.INT32, ["n", "q"])
    zero = helper.make_tensor("a_zero_point", TensorProto.UINT8, [], [ZERO_POINT])
    node = helper.make_node("MatMulInteger", ["A", "B", "a_zero_point"], ["Y"])
    graph = helper.make_graph([node], "int8_dot", [a, b], [y], initializer=[zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="shoal")
    model.ir_version = 8  # what every onnxruntime since 1.10 reads
    return model.SerializeToString()


if __name__ == "__main__":
    MODEL_FILE.write_bytes(model_bytes())
    print(f"wrote {MODEL_FILE} ({MODEL_FILE.stat().st_size} bytes)")
