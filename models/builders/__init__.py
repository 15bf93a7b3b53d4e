"""Builders that write zoo architectures as ONNX graphs with onnx + numpy only (no torch).

Every builder is a zero-argument function returning an ``onnx.ModelProto``; the same code gives the
same bytes on every machine, and the manifest pins their sha256.
"""
