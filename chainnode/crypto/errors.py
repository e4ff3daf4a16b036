"""Errors raised by the crypto suites (verification never raises: it returns False)."""


class CryptoUnavailable(RuntimeError):
    """The machine's crypto library cannot provide a suite (failed self-test, missing symbol)."""


class InvalidKey(ValueError):
    """A private or public key that is malformed, out of range or not on the curve."""
