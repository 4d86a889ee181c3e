"""Argument checks: the one place of "an integer >= N", "a finite number >= 0", "a fraction", "one of".

Every caller keeps its own wording: ``message`` is a format string filled with ``name``, ``value``,
``minimum``, ``below`` and ``choices`` (e.g. ``"{name} must be a positive integer. Received:
{name}={value!r}"``); without it a default sentence is used. The checks raise ``error``
(:class:`ConfigError` unless given) and return the value. :func:`argument_type` builds the
``type=`` of a command-line flag from the same rules (argparse's one-line "expected ..." errors).

This module imports neither numpy nor TensorFlow: the CLI parses its flags with it before either is
loaded. ``numpy=True`` accepts numpy scalars too (``np.int64``, ``np.float32``), which register as
:class:`numbers.Integral` / :class:`numbers.Real`.

Example:
>>> check_integer("iw_samples", 5, 1)
5
>>> check_number("beta", -1.0)
Traceback (most recent call last):
...
vae_keras.errors.ConfigError: beta must be a finite number >= 0. Received: beta=-1.0
"""

import argparse
import math
import numbers

from vae_keras.errors import ConfigError

INTEGER_MESSAGE = "{name} must be an integer >= {minimum}. Received: {name}={value!r}"
ANY_INTEGER_MESSAGE = "{name} must be an integer. Received: {name}={value!r}"
NUMBER_MESSAGE = "{name} must be a finite number >= {minimum}. Received: {name}={value!r}"
CHOICE_MESSAGE = "{name} must be one of {choices}. Received: {name}={value!r}"


def is_integer(value, numpy=False):
    """An int (numpy=True: or a numpy integer), never a bool."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral if numpy else int)


def is_number(value, numpy=False):
    """An int or float (numpy=True: or a numpy number), never a bool."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real if numpy else (int, float))


def _fail(message, error, **fields):
    raise error(message.format(**fields))


def check_integer(name, value, minimum=None, *, numpy=False, message=None, error=ConfigError):
    """``value`` must be an integer (>= ``minimum`` unless it is None)."""
    if not is_integer(value, numpy) or (minimum is not None and value < minimum):
        default = ANY_INTEGER_MESSAGE if minimum is None else INTEGER_MESSAGE
        _fail(message or default, error, name=name, value=value, minimum=minimum)
    return value


def check_number(name, value, minimum=0, *, below=None, strict=False, numpy=False, message=None, error=ConfigError):
    """``value`` must be a finite number >= ``minimum`` (> with ``strict``), and < ``below`` if given."""
    ok = is_number(value, numpy) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if ok and below is not None:
        ok = value < below
    if not ok:
        _fail(message or NUMBER_MESSAGE, error, name=name, value=value, minimum=minimum, below=below)
    return value


def check_choice(name, value, choices, *, message=None, error=ConfigError):
    """``value`` must be one of ``choices`` (named in the message as ``choices``)."""
    if value not in choices:
        _fail(message or CHOICE_MESSAGE, error, name=name, value=value, choices=choices)
    return value


def argument_type(convert, accept, expected, *, unconvertible=None):
    """An argparse ``type=``: ``convert(text)`` (a ValueError means "not a value") then ``accept(value)``.

    A refusal is argparse's one line ``expected <expected>, received 'text'``; ``unconvertible`` words
    the case where ``convert`` fails, when it differs (e.g. "a number" vs "a finite number").

    Example:
    >>> positive_int = argument_type(int, lambda v: v >= 1, "a positive integer")
    >>> positive_int("3")
    3
    """

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {unconvertible or expected}, received {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}")
        return value

    return parse
