"""Saves and loads touch only what they should: special files are written
through (never replaced) or read no further than their headers allow,
symlinks are followed, read-only files are refused, killed saves leave no
temp files behind for long, and long loads answer Ctrl-C."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import mxparams as mp
import numpy as np
import pytest
from mxparams import nd

PYTHON_DIR = str(Path(mp.__file__).resolve().parent.parent)


def _arrays() -> dict[str, mp.NDArray]:
    return {"w": nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))}


def test_save_to_dev_null_writes_through() -> None:
    before = os.stat("/dev/null")
    nd.save("/dev/null", _arrays())
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode)
    assert after.st_rdev == before.st_rdev and after.st_ino == before.st_ino


def test_save_to_a_fifo_writes_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    nd.save(str(fifo), _arrays())
    reader.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got and got[0] == nd.save_tobuffer(_arrays())


def test_load_from_a_fifo_reads_what_the_writer_wrote(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    data = nd.save_tobuffer(_arrays())
    writer = threading.Thread(target=lambda: fifo.write_bytes(data))
    writer.start()
    loaded = nd.load(str(fifo))
    writer.join(10)
    assert isinstance(loaded, dict)
    np.testing.assert_array_equal(loaded["w"].asnumpy(), _arrays()["w"].asnumpy())


@pytest.mark.parametrize("dev", ["/dev/zero", "/dev/urandom"])
def test_endless_devices_fail_at_the_header(dev: str) -> None:
    start = time.monotonic()
    with pytest.raises(mp.ParamsFormatError, match="byte offset 0"):
        nd.load(dev)
    assert time.monotonic() - start < 2.0


def test_endless_fifo_after_a_header_stops_at_the_bad_record(tmp_path: Path) -> None:
    # A valid list header, then garbage forever: the loader must stop at the
    # first record's magic, not read the stream to its (absent) end.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    stop = threading.Event()

    def feed() -> None:
        # Unbuffered, and the close inside the try: the reader hangs up early on purpose.
        try:
            with open(fifo, "wb", buffering=0) as f:
                f.write((0x112).to_bytes(8, "little") + bytes(8) + (1).to_bytes(8, "little"))
                while not stop.is_set():
                    f.write(b"\xff" * 65536)
        except BrokenPipeError:
            pass

    t = threading.Thread(target=feed)
    t.start()
    try:
        with pytest.raises(mp.ParamsFormatError, match="byte offset 24"):
            nd.load(str(fifo))
    finally:
        stop.set()
        t.join(10)


def test_symlinks_are_followed_and_loops_refused(tmp_path: Path) -> None:
    target = tmp_path / "real.params"
    link = tmp_path / "link.params"
    link.symlink_to(target)  # dangling
    nd.save(str(link), _arrays())
    assert link.is_symlink() and target.is_file()
    assert set(nd.load(str(target))) == {"w"}  # type: ignore[arg-type]
    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(mp.MXParamsOSError, match="a'") as info:
        nd.save(str(a), _arrays())
    assert info.value.errno == 40  # ELOOP
    assert a.is_symlink() and b.is_symlink()


def test_read_only_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ro.params"
    nd.save(str(path), _arrays())
    before = path.read_bytes()
    path.chmod(0o444)
    with pytest.raises(PermissionError) as info:
        nd.save(str(path), {"x": nd.zeros((1,))})
    assert isinstance(info.value, mp.MXParamsPermissionError)
    assert info.value.filename == str(path)
    assert path.read_bytes() == before
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_mode_bits_survive_a_save(tmp_path: Path) -> None:
    path = tmp_path / "m.params"
    nd.save(str(path), _arrays())
    path.chmod(0o640)
    nd.save(str(path), _arrays())
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    stale = tmp_path / f".m.params.mxparams-tmp-{pid}-abcdefgh"
    stale.write_bytes(b"x" * 1000)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    mine = tmp_path / f".m.params.mxparams-tmp-{os.getpid()}-abcdefgh"
    mine.write_bytes(b"x")
    os.utime(mine, (old, old))
    nd.save(str(tmp_path / "other.params"), _arrays())
    assert not stale.exists()
    assert mine.exists()  # a live process's temp file stays
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name, "other.params"]


def _interrupt_after(script: str, delay: float) -> tuple[int, float, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**os.environ, "PYTHONPATH": PYTHON_DIR},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, float(out.strip().splitlines()[-1]) - sent, err


def test_ctrl_c_interrupts_a_load_blocked_on_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    rc, took, err = _interrupt_after(
        f"""
        import time, mxparams
        print("ready", flush=True)
        try:
            mxparams.nd.load({str(fifo)!r})
        except KeyboardInterrupt:
            print(time.monotonic(), flush=True)
        """,
        0.3,
    )
    assert rc == 0, err
    assert took < 2.0


def test_ctrl_c_interrupts_a_save_and_keeps_the_old_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # nobody reads: the save waits for a reader
    rc, took, err = _interrupt_after(
        f"""
        import time, mxparams
        print("ready", flush=True)
        try:
            mxparams.nd.save({str(fifo)!r}, [mxparams.nd.zeros((4,))])
        except KeyboardInterrupt:
            print(time.monotonic(), flush=True)
        """,
        0.3,
    )
    assert rc == 0, err
    assert took < 2.0
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# Files that Python libraries serialise (torch state_dicts, numpy, trainer
# states, export programs) go through the same native rules as nd.save.


def _write_torch(path: Path) -> None:
    from mxparams._torch_io import write_torch

    write_torch(path, ["w"], [_arrays()["w"]])


def _write_npz(path: Path) -> None:
    from mxparams._torch_io import write_numpy

    write_numpy(path, "npz", ["w"], [_arrays()["w"]])


def _write_states(path: Path) -> None:
    pytest.importorskip("torch")
    from mxparams.trainer_states import dump_states

    dump_states(path, mp.optimizer.SGD(learning_rate=0.1), {})


WRITERS = {"torch": _write_torch, "npz": _write_npz, "states": _write_states}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_serialised_files_follow_symlinks_and_keep_the_link(tmp_path: Path, kind: str) -> None:
    if kind == "torch":
        pytest.importorskip("torch")
    target = tmp_path / "real"
    target.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(target)
    WRITERS[kind](link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() != b"old" and target.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_serialised_files_write_through_a_fifo(tmp_path: Path, kind: str) -> None:
    if kind == "torch":
        pytest.importorskip("torch")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    WRITERS[kind](fifo)
    reader.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got and len(got[0]) > 0


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_serialised_files_refuse_directories_and_read_only_files(tmp_path: Path, kind: str) -> None:
    if kind == "torch":
        pytest.importorskip("torch")
    folder = tmp_path / "dir"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as err:
        WRITERS[kind](folder)
    assert isinstance(err.value, mp.MXParamsError) and err.value.filename == str(folder)
    locked = tmp_path / "locked"
    locked.write_bytes(b"keep")
    locked.chmod(0o444)
    with pytest.raises(PermissionError):
        WRITERS[kind](locked)
    assert locked.read_bytes() == b"keep"


def test_a_failing_serialiser_keeps_the_previous_file(tmp_path: Path) -> None:
    from mxparams._files import write_with

    path = tmp_path / "f.bin"
    path.write_bytes(b"previous")

    def boom(stream: object) -> None:
        raise RuntimeError("serialiser failed")

    with pytest.raises(RuntimeError):
        write_with(path, boom)
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
