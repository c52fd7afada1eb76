"""Every setting of a training run, with defaults, resolved in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from inceptune.data.images import DEFAULT_MAX_PIXELS


@dataclass
class TrainConfig:
    """Settings of `inceptune train`; `config.json` in the run folder is this, resolved.

    Defaults follow the classic Keras Inception-v3 recipe for the official
    ImageNet weights: head first on a frozen base, then the top two inception
    blocks (`mixed9` on, the recipe's `layers[249:]`) at a learning rate a
    hundred times lower, BatchNorm in inference mode.
    """

    data: str
    out: str | None = None
    array_source: str | None = None  # the arrays `data` was written from (X.npy/y.npy, .npz, FER CSV)
    weights: str = "imagenet"
    from_model: str | None = None  # --from: a run folder, .keras or legacy .h5 model to continue from
    unsafe: bool = False  # load a --from model that carries Python code
    image_size: int = 299
    # --- splits
    val_split: float = 0.2
    test_split: float = 0.1
    seed: int = 1337
    # --- phase 1: the head on cached pooled features
    epochs: int = 20
    learning_rate: float = 1e-3
    batch_size: int = 32
    dropout: float = 0.2
    head_units: tuple[int, ...] = field(default_factory=tuple)
    # --- augmentation (training/augment.py) and imbalance
    augment: str = "none"  # none | light | default | strong
    aug: tuple[str, ...] = field(default_factory=tuple)  # KEY=VALUE overrides of the policy
    aug_views: int | None = None  # augmented views cached per training image (default 4 with --augment)
    class_weight: str | None = None  # "auto" (inverse frequency) or "name=w,name=w"
    label_smoothing: float = 0.0
    # --- phase 2: fine-tuning
    unfreeze_from: str = "mixed9"
    unfreeze_top: int | None = None  # alternative to unfreeze_from: the top N inception blocks (2 = mixed9 on)
    unfreeze_every: int = 0  # gradual unfreezing: one more block every M epochs (0: all from the start)
    block_lr_decay: float = 1.0  # discriminative rates: each block below the top trains F x the rate above it
    train_batchnorm: bool = False  # BatchNorm of the unfrozen blocks trains (default: inference mode)
    fine_tune_augment: str = "auto"  # auto | online | views | none (training/augment.py)
    schedule: str = "constant"  # learning-rate schedule of both phases: constant | cosine | step
    warmup_epochs: int = 0  # linear warm-up before the schedule, in each phase
    fine_tune_epochs: int = 10
    fine_tune_lr: float = 1e-5
    patience: int = 3  # fine-tuning; from scratch (--arch) waits SCRATCH_PATIENCE epochs unless set higher
    # --- from scratch (train --arch NAME --weights none)
    arch: str | None = None  # None: the pretrained Inception-v3 recipe above
    channels: int = 3  # 1: grayscale network (RGB inputs converted inside the model)
    width: float = 1.0  # filter multiplier for inception-v3 and mini-inception
    # --- devices (training/devices.py)
    precision: str = "float32"  # float32 | mixed (float16 on GPUs, bfloat16 on CPUs)
    distribute: str = "auto"  # auto (MirroredStrategy with 2+ GPUs) | none | mirrored | multi-worker
    # --- engineering
    cache_dir: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    overwrite: bool = False
    resume: bool = False  # continue an interrupted run in --out from its last finished epoch
    # --- tracking
    tensorboard: bool = True  # TensorBoard logs in RUN/tensorboard
    track: str | None = None  # "mlflow": log settings, metrics, plots and the model there too
    tracking_uri: str | None = None  # MLflow tracking URI (default: MLflow's own, ./mlflow.db)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["head_units"] = list(self.head_units)
        d["aug"] = list(self.aug)
        return d

    @property
    def phase2_augment(self) -> str:
        """How phase 2 sees augmentation: --fine-tune-augment, where auto is online when augmenting, else none."""
        if self.fine_tune_augment != "auto":
            return self.fine_tune_augment
        return "online" if self.augment != "none" else "none"

    @property
    def views(self) -> int:
        """Augmented views per training image: --aug-views, 4 when only --augment is given, else 0."""
        if self.aug_views is not None:
            return self.aug_views
        return 4 if self.augment != "none" else 0
