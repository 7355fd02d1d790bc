"""Decoding in a second process (run.decode_process): the same results as decode_batch, record by record; a
child that dies leaves the consumer decoding in its own thread."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from monitor.consumer import decoder as decoder_module
from monitor.consumer.decoder import DecodeProcess, _frame, _read_frame, _write_frame, _written, decode_packed, unpack
from monitor.core.contract import DecodeFailure, SensorWindow, decode_batch
from tests.unit.test_contract_fuzz import FUZZ, MAX_BYTES, dump, mutated, same, valid_docs


def _agree(a: list[SensorWindow | DecodeFailure], b: list[SensorWindow | DecodeFailure]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert same(x, y), (x, y)
        if isinstance(x, DecodeFailure):
            assert x == y
        else:
            assert isinstance(y, SensorWindow) and x.values.tobytes() == y.values.tobytes()


records = st.lists(valid_docs().map(lambda d: dump(d[0])) | mutated().map(lambda m: m[0])
                   | st.binary(max_size=200) | st.none(), min_size=1, max_size=10)


@FUZZ
@given(raws=records, shape=st.sampled_from([(None, None), (3, ("a", "b"))]))
def test_packed_results_unpack_to_what_decode_batch_returns(raws: list[bytes | None],
                                                           shape: tuple[int | None, tuple[str, ...] | None]) -> None:
    """Any mix of valid, mutated and arbitrary records; with the model's shape given (every good window of one
    shape, sent as one block) and without it (windows of several shapes: the odd ones travel whole)."""
    window_len, channels = shape
    _agree(unpack(decode_packed(raws, window_len, channels, MAX_BYTES)),
           decode_batch(raws, window_len=window_len, channels=channels, max_bytes=MAX_BYTES))


def _window(sid: str, rows: int) -> bytes:
    values = [[float(i), float(-i)] for i in range(rows)]
    return dump({"sensor_id": sid, "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:00:03Z",
                 "channels": ["a", "b"], "values": values})


def test_the_child_decodes_as_the_thread_does_and_a_dead_child_leaves_the_thread_decoding() -> None:
    raws: list[bytes | None] = [*(_window(f"s{i}", 4) for i in range(50)), b"{", None, _window("short", 3)]
    decoder = DecodeProcess()
    try:
        _agree(decoder.decode(raws, window_len=4, channels=("a", "b"), max_bytes=MAX_BYTES),
               decode_batch(raws, window_len=4, channels=("a", "b"), max_bytes=MAX_BYTES))
        assert decoder.alive
        os.kill(decoder.pid, signal.SIGKILL)
        time.sleep(0.5)
        # the batch in hand is decoded here, and every later one (logged once)
        _agree(decoder.decode(raws, window_len=4, channels=("a", "b"), max_bytes=MAX_BYTES),
               decode_batch(raws, window_len=4, channels=("a", "b"), max_bytes=MAX_BYTES))
        assert not decoder.alive
        assert len(decoder.decode(raws[:3], window_len=4, channels=("a", "b"), max_bytes=MAX_BYTES)) == 3
    finally:
        decoder.close()
        decoder.close()  # idempotent


def test_the_child_ignores_the_signals_that_stop_the_consumer() -> None:
    """SIGTERM / SIGINT go to the consumer's whole process group (a terminal's Ctrl-C, `monitor run --workers`):
    the child must not die before the consumer has decoded its last batch; the consumer stops it."""
    decoder = DecodeProcess()
    try:
        os.kill(decoder.pid, signal.SIGTERM)
        os.kill(decoder.pid, signal.SIGINT)
        time.sleep(0.3)
        raws: list[bytes | None] = [_window("s", 4)]
        assert isinstance(decoder.decode(raws, window_len=4, channels=("a", "b"), max_bytes=MAX_BYTES)[0],
                          SensorWindow)
        assert decoder.alive
    finally:
        decoder.close()


def test_the_child_dies_with_a_consumer_that_is_killed() -> None:
    """A consumer killed by SIGKILL (OOM killer, `kill -9`) runs no cleanup: its end of the pipe closes, and the
    child, waiting for the next request, ends, so no orphaned decoder is left behind."""
    import subprocess
    import sys

    code = ("import os, sys\n"
            "from monitor.consumer.decoder import DecodeProcess\n"
            "d = DecodeProcess()\n"
            "print(d.pid, flush=True)\n"
            "os.kill(os.getpid(), 9)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    child = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"decoder child {child} outlived its killed consumer")


def test_a_child_that_stops_answering_is_given_up_after_the_reply_timeout(monkeypatch: pytest.MonkeyPatch,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A stuck child (stopped here with SIGSTOP) must not stall the consumer, neither in the write of a batch
    larger than the pipe's buffer nor in waiting for the reply: past REPLY_TIMEOUT_S the batch is decoded in the
    loop thread, the child is stopped, and the consumer goes on without it."""
    monkeypatch.setattr(decoder_module, "REPLY_TIMEOUT_S", 0.5)
    for request, stuck in ((8000, "the request was not taken"), (10, "no whole reply")):
        decoder = DecodeProcess()
        try:
            os.kill(decoder.pid, signal.SIGSTOP)
            raws: list[bytes | None] = [_window(f"s{i}", 4) for i in range(request)]
            assert (sum(len(r) for r in raws if r) > decoder_module.PIPE_BYTES) == (request == 8000)  # the write waits
            started = time.monotonic()
            with caplog.at_level("ERROR", logger="monitor.consumer.decoder"):
                _agree(decoder.decode(raws, window_len=4, channels=("a", "b"), max_bytes=MAX_BYTES),
                       decode_batch(raws, window_len=4, channels=("a", "b"), max_bytes=MAX_BYTES))
            assert not decoder.alive and time.monotonic() - started < 10
            assert stuck in caplog.text
            caplog.clear()
        finally:
            decoder.close()


