"""Fetch the encoder into the Hugging Face cache before streamrec starts (compose service `model`).

Reads the same settings the service reads: STREAMREC_ENCODER__MODEL (default ``gpt2``) and
STREAMREC_ENCODER__GGUF_FILE. A local path is used as is; a hub id is downloaded into $HF_HOME,
which compose keeps in the ``hf-cache`` volume, so later starts need no network. With
HF_HUB_OFFLINE=1 only the cache is consulted. The container reaches the hub only if the machine
running Docker can.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    model = os.environ.get("STREAMREC_ENCODER__MODEL") or "gpt2"
    gguf_file = os.environ.get("STREAMREC_ENCODER__GGUF_FILE") or None
    if os.path.exists(model):
        print(f"encoder {model!r} is a local path; nothing to fetch")
        return 0
    if model.endswith(".gguf"):
        print(f"encoder {model!r} looks like a .gguf file but does not exist in the container; "
              "mount it (see docker/compose.offline.yaml)", file=sys.stderr)
        return 1

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    from transformers import AutoModel, AutoTokenizer

    kwargs: dict[str, object] = {"local_files_only": offline}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        AutoTokenizer.from_pretrained(model, **kwargs)
        AutoModel.from_pretrained(model, **kwargs)
    except Exception as exc:  # any failure here means streamrec could not load it either
        where = "the local cache (HF_HUB_OFFLINE=1)" if offline else "the Hugging Face hub"
        print(f"could not load encoder {model!r} from {where}: {exc}\n"
              "If this machine cannot reach huggingface.co, put a model directory on the host, "
              "set STREAMREC_MODEL_DIR to it and add -f docker/compose.offline.yaml "
              "(see docker/README.md).", file=sys.stderr)
        return 1
    print(f"encoder {model!r} is in {os.environ.get('HF_HOME', '~/.cache/huggingface')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
