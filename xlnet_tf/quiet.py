"""A calm terminal for the command-line entry points: TensorFlow's start-up noise, silenced.

Importing TensorFlow, and creating its devices, prints lines from C++ before Python's or
absl's logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` does not hide them all: "All log
messages before absl::InitializeLog() ...", "Could not find cuda drivers ...", "failed call
to cuInit ...", the oneDNN and CPU-instruction notices, the cuDNN/cuFFT/cuBLAS factory
registrations.  :func:`quiet_tensorflow` imports TensorFlow and creates its devices with the
process's stderr (file descriptor 2) captured, then writes back every captured line that is
NOT one of those notices, so a real warning or an import error still reaches the user.

Only entry points call it (first thing, before importing the library); importing
``xlnet_tf`` as a library never touches stderr.  ``--verbose`` on the command line, or
``XLNET_TF_VERBOSE=1``, keeps everything.
"""
import os
import re
import sys
import tempfile

# the start-up notices of a CPU machine (and of a GPU build without a GPU)
NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|cudart_stub\.cc|Could not find cuda drivers"
    r"|cuda_platform\.cc|failed call to cuInit|cuda_diagnostics|cuda_executor"
    r"|cpu_feature_guard\.cc|This TensorFlow binary is optimized"
    r"|To enable the following instructions:"
    r"|oneDNN custom operations are on|TF_ENABLE_ONEDNN_OPTS"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|computation_placer"
    r"|TF-TRT Warning|port\.cc:\d+\] oneDNN")


def verbose_requested(argv=None, environ=None):
    """``--verbose`` (or ``--verbose=true/1``) in ``argv``, or ``XLNET_TF_VERBOSE`` set to a
    true value."""
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    if environ.get("XLNET_TF_VERBOSE", "").lower() in ("1", "true", "yes"):
        return True
    verbose = False
    for arg in argv:
        if arg in ("--verbose", "-verbose"):
            verbose = True
        elif arg in ("--noverbose", "-noverbose"):
            verbose = False
        elif arg.startswith(("--verbose=", "-verbose=")):
            verbose = arg.split("=", 1)[1].lower() in ("1", "true", "t", "yes", "y")
    return verbose


def filter_noise(text):
    """``text`` without the start-up notice lines."""
    return "".join(line for line in text.splitlines(keepends=True) if not NOISE.search(line))


def quiet_tensorflow(argv=None, verbose=None):
    """Import TensorFlow and create its devices with stderr captured; write back what is not
    start-up noise.  Does nothing when TensorFlow is already imported or verbosity was asked
    for (``verbose``, default: :func:`verbose_requested` on ``argv``).  Returns True when it
    silenced anything."""
    verbose = verbose_requested(argv) if verbose is None else (
        verbose or verbose_requested([]))
    if "tensorflow" in sys.modules or verbose:
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")      # oneDNN's info line
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):                         # no real stderr (embedded use)
        return False
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf
            tf.config.list_physical_devices()              # the device (cuInit) notices
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = filter_noise(capture.read().decode("utf-8", "replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()
    return True