@FUZZ
@given(parts=st.lists(st.binary(max_size=40), max_size=8), data=st.data())
def test_what_is_left_of_a_partial_write_is_the_rest_of_the_frame(parts: list[bytes], data: st.DataObject) -> None:
    whole = b"".join(parts)
    n = data.draw(st.integers(0, len(whole)), label="written")
    left = _written([memoryview(p) for p in parts], n)
    assert b"".join(bytes(v) for v in left) == whole[n:]
    assert all(v.nbytes for v in left)  # no empty part is handed to writev again


def _through_a_pipe(obj: object) -> Any:
    """``obj`` written as one frame into a real pipe (the child's blocking side, on a thread: a frame may be larger
    than the pipe's buffer) and read back by the consumer's side, under its deadline."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    writer = threading.Thread(target=_write_frame, args=(write_fd, obj))
    writer.start()
    try:
        return _read_frame(read_fd, time.monotonic() + 10, 10)
    finally:
        writer.join(timeout=10)
        os.close(read_fd)
        os.close(write_fd)


_READ_FROM_STDIN = """
import os, sys, time
from monitor.consumer.decoder import _read_frame
os.set_blocking(0, False)
print(_read_frame(0, time.monotonic() + 20, 20))
"""


def test_the_consumers_side_reads_a_pipe_that_is_file_descriptor_0() -> None:
    """A consumer started with its standard input closed gets 0 for one of its pipes: ready means a non-empty
    list of descriptors, not a true one (descriptor 0 read as "not ready": a timeout at once, every batch)."""
    frame = b"".join(bytes(p) for p in _frame(("ok", [1, 2, 3])))
    proc = subprocess.run([sys.executable, "-c", _READ_FROM_STDIN], input=frame, capture_output=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().strip() == "('ok', [1, 2, 3])"


@FUZZ
@given(raws=st.lists(st.binary(max_size=3000) | st.none(), max_size=20))
@example(raws=[b"x" * 3000] * 5 + [None, b""])
def test_a_request_frame_carries_the_records_out_of_band_and_reads_back_whole(raws: list[bytes | None]) -> None:
    """The records travel beside the pickle, not in it (no copy of a batch under the GIL), and come back as
    they were."""
    request = ([None if r is None else pickle.PickleBuffer(r) for r in raws], 4, ("a", "b"), MAX_BYTES)
    parts = _frame(request)
    assert parts[2].nbytes < 200 + 16 * len(raws)  # the pickle: the records' places only
    back, window_len, channels, max_bytes = _through_a_pipe(request)
    assert [None if r is None else bytes(r) for r in back] == raws
    assert (window_len, channels, max_bytes) == (4, ("a", "b"), MAX_BYTES)


def test_a_reply_frame_carries_the_values_out_of_band() -> None:
    raws: list[bytes | None] = [*(_window(f"s{i}", 4) for i in range(300)), b"{", None]
    packed = decode_packed(raws, 4, ("a", "b"), MAX_BYTES)
    parts = _frame(("ok", packed))
    assert packed[1] is not None and sum(p.nbytes for p in parts[3:]) == packed[1].nbytes  # the block, beside
    kind, back = _through_a_pipe(("ok", packed))
    assert kind == "ok"
    _agree(unpack(back), decode_batch(raws, window_len=4, channels=("a", "b"), max_bytes=MAX_BYTES))


def test_a_child_that_cannot_be_spawned_is_a_runtime_error_the_consumer_survives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runner catches RuntimeError from a decode process that does not start and decodes in its own thread; a
    spawn that fails in the OS (no such interpreter, process or memory limits) must be one too, not an OSError
    that would end the consumer at its first batch read while behind."""
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    with pytest.raises(RuntimeError, match="could not be spawned"):
        DecodeProcess()
