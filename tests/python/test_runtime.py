"""Training and prediction release the GIL; Ctrl-C stops training with KeyboardInterrupt and
leaves the estimator as it was."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import _thread

import numpy as np
import pytest

import backprop


def big(n=20000, f=64, seed=0):
    r = np.random.default_rng(seed)
    y = np.arange(n) % 5
    x = (r.normal(size=(5, f))[y] + r.normal(size=(n, f))).astype(np.float32)
    return x, y


def test_ctrl_c_in_fit_raises_keyboard_interrupt_and_keeps_the_old_model():
    x, y = big()
    clf = backprop.MLPClassifier(hidden_layer_sizes=(32,), epochs=1).fit(x[:100], y[:100])
    before = clf._net.to_bytes()
    clf.set_params(epochs=10000)  # minutes of training unless interrupted
    timer = threading.Timer(0.3, _thread.interrupt_main)  # as Ctrl-C: SIGINT's flag, then handler
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        clf.fit(x, y)
    assert time.monotonic() - start < 5
    assert clf._net.to_bytes() == before  # the fitted model of before, untouched
    assert clf.predict(x[:3]).shape == (3,)


def test_sigint_to_a_python_process_training_ends_it_cleanly(tmp_path):
    script = textwrap.dedent("""
        import sys, numpy as np, backprop
        x = np.random.default_rng(0).normal(size=(20000, 64)).astype(np.float32)
        y = np.arange(20000) % 5
        try:
            print("training", flush=True)
            backprop.MLPClassifier(hidden_layer_sizes=(32,), epochs=10000).fit(x, y)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            sys.exit(3)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ)
    assert proc.stdout.readline().strip() == "training"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 3, err
    assert out.strip() == "KeyboardInterrupt"


@pytest.mark.parametrize("work", ["fit", "predict"])
def test_the_gil_is_released_while_the_library_works(work):
    x, y = big(n=40000)
    clf = backprop.MLPClassifier(hidden_layer_sizes=(512,), epochs=1, threads=1).fit(x[:50], y[:50])
    clf.set_params(epochs=2)
    xs = np.tile(x, (10, 1))
    calls = []  # seconds of each call into the library

    def work_for_a_while():
        start = time.monotonic()
        while time.monotonic() - start < 0.6:
            t = time.monotonic()
            clf.fit(x, y) if work == "fit" else clf.predict(xs)
            calls.append(time.monotonic() - t)

    t = threading.Thread(target=work_for_a_while)
    t.start()
    last = time.monotonic()
    gap = 0.0
    while t.is_alive():  # Python bytecode running beside the library's calls
        now = time.monotonic()
        gap, last = max(gap, now - last), now
    t.join()
    # Holding the GIL through a call, this loop would stop for the whole call (gap >= every call);
    # released, it stops only when the OS runs something else (other tests, on a loaded machine).
    assert min(calls) > 0.1, calls
    assert gap < min(calls) / 2, (gap, calls)
