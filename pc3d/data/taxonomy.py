"""ShapeNet's taxonomy and the names of the folders and files of the public layouts.

One place for what several readers and the built-in generator share: the ShapeNetCore synset
table (:data:`SHAPENET_SYNSETS`), the other names in use (:data:`SHAPENET_ALIASES`), the name ->
synset lookup (:data:`SHAPENET_NAME_TO_SYNSET`), how category names are compared
(:func:`norm_name`), the ``synsetoffset2category.txt`` name map (:func:`read_name_map`), and the
folder / manifest names of the PC15k layout and the built-in set.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "NAME_MAP_FILE",
    "PC15K_DIRNAME",
    "SHAPENET_ALIASES",
    "SHAPENET_NAME_TO_SYNSET",
    "SHAPENET_SYNSETS",
    "SYNTHETIC_MANIFEST",
    "norm_name",
    "read_name_map",
    "read_text_lines",
]

# ---------------------------------------------------------------------------------------- names
#: The PC15k point-cloud folder (PointFlow's release; the built-in set writes the same one).
PC15K_DIRNAME = "ShapeNetCore.v2.PC15k"
#: The manifest the built-in generator writes last, in the parent of :data:`PC15K_DIRNAME`.
SYNTHETIC_MANIFEST = "pc3d_synthetic.json"
#: The optional ``name<TAB>synset`` map of a layout's root.
NAME_MAP_FILE = "synsetoffset2category.txt"

# ---------------------------------------------------------------------------------------- taxonomy
#: ShapeNetCore synset id -> name (ShapeNet's taxonomy; the 13 3D-R2N2 classes use the
#: R2N2 names: display, loudspeaker, telephone, vessel).
SHAPENET_SYNSETS: dict[str, str] = {
    "02691156": "airplane",
    "02747177": "trash_bin",
    "02773838": "bag",
    "02801938": "basket",
    "02808440": "bathtub",
    "02818832": "bed",
    "02828884": "bench",
    "02843684": "birdhouse",
    "02871439": "bookshelf",
    "02876657": "bottle",
    "02880940": "bowl",
    "02924116": "bus",
    "02933112": "cabinet",
    "02942699": "camera",
    "02946921": "can",
    "02954340": "cap",
    "02958343": "car",
    "02992529": "cellphone",
    "03001627": "chair",
    "03046257": "clock",
    "03085013": "keyboard",
    "03207941": "dishwasher",
    "03211117": "display",
    "03261776": "earphone",
    "03325088": "faucet",
    "03337140": "file_cabinet",
    "03467517": "guitar",
    "03513137": "helmet",
    "03593526": "jar",
    "03624134": "knife",
    "03636649": "lamp",
    "03642806": "laptop",
    "03691459": "loudspeaker",
    "03710193": "mailbox",
    "03759954": "microphone",
    "03761084": "microwave",
    "03790512": "motorcycle",
    "03797390": "mug",
    "03928116": "piano",
    "03938244": "pillow",
    "03948459": "pistol",
    "03991062": "pot",
    "04004475": "printer",
    "04074963": "remote_control",
    "04090263": "rifle",
    "04099429": "rocket",
    "04225987": "skateboard",
    "04256520": "sofa",
    "04330267": "stove",
    "04379243": "table",
    "04401088": "telephone",
    "04460130": "tower",
    "04468005": "train",
    "04530566": "vessel",
    "04554684": "washer",
}

#: Other names in use (PointFlow, ShapeNet-part, WordNet) -> synset id.
SHAPENET_ALIASES: dict[str, str] = {
    "plane": "02691156",
    "aeroplane": "02691156",
    "ashcan": "02747177",
    "trash_can": "02747177",
    "bookcase": "02871439",
    "tin_can": "02946921",
    "cellular_telephone": "02992529",
    "mobile_phone": "02992529",
    "monitor": "03211117",
    "file": "03337140",
    "speaker": "03691459",
    "motorbike": "03790512",
    "flowerpot": "03991062",
    "remote": "04074963",
    "couch": "04256520",
    "phone": "04401088",
    "watercraft": "04530566",
    "boat": "04530566",
    "ship": "04530566",
}

#: Every known name (aliases and :data:`SHAPENET_SYNSETS` names, normalized) -> synset id.
SHAPENET_NAME_TO_SYNSET: dict[str, str] = {**SHAPENET_ALIASES, **{name: s for s, name in SHAPENET_SYNSETS.items()}}


def norm_name(name: str) -> str:
    """Lower-case, spaces and hyphens to underscores (how category names are compared)."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def read_text_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file; ``ValueError`` naming the file and line when it is not UTF-8."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a text file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: line {line}: not UTF-8 text (byte {data[exc.start:exc.start + 1]!r} at offset {exc.start})"
        ) from None
    return text.splitlines()


def read_name_map(path: str | Path) -> dict[str, str]:
    """Read a ``synsetoffset2category.txt`` (lines ``name<TAB>synset``) -> ``{name: synset}``.

    Names are lower-cased with spaces/hyphens turned into underscores. Lines without a tab
    split at their last whitespace. Blank lines and lines starting with ``#`` are skipped;
    any other line without exactly two fields, or a file that is not UTF-8, raises ``ValueError``
    naming the file and line.
    """
    path = Path(path)
    out: dict[str, str] = {}
    for lineno, line in enumerate(read_text_lines(path), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # Tab-separated; without a tab the last whitespace-separated token is the synset.
        fields = line.split("\t") if "\t" in line else line.rsplit(None, 1)
        fields = [f.strip() for f in fields if f.strip()]
        if len(fields) != 2:
            raise ValueError(f"{path}: line {lineno}: expected 'name<TAB>synset', got {line!r}")
        out[norm_name(fields[0])] = fields[1]
    return out
