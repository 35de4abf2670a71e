"""Typed schemas of the dataset group's options (configs/dataset/*.yaml): one dataclass per loader, types only (each
value is written once, in the option's yaml, which names its schema: `- /schema_dataset_digits@_here_`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


class Binarize(Enum):
    auto = "auto"  # dynamic for a Bernoulli likelihood, none otherwise
    none = "none"
    static = "static"
    dynamic = "dynamic"


# ----------------------------------------------------------------------------------------------- dataset
@dataclass
class DatasetConfig:
    _target_: str = MISSING
    name: str = MISSING
    binarize: Binarize = MISSING


@dataclass
class DigitsConfig(DatasetConfig):
    val_fraction: float = MISSING
    test_fraction: float = MISSING
    split_seed: int = MISSING


@dataclass
class TorchvisionConfig(DatasetConfig):
    root: str = MISSING
    download: bool = MISSING
    val_size: int = MISSING
    split_seed: Optional[int] = MISSING  # null: validation = the training file's last val_size images (reference code)
    # Extra folders searched for the raw IDX .gz files when `root` has none (Debian's dataset packages).
    system_dirs: List[str] = MISSING


@dataclass
class ImageFolderConfig(DatasetConfig):
    root: str = MISSING
    image_size: List[int] = MISSING
    channels: int = MISSING
    val_fraction: float = MISSING
    test_fraction: float = MISSING
    split_seed: int = MISSING


@dataclass
class SyntheticConfig(DatasetConfig):
    shape: str = MISSING  # ring | grid
    n_modes: int = MISSING
    radius: float = MISSING
    std: float = MISSING
    n_train: int = MISSING
    n_val: int = MISSING
    n_test: int = MISSING
    seed: int = MISSING


@dataclass
class FactorGridConfig(DatasetConfig):  # shapes3d; a seeded sample of a factor grid, rendered or read from `root`
    n_train: Optional[int] = MISSING  # null: all images not in val/test
    n_val: int = MISSING
    n_test: int = MISSING
    split_seed: int = MISSING
    root: Optional[str] = MISSING


@dataclass
class DSpritesConfig(FactorGridConfig):
    cache: Optional[str] = MISSING


@dataclass
class TabularConfig(DigitsConfig):
    table: str = MISSING  # breast_cancer | wine | diabetes | path/to/file (.csv .tsv .txt .parquet .dta ...)
    label_column: bool = MISSING  # the class as binary column(s) of the table
    # a file's column types: name -> a type word or {type, levels, unit, min, max} (data/column_types.py)
    columns: Dict[str, Any] = MISSING
    delimiter: Optional[str] = MISSING  # null: sniffed
    decimal: Optional[str] = MISSING  # null: found from the file
    encoding: Optional[str] = MISSING  # null: UTF-8 (with or without a byte-order mark), else Windows-1252
    missing_values: List[str] = MISSING  # cell texts that mean missing beyond the usual (e.g. [-99])


@dataclass
class FactorSquaresConfig(DatasetConfig):
    side: int = MISSING
    square: int = MISSING
    n_val: int = MISSING
    n_test: int = MISSING
    split_seed: int = MISSING


DATASET_SCHEMAS = {
    "digits": DigitsConfig,
    "tabular": TabularConfig,
    "torchvision": TorchvisionConfig,
    "image_folder": ImageFolderConfig,
    "synthetic": SyntheticConfig,
    "dsprites": DSpritesConfig,
    "factor_squares": FactorSquaresConfig,
    "shapes3d": FactorGridConfig,
}
