"""Manifests: small JSON files that say how a data directory was built.

A data directory (pretraining records, fine-tuning features, ...) is only usable with the
settings it was built with: a model trained with ``seq_len=512`` cannot read records cut at
``seq_len=128``, an uncased vocabulary does not fit cased text, and so on. The builder
writes every such setting into a JSON manifest beside its outputs; the reader compares the
manifest with its own flags and stops with a message that names each disagreeing key, the
two values, and what to do.

:func:`diff` / :func:`compare` find and report disagreements
(:class:`ManifestMismatchError`); reading and writing manifests goes through
:mod:`xlnet_tf.io` (``read_json``, ``write_json_atomic``, ``exclusive_lock``).
"""


class ManifestMismatchError(ValueError):
    """The data was built with settings that differ from the ones the reader was given."""


def _same(a, b):
    """Equality for manifest values: ints/floats compare numerically, bools only with bools."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


_ABSENT = "(absent)"


def diff(manifest, expected):
    """Keys of ``expected`` whose value differs from ``manifest``.

    ``expected`` values that are None are not checked (the caller has no opinion).
    Returns a list of ``(key, manifest_value, expected_value)``; a key missing from the
    manifest reports ``"(absent)"`` as its manifest value.
    """
    out = []
    for key in sorted(expected):
        want = expected[key]
        if want is None:
            continue
        have = manifest.get(key, _ABSENT)
        if have is _ABSENT or not _same(have, want):
            out.append((key, have, want))
    return out


def compare(manifest, expected, *, source, have_name="built with", want_name="given",
            hint=""):
    """Raises :class:`ManifestMismatchError` listing every key where the two disagree.

    Args:
      manifest: dict read from the data directory.
      expected: dict of the caller's settings (None values are skipped).
      source: names the data in the message, e.g. ``"pretraining records in /data/rec"``.
      have_name, want_name: how the two sides are called in each line.
      hint: what to do, appended to the message.
    """
    mismatches = diff(manifest, expected)
    if not mismatches:
        return
    lines = [f"{source} do not match this run's settings:"]
    for key, have, want in mismatches:
        lines.append(f"  {key}: {have_name} {have!r}, {want_name} {want!r}")
    if hint:
        lines.append(hint)
    raise ManifestMismatchError("\n".join(lines))
