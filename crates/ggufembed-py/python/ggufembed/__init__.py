"""Text embeddings from GGUF models (EmbeddingGemma-300M), computed by a Rust runtime.

>>> import ggufembed
>>> model = ggufembed.Model()                      # the cached EmbeddingGemma Q8_0
>>> docs = model.embed(["Mars is red.", "Venus is hot."], prompt_name="document")
>>> query = model.embed("which planet is red?", prompt_name="query")
>>> (docs @ query).argmax()                        # rows are L2-normalised
0

``Model.embed`` returns one float32 ``numpy.ndarray`` of shape ``(n, dim)``; ``Model.encode``,
``encode_query`` and ``encode_document`` take sentence-transformers' arguments.
"""

from ggufembed._errors import Error, InvalidInputError, ModelNotFoundError
from ggufembed._ggufembed import Model, __version__, backend, default_model_path

__all__ = [
    "Error",
    "InvalidInputError",
    "Model",
    "ModelNotFoundError",
    "__version__",
    "backend",
    "default_model_path",
]

# Shown (and pickled) as ggufembed.Error etc.: the names users import.
for _cls in (Error, InvalidInputError, ModelNotFoundError):
    _cls.__module__ = __name__
del _cls
