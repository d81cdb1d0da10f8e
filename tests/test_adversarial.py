"""Regression tests for what adversarial testing broke (issue #14): crashes, teardown across fork, pins, argument
ranges, error messages. A test of a crash runs its code in a child interpreter, so that a regression fails the test
instead of killing the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cbpf


def run_child(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs code in a fresh interpreter (this one's cbpf on the path); the result, crash or not."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_clean_exit(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 0, f"child exited with {r.returncode} (negative: killed by that signal)\n{r.stderr[-3000:]}"


# ---- 1. a global written from another thread while load() runs ------------------------------------------------

@pytest.mark.kernel
def test_globals_write_during_load_raises_and_never_crashes(bpf_objects):
    r = run_child(f"""
        import threading, cbpf
        refused = {{"RuntimeError": 0}}
        lost = 0
        for round in range(20):
            obj = cbpf.Object({str(bpf_objects["maps"])!r}, load=False, attach=False)
            g = obj.globals
            stop = threading.Event()
            written = []
            def writer():
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        g["target_tgid"] = i
                        g["increment"] = i
                        written.append(i)
                    except RuntimeError as e:
                        assert "being loaded by another thread" in str(e), e
                        refused["RuntimeError"] += 1
                    except ValueError as e:
                        # load() finished between the check of `loaded` and the write: said, never silent
                        assert "read-only after load" in str(e) or "only before load" in str(e), e
            t = threading.Thread(target=writer)
            t.start()
            while not written:
                pass
            obj.load()
            stop.set()
            t.join()
            # every write that returned took effect: the last one is what the kernel holds
            assert g["increment"] == written[-1], (g["increment"], written[-1])
            obj.close()
        print("refused", refused["RuntimeError"])
    """)
    assert_clean_exit(r)
    assert "refused" in r.stdout


@pytest.mark.kernel
def test_libbpf_state_is_refused_while_loading(bpf_objects):
    """Every entry point that reads or writes libbpf's object says RuntimeError while another thread loads it."""
    r = run_child(f"""
        import os, threading, cbpf
        seen = set()
        for round in range(30):
            obj = cbpf.Object({str(bpf_objects["maps"])!r}, load=False, attach=False)
            m = obj.maps["maps.rodata"]
            prog = next(iter(obj.programs.values()))
            done = threading.Event()
            calls = {{"read global": lambda: m._initial_value(0, 4),
                     "write global": lambda: m._initial_value(0, 4, bytes(4)),
                     "btf describe": lambda: obj._btf_describe(m.btf_value_type_id),
                     "btf find": lambda: obj._btf_find("x"),
                     "autoload": lambda: setattr(prog, "autoload", True),
                     "close": obj.close, "attach program": prog.attach, "attach object": obj.attach}}
            def poke():
                # wait for the load to be under way (a read of a global refused), then try each entry point once
                while not done.is_set():
                    try:
                        m._initial_value(0, 4)
                    except RuntimeError:
                        break
                for name, f in calls.items():  # close() last: it ends the object if the load is over already
                    try:
                        f()
                    except RuntimeError as e:
                        assert "being loaded by another thread" in str(e), e
                        seen.add(name)
                    except ValueError:
                        pass  # the load finished meanwhile: loaded already
            t = threading.Thread(target=poke)
            t.start()
            obj.load()
            done.set()
            t.join()
            obj.close()
        print(",".join(sorted(seen)))
    """)
    assert_clean_exit(r)
    # each was tried while the load ran, in at least one of the 30 rounds
    assert set(r.stdout.strip().split(",")) == {"read global", "write global", "btf describe", "btf find",
                                                "autoload", "close", "attach program", "attach object"}


# ---- 2. a decoder field whose end does not fit a Py_ssize_t -------------------------------------------------

@pytest.mark.parametrize("offset,count", [(2**63 - 8, 0), (2**62, 3), (8, 2**62), (2**63 - 1, 0), (1, 2**63 // 8)])
def test_struct_field_end_overflow_is_a_value_error(offset, count):
    elem = ("int", 8, False, False)
    field_type = ("array", elem, count) if count else elem
    r = run_child(f"""
        import cbpf
        try:
            cbpf.Struct("x", ("struct", 8, [("a", {offset}, 0, {field_type!r})])).decode(bytes(8))
        except ValueError as e:
            print("ValueError", e)
    """)
    assert_clean_exit(r)
    assert r.stdout.startswith("ValueError"), r.stdout


def test_decoder_direct_overflow_and_negative_size():
    Point = __import__("collections").namedtuple("Point", "a")
    with pytest.raises(ValueError, match="ends past"):
        cbpf._cbpf._Decoder(Point, 8, [("u", 2**63 - 8, 8, 0, None)])
    with pytest.raises(ValueError, match="ends past"):
        cbpf._cbpf._Decoder(Point, 8, [("u", 8, 8, 2**62, None)])
    with pytest.raises(ValueError, match=">= 0"):
        cbpf._cbpf._Decoder(Point, -8, [])


@pytest.mark.kernel
def test_initial_value_range_overflow(bpf_objects):
    """offset + size past PY_SSIZE_T_MAX must not wrap around the bounds check."""
    with cbpf.Object(bpf_objects["maps"], load=False, attach=False) as obj:
        m = obj.maps["maps.data"]
        with pytest.raises(ValueError, match="outside map"):
            m._initial_value(2**62, 2**62)
        with pytest.raises(ValueError, match="outside map"):
            m._initial_value(2**63 - 1, 1, b"x")
