"""Event streams: RingBuffer and PerfBuffer, the C types with event decoding, numpy batches and asyncio on top."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Callable, Literal, Optional, Union

from cbpf import _btf, _cbpf
from cbpf._maps import Map

Event = Union[str, "_btf.Struct", Any]  # a struct name, a Struct, or a numpy dtype
Callback = Optional[Callable[[Any], Any]]


def _resolve(event: Event | None, decode: Callback, map: _cbpf.Map) -> tuple[Callback, Any]:
    """(decode, layout) for an event= argument: layout is a Struct or a numpy dtype, for poll_array()."""
    if event is None:
        return decode, None
    if decode is not None:
        raise TypeError("pass event= or decode=, not both")
    if isinstance(event, str):
        obj = map.object
        if obj is None:
            raise ValueError(f"map {map.name!r} belongs to no Object, so it has no BTF to find struct {event!r} "
                             "in: pass a numpy dtype or a Struct")
        event = _btf.struct_of(obj, event)
    if isinstance(event, _btf.Struct):
        return event.decoder, event  # the C decoder: run on the buffer's memory, no Python call per event
    import numpy as np

    dtype = np.dtype(event)

    def decode_record(data: bytes) -> Any:
        return np.frombuffer(data, dtype, count=1)[0]

    return decode_record, dtype


class _Stream:
    """What RingBuffer and PerfBuffer add in Python (mixed in before the C type)."""

    __slots__ = ()
    _layout: Any
    _waiters: list[tuple[Any, Any]]

    def poll_array(self, timeout: float | None = None, max_events: int | None = None) -> Any:
        """As poll_batch(), as a numpy structured array of the event type (event= names it: a struct of the
        object's BTF or a numpy dtype). Events longer than the type are cut to it (perf pads samples); shorter
        ones are padded with zeros."""
        import numpy as np

        layout = self._layout
        if layout is None:
            raise TypeError("poll_array() needs the event type: create the stream with event= (a struct name, a "
                            "cbpf.Struct or a numpy dtype)")
        dtype = layout.dtype if isinstance(layout, _btf.Struct) else layout
        data, count = self._poll_records(dtype.itemsize, timeout, max_events)  # type: ignore[attr-defined]
        return np.frombuffer(data, dtype, count=count)

    @property
    def event(self) -> Any:
        """The event type given as event= (a cbpf.Struct or a numpy dtype), or None."""
        return self._layout

    async def events(self) -> AsyncIterator[Any]:
        """Events as they come, for `async for` in an asyncio event loop (the stream's fd is watched with
        loop.add_reader; nothing blocks the loop). Ends when the stream is closed."""
        import asyncio

        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        fd = self.fileno()  # type: ignore[attr-defined]
        waiter = (loop, ready)
        loop.add_reader(fd, ready.set)
        self._waiters.append(waiter)
        try:
            while not self.closed:  # type: ignore[attr-defined]
                try:
                    event = self.read(0)  # type: ignore[attr-defined]
                except ValueError:
                    if self.closed:  # type: ignore[attr-defined]
                        return  # closed from another thread meanwhile
                    raise
                if event is not None:
                    yield event
                    continue
                ready.clear()
                await ready.wait()
        finally:
            self._waiters.remove(waiter)
            loop.remove_reader(fd)

    def close(self) -> None:
        """Frees the buffers and fds. A poll under way in another thread returns first; `async for` loops over
        events() end."""
        super().close()  # type: ignore[misc]
        for loop, ready in list(self._waiters):
            loop.call_soon_threadsafe(ready.set)

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False


class RingBuffer(_Stream, _cbpf.RingBuffer):
    """Events from BPF_MAP_TYPE_RINGBUF maps (see the README's "Event streams").

    maps: a Map, or a sequence of Maps read together. callback(event) is what poll() calls per event. event=
    names the event type (a struct of the map's object BTF, a cbpf.Struct or a numpy dtype): events then come
    decoded (named tuples, or numpy records), and poll_array() gives numpy arrays. decode= is any function of the
    event's bytes instead. Without either, events are bytes.
    """

    __slots__ = ("_layout", "_waiters")

    def __new__(cls, maps: Map | Sequence[Map], callback: Callback = None, *, event: Event | None = None,
                decode: Callback = None) -> RingBuffer:
        if not isinstance(maps, _cbpf.Map):
            try:
                maps = tuple(maps)
            except TypeError:
                raise TypeError(f"RingBuffer takes a Map or a sequence of Maps, not {type(maps).__name__}") from None
        first = maps if isinstance(maps, _cbpf.Map) else maps[0] if maps else None
        decode, layout = _resolve(event, decode, first) if isinstance(first, _cbpf.Map) else (decode, None)
        self = super().__new__(cls, maps, callback, decode=decode)
        self._layout = layout
        self._waiters = []
        return self

    def add(self, map: _cbpf.Map, callback: Callback = None, *, event: Event | None = None,
            decode: Callback = None) -> None:
        """Adds another ring buffer map, with its own callback and event type (None: the RingBuffer's)."""
        decode, _ = _resolve(event, decode, map)
        super().add(map, callback, decode=decode)


class PerfBuffer(_Stream, _cbpf.PerfBuffer):
    """Events from a BPF_MAP_TYPE_PERF_EVENT_ARRAY map: a buffer of page_cnt pages per CPU (see the README's
    "Event streams"). Samples the kernel drops when a buffer is full are counted in `lost` and reported to
    lost_callback(cpu, count). event= and decode= as for RingBuffer. wakeup_events > 1 wakes a waiting poll every
    that many samples, which makes bpf_perf_event_output() much cheaper; a poll then sees the last few samples only
    when its timeout ends (so give it one).
    """

    __slots__ = ("_layout", "_waiters")

    def __new__(cls, map: Map, callback: Callback = None, page_cnt: int = 64,
                lost_callback: Callable[[int, int], Any] | None = None, *, event: Event | None = None,
                decode: Callback = None, wakeup_events: int = 1) -> PerfBuffer:
        decode, layout = _resolve(event, decode, map) if isinstance(map, _cbpf.Map) else (decode, None)
        self = super().__new__(cls, map, callback, page_cnt, lost_callback, decode=decode,
                               wakeup_events=wakeup_events)
        self._layout = layout
        self._waiters = []
        return self
