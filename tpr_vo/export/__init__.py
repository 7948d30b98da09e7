"""Model export: torch -> ONNX (`tpr_vo.export.onnx.export_onnx`) and ONNX -> TensorRT engines
(`tpr_vo.export.tensorrt`). Nothing heavy is imported here."""
