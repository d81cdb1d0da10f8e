import os
from types import MappingProxyType
from typing import Optional, Union

from cbpf._cbpf import BPF_ANY as BPF_ANY, BPF_EXIST as BPF_EXIST, BPF_NOEXIST as BPF_NOEXIST
from cbpf._cbpf import LoadError as LoadError, Map as Map, Object as Object
from cbpf._cbpf import fetch as fetch, libbpf_version as libbpf_version

__version__: str
Source = Union[str, os.PathLike[str], bytes, bytearray, memoryview]

def boot(source: Source, *, name: Optional[str] = None) -> Object: ...
def booted() -> tuple[Object, ...]: ...
def shutdown() -> None: ...
def include_dir() -> str: ...
