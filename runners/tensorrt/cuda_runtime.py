"""The few CUDA runtime calls the TensorRT runner needs, through cuda-python, each checked.

cuda-python (``cuda.bindings.runtime``, ``cuda.cudart`` before 12.6) returns ``(error, value...)`` tuples; ``call``
raises on any error and returns the value. Host buffers are page-locked (``cudaMallocHost``), as trtexec's are,
and viewed as numpy arrays without a copy.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

try:
    from cuda.bindings import runtime as cudart
except ImportError:  # cuda-python < 12.6
    from cuda import cudart  # type: ignore[no-redef]

SUCCESS = cudart.cudaError_t.cudaSuccess
H2D = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
D2H = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost


class CudaError(RuntimeError):
    pass


def call(result: tuple[Any, ...], what: str = "CUDA call") -> Any:
    error, *values = result
    if error != SUCCESS:
        _, text = cudart.cudaGetErrorString(error)
        raise CudaError(f"{what}: {error.name if hasattr(error, 'name') else error}: {text.decode(errors='replace')}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device() -> dict[str, Any]:
    """Name, compute capability and memory of device 0, and the driver's and runtime's CUDA versions."""
    props = call(cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return {
        "name": name.split("\x00")[0].strip(),
        "compute_capability": f"{props.major}.{props.minor}",
        "total_memory_bytes": int(props.totalGlobalMem),
        "cuda_driver": call(cudart.cudaDriverGetVersion(), "cudaDriverGetVersion"),
        "cuda_runtime": call(cudart.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion"),
    }


class Buffer:
    """One tensor's memory: a device allocation and a page-locked host array of the same shape and dtype."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape, self.dtype = shape, np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        self.nbytes = count * self.dtype.itemsize
        size = max(self.nbytes, 1)  # a zero-size tensor still needs a valid address
        self.device = int(call(cudart.cudaMalloc(size), "cudaMalloc"))
        self._host_ptr = int(call(cudart.cudaMallocHost(size), "cudaMallocHost"))
        raw = (ctypes.c_byte * size).from_address(self._host_ptr)
        self.host = np.frombuffer(raw, dtype=self.dtype, count=count).reshape(shape)

    def to_device(self, stream: Any) -> None:
        call(cudart.cudaMemcpyAsync(self.device, self._host_ptr, self.nbytes, H2D, stream), "cudaMemcpyAsync H2D")

    def to_host(self, stream: Any) -> None:
        call(cudart.cudaMemcpyAsync(self._host_ptr, self.device, self.nbytes, D2H, stream), "cudaMemcpyAsync D2H")

    def free(self) -> None:
        self.host = None  # type: ignore[assignment]  # the view must not outlive the memory
        call(cudart.cudaFree(self.device), "cudaFree")
        call(cudart.cudaFreeHost(self._host_ptr), "cudaFreeHost")


def stream() -> Any:
    return call(cudart.cudaStreamCreate(), "cudaStreamCreate")


def synchronize(stream: Any) -> None:
    call(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")


def event() -> Any:
    return call(cudart.cudaEventCreate(), "cudaEventCreate")


def record(event: Any, stream: Any) -> None:
    call(cudart.cudaEventRecord(event, stream), "cudaEventRecord")


def elapsed_ms(start: Any, end: Any) -> float:
    return float(call(cudart.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))


def wait(event: Any) -> None:
    call(cudart.cudaEventSynchronize(event), "cudaEventSynchronize")


def destroy(stream: Any = None, events: tuple[Any, ...] = ()) -> None:
    for e in events:
        call(cudart.cudaEventDestroy(e), "cudaEventDestroy")
    if stream is not None:
        call(cudart.cudaStreamDestroy(stream), "cudaStreamDestroy")
