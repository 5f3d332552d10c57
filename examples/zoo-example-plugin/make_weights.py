"""Write weights/tinynet-v1.safetensors, the hand-set toy weights of `tinynet`, and print its sha256.

The weights make `tinynet` call reddish images "cat" and bluish images "dog": three of the eight
convolution channels pass the normalized red, green and blue planes through, and the linear layer
compares red with blue. They are built from fixed values (no random numbers), so the file is the same
on every run; paste the printed sha256 into `zoo.Weights(sha256=...)` if you change them.

    python make_weights.py
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "src"))


def main() -> None:
    import torch
    from safetensors.torch import save_file
    from zoo_example_plugin import tinynet

    module = tinynet()
    state = {key: torch.zeros_like(value) for key, value in module.state_dict().items()}
    for channel in range(3):  # conv channels 0-2 copy the R, G and B planes (center tap of the 3x3 kernel)
        state["0.weight"][channel, channel, 1, 1] = 1.0
    state["4.weight"][0, 0], state["4.weight"][0, 2] = 1.0, -1.0  # cat: red minus blue
    state["4.weight"][1, 0], state["4.weight"][1, 2] = -1.0, 1.0  # dog: blue minus red
    module.load_state_dict(state)  # fails loudly if the keys no longer match the builder

    target = HERE / "weights" / "tinynet-v1.safetensors"
    target.parent.mkdir(exist_ok=True)
    save_file(state, str(target), metadata={"format": "pt"})
    print(f"{target.relative_to(HERE)}  sha256={hashlib.sha256(target.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
