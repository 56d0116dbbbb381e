"""Reading and writing TFLite flatbuffers with the schema that ships in ai_edge_litert."""

from xnnfit.tflite.graph import ModelGraph, OpInfo, SubgraphInfo, TensorInfo, read_model

__all__ = ["ModelGraph", "OpInfo", "SubgraphInfo", "TensorInfo", "read_model"]
