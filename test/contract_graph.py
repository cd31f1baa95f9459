"""ONNX graphs with edepth's tensor contract (rgb uint8 (1, H, W, 3), embodied float32 (1, 2, H, W)
-> depth, confidence float32 (1, 1, H, W)) but not edepth's network: stand-ins the tests build to
make a backend's inputs or outputs whatever a case needs."""

from __future__ import annotations


def save_contract_graph(path, nodes, inits, height, width, name: str = "not_edepth", check: bool = False) -> None:
    """Save a graph of ``nodes`` and initialisers ``inits`` with the contract's inputs and outputs at
    ``height`` x ``width`` (ints, or strings for dynamic axes), opset 17."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("rgb", TensorProto.UINT8, [1, height, width, 3]),
         helper.make_tensor_value_info("embodied", TensorProto.FLOAT, [1, 2, height, width])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, height, width]),
         helper.make_tensor_value_info("confidence", TensorProto.FLOAT, [1, 1, height, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, str(path))
