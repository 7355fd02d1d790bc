"""Decoding in a second process (``run.decode_process``; by default on where a consumer has a core to spare:
``monitor.consumer.parallelism``): the consumer's JSON parsing and validation off the scoring process's core and
its GIL.

One consumer is bound by its main thread (docs/benchmarks.md, round 7): the model, the decoding of each record's
value, kafka-python's record parsing and the judging share one core and one GIL, so a decoding thread
(``run.overlap`` alone) gains nothing. A child process decodes each poll's values instead; with ``run.overlap``
the loop thread waits for it (without the GIL) while the worker thread scores the batch before, so decoding and
scoring run on two cores. The results are exactly ``contract.decode_batch``'s, in the same order: the child sends
back each record's header (or its ``DecodeFailure``) and the good windows' values as one array, and the parent
rebuilds the ``SensorWindow``s as views of it. Nothing about delivery changes: the loop still owns the consumer,
the order, the dead letters and the commits; the child only turns bytes into windows.

The child is ``python -m monitor.consumer.decoder`` (a fresh interpreter that imports the contract only: never a
fork of a process that runs torch's and kafka-python's threads, nor a re-import of the CLI), fed framed pickles
over its stdin and answering on its stdout. The records and the values cross the pipes out of band (``_frame``):
the consumer neither copies a batch into a pickle nor holds the GIL while it crosses (docs/benchmarks.md, round
14). It ignores SIGINT/SIGTERM (the consumer's process group gets them; the consumer decides when to stop, and
closes its stdin), and it ends when its stdin closes, so it never outlives its consumer (a ``kill -9`` of the
consumer closes the pipe too). If it fails, dies or takes longer than ``REPLY_TIMEOUT_S`` for a batch, the batch
is decoded in the loop thread and the consumer goes on without it (logged once): a helper never stops the
consumer.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from monitor.core.contract import DecodeFailure, SensorWindow, decode_batch

log = logging.getLogger(__name__)

Head = tuple[str, datetime, datetime, tuple[str, ...]] | DecodeFailure | None  # None: in the odd windows' list
Packed = tuple[list[Head], np.ndarray | None, list[SensorWindow]]

START_TIMEOUT_S = 60.0
REPLY_TIMEOUT_S = 60.0  # one batch of at most max_poll_records: decoded in well under a second
_HEAD = struct.Struct("<QQ")  # a frame's pickle size and out-of-band buffer count (``_frame``)
_IOV_MAX = 512  # buffers per os.writev call (the system's limit is 1024)
PIPE_BYTES = 1 << 20  # the pipes' buffer asked for (``_widen``)


def decode_packed(raws: Sequence[bytes | None], window_len: int | None, channels: tuple[str, ...] | None,
                  max_bytes: int) -> Packed:
    """The child's side: ``decode_batch`` of the values, packed for the pipe: one header per record (or its
    failure), the good windows' values stacked in one float32 array; windows of another shape (none, when
    ``window_len`` and ``channels`` are given) travel whole in the third list, marked by a None header."""
    heads: list[Head] = []
    stacked: list[np.ndarray] = []
    odd: list[SensorWindow] = []
    shape: tuple[int, ...] | None = None
    for result in decode_batch(raws, window_len=window_len, channels=channels, max_bytes=max_bytes):
        if isinstance(result, DecodeFailure):
            heads.append(result)
            continue
        shape = shape or result.values.shape
        if result.values.shape == shape:
            heads.append((result.sensor_id, result.window_start, result.window_end, result.channels))
            stacked.append(result.values)
        else:
            heads.append(None)
            odd.append(result)
    block = np.stack(stacked).astype(np.float32, copy=False) if stacked else None
    return heads, block, odd


def unpack(packed: Packed) -> list[SensorWindow | DecodeFailure]:
    """The parent's side: the results of ``decode_batch``, each good window's values a view of the block."""
    heads, block, odd = packed
    out: list[SensorWindow | DecodeFailure] = []
    k = j = 0
    for head in heads:
        if isinstance(head, DecodeFailure):
            out.append(head)
        elif head is None:
            out.append(odd[j])
            j += 1
        else:
            assert block is not None
            out.append(SensorWindow(head[0], head[1], head[2], head[3], block[k]))
            k += 1
    return out


def _frame(obj: object) -> list[memoryview]:
    """``obj`` as one frame's parts, for ``os.writev``: its pickle (protocol 5) with every large buffer (the raw
    records, wrapped in ``pickle.PickleBuffer``; a packed reply's values) left out of band, so that neither side
    copies them into the pickle, nor holds the GIL while they cross the pipe. The frame: ``_HEAD`` (the pickle's
    size, the buffers' count), each buffer's size, the pickle, the buffers."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    sizes = struct.pack(f"<{len(views)}Q", *(v.nbytes for v in views))
    return [memoryview(_HEAD.pack(len(data), len(views))), memoryview(sizes), memoryview(data), *views]


def _written(parts: list[memoryview], n: int) -> list[memoryview]:
    """What is left of ``parts`` once ``n`` bytes of them were written."""
    while n and parts:
        if n >= parts[0].nbytes:
            n -= parts[0].nbytes
            parts = parts[1:]
        else:
            parts = [parts[0][n:], *parts[1:]]
            n = 0
    return [p for p in parts if p.nbytes]


def _widen(fd: int) -> None:
    """A larger pipe buffer (Linux, up to ``/proc/sys/fs/pipe-max-size``): fewer system calls per batch."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):  # not Linux, or above the system's bound: the default buffer
        pass


def _wait(fd: int, writing: bool, deadline: float | None, timeout_s: float) -> None:
    """Until ``fd`` is ready (no ``deadline``: a blocking pipe, the child's side); TimeoutError past it."""
    if deadline is None:
        return
    remaining = deadline - time.monotonic()
    # the lists of ready descriptors, tested for being non-empty (not ``any``: a pipe may be descriptor 0 in a
    # consumer started with its standard input closed)
    ready = remaining > 0 and bool(select.select([], [fd], [], remaining)[1] if writing else
                                   select.select([fd], [], [], remaining)[0])
    if not ready:
        raise TimeoutError(f"{'the request was not taken' if writing else 'no whole reply'} in {timeout_s:g} s")


def _write_frame(fd: int, obj: object, deadline: float | None = None, timeout_s: float = 0.0) -> None:
    """``obj`` as one frame (``_frame``), the buffers written from their own memory without the GIL
    (``os.writev``); past ``deadline`` (the consumer's non-blocking side) TimeoutError: a batch is larger than
    the pipe's buffer, and a stuck child would otherwise hold the consumer in the write."""
    parts = _frame(obj)
    while parts:
        _wait(fd, True, deadline, timeout_s)
        try:
            parts = _written(parts, os.writev(fd, parts[:_IOV_MAX]))
        except BlockingIOError:
            continue


def _read_frame(fd: int, deadline: float | None = None, timeout_s: float = 0.0) -> Any:
    """One whole frame (``_frame``), each part read straight into the memory it ends up in, without the GIL
    (``os.readv``); EOFError when the other end closed the pipe, TimeoutError past ``deadline`` (a child stopped
    mid-reply cannot hold the consumer either)."""

    def fill(view: memoryview) -> None:
        while view.nbytes:
            _wait(fd, False, deadline, timeout_s)
            try:
                n = os.readv(fd, [view])
            except BlockingIOError:
                continue
            if not n:
                raise EOFError("the other end closed the pipe")
            view = view[n:]

    head = bytearray(_HEAD.size)
    fill(memoryview(head))
    size, count = _HEAD.unpack(head)
    sizes = bytearray(8 * count)
    fill(memoryview(sizes))
    data = bytearray(size)
    fill(memoryview(data))
    buffers = [bytearray(n) for n in struct.unpack(f"<{count}Q", sizes)]
    for buffer in buffers:
        fill(memoryview(buffer))
    return pickle.loads(data, buffers=buffers)  # noqa: S301 - our own process's frame, over a private pipe


def serve(requests: int, replies: int) -> None:
    """The child's loop over its pipes' file descriptors: one reply per request until the requests' pipe closes."""
    _write_frame(replies, ("ready", os.getpid()))
    while True:
        try:
            raws, window_len, channels, max_bytes = _read_frame(requests)
        except EOFError:
            return
        try:  # the records came out of band, as bytearrays
            raws = [None if raw is None else bytes(raw) for raw in raws]
            reply: object = ("ok", decode_packed(raws, window_len, channels, max_bytes))
        except Exception as exc:  # noqa: BLE001 - decode_batch never raises; anything else goes back as text
            reply = ("error", f"{type(exc).__name__}: {exc}")
        _write_frame(replies, reply)


class DecodeProcess:
    """The child; ``decode`` has ``decode_batch``'s signature and results."""

    def __init__(self) -> None:
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "monitor.consumer.decoder"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                close_fds=True)
        except OSError as exc:  # no process or pipe to be had (limits, memory): the consumer decodes itself
            raise RuntimeError(f"the decode process could not be spawned: {exc}") from exc
        assert self._proc.stdin is not None and self._proc.stdout is not None
        for fd in (self._proc.stdin.fileno(), self._proc.stdout.fileno()):
            os.set_blocking(fd, False)  # requests go through _send, replies through _reply
            _widen(fd)
        try:
            kind, pid = self._reply(START_TIMEOUT_S)
            if kind != "ready":
                raise EOFError(f"unexpected greeting {kind!r}")
        except Exception as exc:
            self.close()
            raise RuntimeError(f"the decode process did not start: {exc}") from exc
        self.pid: int = pid

    @property
    def alive(self) -> bool:
        return self._proc is not None

    def _reply(self, timeout_s: float) -> Any:
        assert self._proc is not None and self._proc.stdout is not None
        return _read_frame(self._proc.stdout.fileno(), time.monotonic() + timeout_s, timeout_s)

    def _send(self, obj: object, timeout_s: float) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        _write_frame(self._proc.stdin.fileno(), obj, time.monotonic() + timeout_s, timeout_s)

    def decode(self, raws: Sequence[bytes | None], *, window_len: int | None = None,
               channels: tuple[str, ...] | None = None, max_bytes: int = 1_000_000) -> list[SensorWindow | DecodeFailure]:
        if self._proc is not None:
            try:
                self._send(([None if raw is None else pickle.PickleBuffer(raw) for raw in raws], window_len, channels,
                            max_bytes), REPLY_TIMEOUT_S)
                kind, body = self._reply(REPLY_TIMEOUT_S)
                if kind != "ok":
                    raise RuntimeError(body)
                return unpack(body)
            except Exception as exc:  # noqa: BLE001 - a dead, stuck or failing child: decode here from now on
                log.error("decode process failed (%s: %s); decoding in the consumer's own thread from now on",
                          type(exc).__name__, exc)
                self.close()
        return decode_batch(raws, window_len=window_len, channels=channels, max_bytes=max_bytes)

    def close(self) -> None:
        """Close the child's stdin (it exits); kill it if it has not within a few seconds."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    gc.disable()  # a batch's lists hold no reference cycles (as in the loop thread's decode)
    sys.stdout = sys.stderr  # nothing else may write to the replies' pipe (file descriptor 1)
    serve(0, 1)


if __name__ == "__main__":
    main()
