"""Array-module helpers so one implementation serves NumPy (CPU) and CuPy (GPU).

Core functions call :func:`array_module` on their input and use the returned
module (``xp``) for every array operation; CuPy is imported lazily so CPU-only
installs never need it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np


def array_module(*arrays: Any) -> ModuleType:
    """NumPy, or CuPy when any argument is a CuPy array."""
    for a in arrays:
        if type(a).__module__.split(".")[0] == "cupy":
            import cupy  # noqa: PLC0415 - optional dependency

            return cupy
    return np


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy  # noqa: PLC0415

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError, missing driver ...
        return False


def to_torch(array: Any, device: Any = None) -> Any:
    """Hand an array to torch without a copy where possible.

    NumPy arrays are wrapped with ``torch.from_numpy`` (shared memory); CuPy arrays
    go through DLPack, so the GPU buffer is shared, not copied.
    """
    import torch  # noqa: PLC0415 - keep NumPy-only users free of torch at import

    if isinstance(array, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    else:
        tensor = torch.from_dlpack(array)
    if device is not None and tensor.device != torch.device(device):
        tensor = tensor.to(device, non_blocking=True)
    return tensor


def to_numpy(array: Any) -> np.ndarray:
    """Any of NumPy / CuPy / torch -> NumPy (copies from the GPU when needed)."""
    if isinstance(array, np.ndarray):
        return array
    module = type(array).__module__.split(".")[0]
    if module == "cupy":
        return array.get()
    if module == "torch":
        return array.detach().cpu().numpy()
    return np.asarray(array)
