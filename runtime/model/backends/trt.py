"""Native TensorRT backend (NVIDIA GPUs): build an engine from the bundle's ONNX, cache it, run named tensors.

Engines are built with the current Python API (``build_serialized_network``, explicit optimisation profiles over
every dynamic input, FP16) and cached beside the ONNX file, keyed by GPU name + TensorRT version + ONNX sha256
(DESIGN 6). Inference binds device buffers by tensor name and calls ``execute_async_v3`` on a CUDA stream.
Needs the ``gpu`` extra (``tensorrt``, ``cuda-python``) and a CUDA device; elsewhere it raises
``BackendUnavailable`` with the reason, before touching any file.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.model.backends.base import BackendUnavailable, Signature

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Profile:
    """Sizes the engine must accept for each dynamic axis name: (min, opt, max)."""

    axes: dict[str, tuple[int, int, int]]

    def shapes(self, shape: tuple) -> tuple[tuple[int, ...], ...]:
        def pick(i: int) -> tuple[int, ...]:
            return tuple(d if isinstance(d, int) else self.axes[d][i] for d in shape)

        return pick(0), pick(1), pick(2)


# batch: 1 person .. 16 sessions x 2 people; frames: streaming windows up to 10 s offline windows.
DEFAULT_PROFILE = Profile({"batch": (1, 2, 32), "frames": (8, 33, 300)})


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-bindings >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as e:
            raise BackendUnavailable("trt backend needs cuda-bindings: pip install -e '.[gpu]'") from e
    return cudart


def _check(result, what: str):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA {what} failed: {err}")
    return rest[0] if len(rest) == 1 else rest


def _import_trt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailable("trt backend needs TensorRT: pip install -e '.[gpu]' on a machine with CUDA") from e
    return trt


def gpu_name() -> str:
    """Name of CUDA device 0, or BackendUnavailable("no CUDA device found")."""
    cudart = _cudart()
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        raise BackendUnavailable("trt backend: no CUDA device found")
    props = _check(cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.strip("\x00 ")


def engine_path(onnx_path: Path, gpu: str, trt_version: str) -> Path:
    """Cache key: GPU name + TensorRT version + ONNX sha256 (first 16 hex)."""
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-")
    return onnx_path.with_name(f"{onnx_path.stem}.{slug}.trt{trt_version}.{digest}.engine")


def build_engine(onnx_path: Path, signature: Signature, profile: Profile = DEFAULT_PROFILE, fp16: bool = True) -> bytes:
    """ONNX -> serialized engine. Every dynamic input gets an explicit (min, opt, max) shape."""
    trt = _import_trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"{onnx_path}: TensorRT cannot parse this ONNX graph: {errors}")
    config = builder.create_builder_config()
    if fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    for spec in signature.inputs:
        lo, opt, hi = profile.shapes(spec.shape)
        opt_profile.set_shape(spec.name, lo, opt, hi)
        log.info("profile %s: min %s opt %s max %s", spec.name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    return bytes(serialized)


class TrtGraph:
    def __init__(self, engine, name: str, signature: Signature) -> None:
        self.engine = engine
        self.name = name
        self.signature = signature
        self.context = engine.create_execution_context()
        self.cudart = _cudart()
        self.stream = _check(self.cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)

    def _device(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(self.cudart.cudaFree(ptr), "cudaFree")
            ptr = _check(self.cudart.cudaMalloc(nbytes), "cudaMalloc")
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart, h2d, d2h = self.cudart, 1, 2  # cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost
        for spec in self.signature.inputs:
            host = np.ascontiguousarray(feed[spec.name])
            ptr = self._device(spec.name, host.nbytes)
            _check(cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, h2d, self.stream), "cudaMemcpyAsync")
            self.context.set_input_shape(spec.name, host.shape)
            self.context.set_tensor_address(spec.name, ptr)
        outputs = {}
        for spec in self.signature.outputs:
            shape = tuple(self.context.get_tensor_shape(spec.name))
            outputs[spec.name] = np.empty(shape, dtype=spec.dtype)
            self.context.set_tensor_address(spec.name, self._device(spec.name, outputs[spec.name].nbytes))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError(f"{self.name}: TensorRT execute_async_v3 failed")
        for name, host in outputs.items():
            ptr = self._buffers[name][0]
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, d2h, self.stream), "cudaMemcpyAsync")
        _check(cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        return outputs


class TrtBackend:
    name = "trt"

    def __init__(self, cache_dir: Path | None = None, profile: Profile = DEFAULT_PROFILE, fp16: bool = True) -> None:
        self.gpu = gpu_name()  # first: on a machine without a GPU this is the reason to give
        self.trt = _import_trt()
        self.cache_dir = cache_dir
        self.profile = profile
        self.fp16 = fp16

    def engine_for(self, onnx_path: Path, signature: Signature) -> Path:
        """Build (or reuse) the cached engine of ``onnx_path`` for this GPU; returns its path."""
        cached = engine_path(onnx_path, self.gpu, self.trt.__version__)
        if self.cache_dir is not None:
            cached = Path(self.cache_dir) / cached.name
        if not cached.is_file():
            log.info("building TensorRT engine %s (%s, fp16=%s)", cached.name, self.gpu, self.fp16)
            cached.write_bytes(build_engine(onnx_path, signature, self.profile, self.fp16))
        return cached

    def load(self, path: Path, signature: Signature) -> TrtGraph:
        runtime = self.trt.Runtime(self.trt.Logger(self.trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(self.engine_for(path, signature).read_bytes())
        if engine is None:
            raise RuntimeError(f"{path}: cached TensorRT engine could not be deserialized; delete it to rebuild")
        return TrtGraph(engine, path.stem, signature)
