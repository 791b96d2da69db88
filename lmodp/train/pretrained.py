"""Where a local pretrained model is: a ``save_pretrained`` directory, or a GGUF file.

transformers reads a GGUF file (llama.cpp's format; quantized weights are de-quantized to
float32 on loading, which needs the ``gguf`` package) with
``from_pretrained(directory, gguf_file=name)``, for the model and for its tokenizer alike.
"""

from __future__ import annotations

import os
from pathlib import Path


def pretrained_source(path: str | os.PathLike[str]) -> tuple[Path, dict[str, str]]:
    """(directory, extra ``from_pretrained`` keywords) for ``path``: a directory with ``config.json``
    (no keywords), a ``.gguf`` file, or a directory holding exactly one ``.gguf`` file
    (``{"gguf_file": name}``). ValueError, naming what was found, otherwise."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path.parent, {"gguf_file": path.name}
    if not path.is_dir():
        raise ValueError(f"model path {str(path)!r} is neither a model directory nor a .gguf file")
    if (path / "config.json").is_file():
        return path, {}
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if len(ggufs) == 1:
        return path, {"gguf_file": ggufs[0]}
    found = f"{len(ggufs)} .gguf files ({', '.join(ggufs)})" if ggufs else "no config.json and no .gguf file"
    raise ValueError(f"model path {str(path)!r} holds {found}: give a save_pretrained directory or one .gguf file")
