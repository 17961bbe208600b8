"""The inference runtime: ONNX Runtime and TensorRT backends behind one ``Model`` protocol, and the engine cache."""
