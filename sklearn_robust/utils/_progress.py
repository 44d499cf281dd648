"""Progress bars and log lines of long calls (``verbose``)."""

# SPDX-License-Identifier: BSD-3-Clause

__all__ = ["progress_bar", "log_line"]


def progress_bar(iterable, verbose, *, desc=None, total=None):
    """``iterable`` in a tqdm progress bar when ``verbose`` > 0 and tqdm is installed.

    The bar goes to stderr and disappears when done (``leave=False``), so that the
    log lines of :func:`log_line` stay readable; without tqdm (the ``progress``
    extra) the iterable is returned unchanged.
    """
    if not verbose:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False)


def log_line(verbose, message):
    """Print ``message`` when ``verbose`` > 0 (stdout, flushed, as scikit-learn)."""
    if verbose:
        print(message, flush=True)
