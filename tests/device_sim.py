"""A simulated accelerator for CPU-only machines: catches host/device mix-ups without a GPU.

Inside :func:`simulated_device`, PyTorch's ``meta`` device behaves like a real accelerator: a tensor moved
there (``x.to("meta")``, ``network.to("meta")``, a factory call with ``device="meta"``) keeps its real
values on the host, reports ``device.type == "meta"``, and computes for real. Mixing it with a host tensor
in one operation raises the same error a GPU raises ("Expected all tensors to be on the same device"),
with CUDA's exceptions: 0-dim host tensors (scalars), copies between devices, and indexing a device tensor
with host indices. ``.cpu()``/``.to("cpu")`` bring values back; ``.numpy()`` on a device tensor fails as on
CUDA. So a pipeline run with ``device="meta"`` under this mode fails on exactly the class of bug the first
GPU run hit (a host batch fed to a network on the GPU), on a machine with no GPU.

Test infrastructure only: nothing in the package knows about it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten, tree_map

DEVICE = torch.device("meta")
aten = torch.ops.aten

# Operations that may legitimately take tensors from both sides, as on CUDA.
_TRANSFERS = {aten._to_copy.default, aten.copy_.default, aten._has_compatible_shallow_copy_type.default,
              aten.lift_fresh.default}
_INDEXING = {aten.index.Tensor, aten.index_put_.default, aten.index_put.default, aten._index_put_impl_.default}


class DeviceTensor(torch.Tensor):
    """A tensor on the simulated device: real values in ``inner`` (a host tensor), device ``meta``."""

    inner: torch.Tensor

    @staticmethod
    def __new__(cls, inner: torch.Tensor) -> DeviceTensor:
        tensor = torch.Tensor._make_wrapper_subclass(  # type: ignore[attr-defined]
            cls, inner.shape, strides=inner.stride(), storage_offset=inner.storage_offset(), dtype=inner.dtype,
            device=DEVICE, requires_grad=inner.requires_grad,
        )
        tensor.inner = inner
        return tensor

    def __repr__(self) -> str:  # type: ignore[override]
        return f"DeviceTensor({self.inner!r})"

    def tolist(self) -> Any:  # CUDA tensors allow it (a synchronising copy)
        return self.inner.tolist()

    def numpy(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("can't convert meta device type tensor to numpy. Use Tensor.cpu() to copy the tensor to "
                        "host memory first.")

    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        with _disable_current_modes():  # the unwrapped call runs on host tensors only
            return _dispatch(func, args, kwargs or {})


def _host_tensors(values: list[Any]) -> list[torch.Tensor]:
    return [v for v in values if isinstance(v, torch.Tensor) and not isinstance(v, DeviceTensor)
            and v.dim() > 0 and v.device.type == "cpu"]


def _check_devices(func: Any, args: Any, kwargs: Any) -> None:
    if func in _TRANSFERS:
        return
    if func in _INDEXING:
        # a device tensor may be indexed with host indices (CUDA copies them); not the other way round
        self, rest = args[0], (args[1:], kwargs)
        if not isinstance(self, DeviceTensor):
            on_device = [v for v in tree_flatten(rest)[0] if isinstance(v, DeviceTensor)]
            if on_device:
                raise RuntimeError(
                    f"indices should be either on cpu or on the same device as the indexed tensor (cpu) [{func}]"
                )
        return
    flat = tree_flatten((args, kwargs))[0]
    if any(isinstance(v, DeviceTensor) for v in flat) and _host_tensors(flat):
        raise RuntimeError(
            f"Expected all tensors to be on the same device, but found at least two devices, meta and cpu! [{func}]"
        )


# Convolutions counted by where they ran ("device" / "host"), so a test can also catch work that silently
# stays on the host (a network never moved to the chosen device).
CONVOLUTIONS: Counter[str] = Counter()


def _dispatch(func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    _check_devices(func, args, kwargs)
    if func is aten.convolution.default:
        CONVOLUTIONS["device" if isinstance(args[0], DeviceTensor) else "host"] += 1
    flat = tree_flatten((args, kwargs))[0]
    to_device = any(isinstance(v, DeviceTensor) for v in flat)
    requested = kwargs.get("device")
    if requested is not None:
        to_device = torch.device(requested).type == DEVICE.type
        if to_device:
            kwargs = {**kwargs, "device": torch.device("cpu")}
    out = func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))
    first = args[0] if args else None
    if isinstance(first, DeviceTensor) and out is first.inner:
        # in-place: the caller's tensor is the result; a metadata change (unsqueeze_, transpose_, ...) must
        # reach the wrapper too, which the meta device's own kernels do for it
        if first.shape != out.shape or first.stride() != out.stride():
            with torch._C._DisableTorchDispatch():
                func(first, *tree_map(_unwrap, args[1:]), **tree_map(_unwrap, kwargs))
        return first
    if not to_device:
        return out
    return tree_map(lambda v: DeviceTensor(v) if isinstance(v, torch.Tensor) and not isinstance(v, DeviceTensor)
                    else v, out)


def _unwrap(value: Any) -> Any:
    return value.inner if isinstance(value, DeviceTensor) else value


class _SimulatedDevice(TorchDispatchMode):
    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if any(issubclass(t, DeviceTensor) for t in types):
            return NotImplemented
        return _dispatch(func, args, kwargs or {})


@contextmanager
def simulated_device() -> Iterator[torch.device]:
    """Within the block, ``meta`` is a working accelerator that refuses host/device mix-ups; yields it.

    :data:`CONVOLUTIONS` starts from zero in each block."""
    CONVOLUTIONS.clear()
    with _SimulatedDevice():
        yield DEVICE
