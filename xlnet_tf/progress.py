"""The ETA of a progress line, from the work done so far."""
import time


def eta(done, total, elapsed):
    """``HH:MM:SS`` left at the rate of ``done`` units in ``elapsed`` seconds (``--:--:--``
    before anything is done); ``total`` may be an estimate (the ETA is then ``about``)."""
    if done <= 0 or total is None:
        return "--:--:--"
    left = max(total - done, 0) * elapsed / done
    return time.strftime("%H:%M:%S", time.gmtime(left))
