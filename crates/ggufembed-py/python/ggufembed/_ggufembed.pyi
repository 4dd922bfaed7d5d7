from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any, Optional, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

def default_model_path() -> Path: ...
def backend() -> str: ...

class Model:
    def __init__(
        self,
        path: Optional[Union[str, PathLike[str]]] = None,
        threads: Optional[int] = None,
        precision: Optional[str] = None,
    ) -> None: ...
    def embed(
        self,
        texts: Union[str, Iterable[str]],
        prompt_name: Optional[str] = None,
        dim: Optional[int] = None,
        normalize: bool = True,
        batch_size: int = 32,
        *,
        prompt: Optional[str] = None,
        truncate: bool = True,
    ) -> npt.NDArray[np.float32]: ...
    def encode(
        self,
        sentences: Union[str, Iterable[str]],
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        batch_size: int = 32,
        show_progress_bar: Optional[bool] = None,
        normalize_embeddings: bool = False,
        truncate_dim: Optional[int] = None,
    ) -> npt.NDArray[np.float32]: ...
    def encode_query(
        self,
        sentences: Union[str, Iterable[str]],
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        truncate_dim: Optional[int] = None,
    ) -> npt.NDArray[np.float32]: ...
    def encode_document(
        self,
        sentences: Union[str, Iterable[str]],
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        truncate_dim: Optional[int] = None,
    ) -> npt.NDArray[np.float32]: ...
    @overload
    def tokenize(self, texts: str, prompt_name: Optional[str] = None, *, prompt: Optional[str] = None, truncate: bool = True) -> list[int]: ...
    @overload
    def tokenize(self, texts: Iterable[str], prompt_name: Optional[str] = None, *, prompt: Optional[str] = None, truncate: bool = True) -> list[list[int]]: ...
    def get_sentence_embedding_dimension(self) -> int: ...
    @property
    def info(self) -> dict[str, Any]: ...
    @property
    def prompts(self) -> dict[str, str]: ...
    @property
    def dimensions(self) -> list[int]: ...
    @property
    def dim(self) -> int: ...
    @property
    def path(self) -> Path: ...
    @property
    def threads(self) -> int: ...
