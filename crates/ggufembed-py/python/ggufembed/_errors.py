"""The exceptions ggufembed raises (the native module raises these classes)."""


class Error(Exception):
    """Base class of ggufembed's errors; also raised as is when a model file is malformed or
    the runtime fails."""


class ModelNotFoundError(Error, FileNotFoundError):
    """The model file does not exist; the message says how to get it."""


class InvalidInputError(Error, ValueError):
    """An argument or a text was rejected: an unknown prompt name or precision, an output size
    the model does not offer, a batch size of zero, a text too long with ``truncate=False``."""
