"""Every setting of `train`, `cv` and `lr-find`, with its default: the one place where a default lives.

    Settings
      data     which images, and how they split
      recipe   the pretrained Inception-v3 recipe: weights, head, augmentation, fine-tuning
      scratch  train --arch: a network from scratch instead
      run      where and how the work runs: output, cache, resume, devices, tracking
      cv       cross-validation (cv only)
      sweep    the learning-rate range test (lr-find only)

Names are unique across the tree, so the Python API and the command line
take them flat (`inceptune.train(data, epochs=5)`, `inceptune train DATA
--epochs 5`). The defaults follow the classic Keras Inception-v3 recipe for
the official ImageNet weights: the head first on a frozen base, then the top
two inception blocks (`mixed9` on, the recipe's `layers[249:]`) at a
learning rate a hundred times lower, BatchNorm in inference mode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from inceptune.settings.spec import PRETRAINED, SCRATCH, Spec, setting
from inceptune.vocabulary.inception import BLOCKS
from inceptune.vocabulary.limits import DEFAULT_MAX_PIXELS, DUPLICATE_SIMILARITY, MAX_ACCURACY_DROP
from inceptune.vocabulary.policies import POLICIES
from inceptune.vocabulary.sources import DEFAULT_BLOCK, DEFAULT_POOLING, SOURCE_BLOCKS, SOURCE_POOLINGS

# The vocabularies of settings, used by the modules that implement them.
SCHEDULES = ("constant", "cosine", "step")
FINE_TUNE_AUGMENT = ("auto", "online", "views", "none")
PRECISIONS = ("float32", "mixed")
DISTRIBUTES = ("auto", "none", "mirrored", "multi-worker")
TRACKERS = ("mlflow",)
ARCHITECTURES = ("inception-v3", "googlenet", "mini-inception", "single-module")
WIDTH_ARCHITECTURES = ("inception-v3", "mini-inception")  # those with a filter multiplier
LR_FIND_PHASES = ("head", "fine-tune")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
SEARCHES = ("quick", "full", "none")
HEADS = ("dense", "linear")
CALIBRATIONS = ("auto", "none")
EXPORTS = ("auto", "none")
EXTRACT_RUNTIMES = ("auto", "keras", "openvino")
SET_SCORES = ("auto", "lac", "aps")  # prediction sets' scores (evaluation/conformal.py)

ONLY_PRETRAINED = {"recipes": (PRETRAINED,)}
ONLY_SCRATCH = {"recipes": (SCRATCH,)}


@dataclass(frozen=True)
class DataSettings:
    data: str = setting(None, "Folder of class subfolders, or of train/ (val/, test/) folders; or X.npy+y.npy, "
                              ".npz, a FER-style CSV, or a multi-label CSV of path,labels.", kind="path",
                       positional=True)
    val_split: float = setting(0.2, "Fraction of each class for validation when there is no val/ folder.",
                               low=0.0, high=1.0, high_open=True)
    test_split: float = setting(0.1, "Fraction of each class held out for testing when there is no test/ folder.",
                                low=0.0, high=1.0, high_open=True)
    seed: int = setting(1337, "Fixes splits and initialisation.", low=0, high=2**32 - 1)  # NumPy's seed range
    max_pixels: int = setting(DEFAULT_MAX_PIXELS, "Skip images with more pixels than this.", low=1)
    exclude: str | None = setting(None, "Leave out the images listed in this CSV (audit's issues.csv, or the fixes "
                                        "audit.html downloads); the files are not touched.", kind="path",
                                  optional=True)
    relabel: str | None = setting(None, "Give the images listed in this CSV its suggested_label (audit's fixes); "
                                        "the files are not moved.", kind="path", optional=True)
    group_by: str | None = setting(None, "A regular expression whose capture group, in each path relative to the "
                                         "data folder, names a group of images kept in one split (e.g. "
                                         "'(patient\\d+)'); file names with _nohash_ are grouped by the part "
                                         "before it.", kind="str", optional=True)
    duplicate_similarity: float = setting(DUPLICATE_SIMILARITY, "Near-duplicates (kept in one split, reported "
                                                                "as leakage across given splits) are at least "
                                                                "this similar (cosine of mixed5 features) and "
                                                                "much closer to each other than to their other "
                                                                "neighbours; 1 turns this off.", low=0.0, high=1.0,
                                          low_open=True, **ONLY_PRETRAINED)


@dataclass(frozen=True)
class Recipe:
    search: str = setting("quick", "How the recipe is chosen on the cached features, by stratified k-fold CV on "
                                   "train + val: quick (feature source, L2 and class weights: every candidate of a "
                                   "fixed order), full (an Optuna study of --trials, heads included) or "
                                   "none (these settings as given). Settings given explicitly stay fixed.",
                          choices=SEARCHES, **ONLY_PRETRAINED)
    feature_block: str = setting(DEFAULT_BLOCK, f"The inception block whose output the head sees ({SOURCE_BLOCKS[0]}.."
                                                f"{SOURCE_BLOCKS[-1]}), or two or three side by side (mixed8+mixed10); "
                                                "the saved model stops at the deepest.", kind="str",
                                 **ONLY_PRETRAINED)
    pooling: str = setting(DEFAULT_POOLING, "Pooling of that block's output over space: avg, max, or avgmax (both "
                                            "side by side).", choices=SOURCE_POOLINGS, **ONLY_PRETRAINED)
    head: str = setting("dense", "The head: dense (Keras: dropout, --head-units, trained for --epochs) or linear "
                                 "(an L2 logistic regression fitted exactly, --l2).", choices=HEADS,
                        **ONLY_PRETRAINED)
    l2: float = setting(1.0, "L2 penalty of the linear head (scikit-learn's 1/C).", low=0.0, low_open=True,
                        **ONLY_PRETRAINED)
    weight_decay: float = setting(0.0, "Weight decay of the dense head in phase 1 (AdamW; 0: Adam).", low=0.0,
                                  **ONLY_PRETRAINED)
    refit: bool = setting(True, "After validation, fit the chosen recipe again on train + val before scoring "
                                "the test split.", **ONLY_PRETRAINED)
    calibrate: str = setting("auto", "auto: fit a temperature for the probabilities on the held-out val split "
                                     "(folded into the model; the argmax cannot change) and, for multi-label runs, "
                                     "a threshold per label maximising F1; none: keep the raw outputs.",
                             choices=CALIBRATIONS, **ONLY_PRETRAINED)
    ood: bool = setting(True, "Add a 'none of these' score to the model (its second output): the distance to the "
                              "nearest training image's features, with a threshold that keeps 95% of val known.",
                        **ONLY_PRETRAINED)
    coverage: float = setting(0.9, "Prediction sets: the share of photos whose set of classes holds the true one "
                                   "(split conformal, fitted on the held-out val split; 'rose or tulip'). 0: no "
                                   "sets.", low=0.0, high=1.0, high_open=True, **ONLY_PRETRAINED)
    set_score: str = setting("auto", "The prediction sets' score: lac (the classes above one probability), aps "
                                     "(adaptive: larger sets for harder photos), or auto (whichever gives smaller "
                                     "sets on val).", choices=SET_SCORES, **ONLY_PRETRAINED)
    set_by_class: bool = setting(False, "Prediction sets whose coverage holds for each class (a threshold per "
                                        "class; for imbalanced data).", **ONLY_PRETRAINED)
    weights: str = setting("imagenet", "imagenet (Keras' file, or the file named by INCEPTUNE_WEIGHTS), none, or "
                                       "a PATH to a weights file.", kind="path")
    from_model: str | None = setting(None, "Continue from a saved model: a run folder, a .keras file or a legacy "
                                           ".h5 full model (its Inception-v3 base; its head too if the classes are "
                                           "the same).", kind="path", optional=True, flag="from", **ONLY_PRETRAINED)
    image_size: int = setting(299, "Images are resized to this square (75 or more for Inception-v3).", low=1)
    batch_size: int = setting(32, "Batch size for extraction and training.", low=1)
    epochs: int = setting(20, "Phase 1 epochs (the head on cached features); with --arch, training epochs.", low=0)
    learning_rate: float = setting(1e-3, "Phase 1 learning rate (with --arch, the network's).", low=0.0,
                                   low_open=True, flag="lr")
    dropout: float = setting(0.2, "Dropout before the head's Dense layers.", low=0.0, high=1.0, high_open=True,
                             **ONLY_PRETRAINED)
    head_units: tuple[int, ...] = setting((), "Hidden Dense layer size (repeatable), e.g. 1024.", kind="ints",
                                          low=1, **ONLY_PRETRAINED)
    schedule: str = setting("constant", "Learning-rate schedule of both phases: constant, cosine or step (x0.1 at "
                                        "1/2 and 3/4).", choices=SCHEDULES, **ONLY_PRETRAINED)
    warmup_epochs: int = setting(0, "Linear warm-up epochs (from a tenth of the rate) before the schedule, in each "
                                    "phase.", low=0, **ONLY_PRETRAINED)
    augment: str = setting("none", "Augmentation policy: none, light, default (the seeds' rotation, shifts, shear, "
                                   "zoom, flip; plus brightness/contrast) or strong.", choices=tuple(POLICIES),
                           **ONLY_PRETRAINED)
    aug: tuple[str, ...] = setting((), "Override one augmentation parameter, KEY=VALUE (repeatable): rotation "
                                       "(degrees), shift, shear, zoom, flip, brightness, contrast.", kind="strs",
                                   **ONLY_PRETRAINED)
    aug_views: int | None = setting(None, "Augmented views cached per training image (default 4 with --augment): "
                                          "the base runs 1 + K times per image in all.", kind="int", low=0,
                                    optional=True, **ONLY_PRETRAINED)
    class_weight: str | None = setting(None, "auto (inverse class frequency) or NAME=WEIGHT pairs, comma-separated.",
                                       kind="str", optional=True, **ONLY_PRETRAINED)
    label_smoothing: float = setting(0.0, "Label smoothing of the cross-entropy (e.g. 0.1).", low=0.0, high=1.0,
                                     high_open=True, **ONLY_PRETRAINED)
    fine_tune_epochs: int = setting(10, "Phase 2 epochs; 0 skips fine-tuning.", low=0, **ONLY_PRETRAINED)
    fine_tune_lr: float = setting(1e-5, "Phase 2 learning rate.", low=0.0, low_open=True, **ONLY_PRETRAINED)
    unfreeze_from: str = setting("mixed9", "The deepest block phase 2 fine-tunes (mixed0..mixed10).", choices=BLOCKS,
                                 **ONLY_PRETRAINED)
    unfreeze_top: int | None = setting(None, "Instead of --unfreeze-from: fine-tune the top N inception blocks "
                                             "(2 = mixed9 on).", kind="int", low=1, high=len(BLOCKS), optional=True,
                                       **ONLY_PRETRAINED)
    unfreeze_every: int = setting(0, "Gradual unfreezing: the top block first, one more block below every M epochs "
                                     "down to --unfreeze-from (0: all at once).", low=0, **ONLY_PRETRAINED)
    block_lr_decay: float = setting(1.0, "Discriminative learning rates: each block below the top trains at F times "
                                         "the rate of the block above (1: off).", low=0.0, high=1.0, low_open=True,
                                    **ONLY_PRETRAINED)
    train_batchnorm: bool = setting(False, "Train the BatchNorm layers of the unfrozen blocks (batch statistics) "
                                           "instead of keeping them in inference mode.", **ONLY_PRETRAINED)
    fine_tune_augment: str = setting("auto", "Augmentation in phase 2: online (fresh each epoch, runs the whole "
                                             "base), views (the cached views, fast), none; auto = online with "
                                             "--augment.", choices=FINE_TUNE_AUGMENT, **ONLY_PRETRAINED)
    patience: int = setting(3, "Early-stopping patience (epochs without a lower val loss) of phase 2; at least 10 "
                               "with --arch.", low=0)

    @property
    def phase2_augment(self) -> str:
        """How phase 2 sees augmentation: auto is online when augmenting, else none."""
        if self.fine_tune_augment != "auto":
            return self.fine_tune_augment
        return "online" if self.augment != "none" else "none"

    @property
    def views(self) -> int:
        """Augmented views per training image: --aug-views, 4 when only --augment is given, else 0."""
        if self.aug_views is not None:
            return self.aug_views
        return 4 if self.augment != "none" else 0


@dataclass(frozen=True)
class ScratchSettings:
    arch: str | None = setting(None, "Train this network from scratch (with --weights none) instead of the "
                                     "pretrained recipe.", kind="str", choices=ARCHITECTURES, optional=True)
    channels: int = setting(3, "With --arch: 1 for a grayscale network, 3 for RGB.", choices=(1, 3), **ONLY_SCRATCH)
    width: float = setting(1.0, "With --arch inception-v3 or mini-inception: filter multiplier.", low=0.0,
                           low_open=True, **ONLY_SCRATCH)


@dataclass(frozen=True)
class RunOptions:
    out: str | None = setting(None, "Run folder to write (default runs/DATA-TIME).", kind="path", optional=True,
                              short="-o")
    overwrite: bool = setting(False, "Replace a finished run in --out.")
    resume: bool = setting(False, "Continue the interrupted run in --out from its last finished epoch (same "
                                  "settings).", **ONLY_PRETRAINED)
    cache_dir: str | None = setting(None, "Feature cache folder (default $INCEPTUNE_CACHE or "
                                          "~/.cache/inceptune/features).", kind="path", optional=True,
                                    **ONLY_PRETRAINED)
    tensorboard: bool = setting(True, "Write TensorBoard logs to RUN/tensorboard.")
    track: str | None = setting(None, "Also log the run to an experiment tracker: mlflow.", kind="str",
                                choices=TRACKERS, optional=True)
    tracking_uri: str | None = setting(None, "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                                             "./mlflow.db).", kind="str", optional=True)
    precision: str = setting("float32", "float32, or mixed: float16 compute on GPUs (bfloat16 on CPUs) with FP32 "
                                        "weights and outputs.", choices=PRECISIONS)
    extract_runtime: str = setting("auto", "What runs the backbone over the images: auto (OpenVINO where its "
                                           "features match Keras' within 1e-4 and it is faster on this machine, "
                                           "checked and timed once per feature space when a few hundred images are "
                                           "to be extracted; Keras otherwise), keras, or openvino. "
                                           "$INCEPTUNE_EXTRACT_RUNTIME replaces the default.",
                                   choices=EXTRACT_RUNTIMES, env="INCEPTUNE_EXTRACT_RUNTIME", **ONLY_PRETRAINED)
    distribute: str = setting("auto", "auto (MirroredStrategy over 2+ local GPUs), none, mirrored, or multi-worker "
                                      "(MultiWorkerMirroredStrategy, cluster from TF_CONFIG).", choices=DISTRIBUTES)
    unsafe: bool = setting(False, "Load a --from model that carries Python code (Lambda layers): only for files "
                                  "you trust.", **ONLY_PRETRAINED)
    export: str = setting("auto", "auto: end by writing the fastest checked export for this machine (FP32 "
                                  "OpenVINO, or ONNX without it; bf16 and int8 where they answer like FP32 on the "
                                  "held-out photos; timed here, remembered for --runtime auto); none: model.keras only. "
                                  "$INCEPTUNE_EXPORT replaces the default.", choices=EXPORTS, env="INCEPTUNE_EXPORT",
                          **ONLY_PRETRAINED)
    max_accuracy_drop: float = setting(MAX_ACCURACY_DROP, "With --export auto: the most accuracy (macro F1 for "
                                       "multi-label) an int8 export may lose against FP32 on the run's held-out "
                                       "photos to be kept, as a fraction (0.005 = half a point).", low=0.0,
                                       high=1.0, high_open=True, **ONLY_PRETRAINED)


@dataclass(frozen=True)
class CvOptions:
    folds: int = setting(5, "Number of stratified folds.", low=2)


@dataclass(frozen=True)
class StudyOptions:
    trials: int = setting(40, "Trials of the Optuna study (tune, and train --search full).", low=1)
    timeout: str | None = setting(None, "Stop starting trials (or the quick search's candidates) after this long: seconds, "
                                        "or 30s, 10m, 2h. Off by default: the search's choice never depends on "
                                        "the clock unless this is given.",
                                  kind="str", optional=True)
    search_folds: int = setting(5, "Folds of the search's cross-validation on train + val (fewer when a class "
                                   "has fewer images).", low=2)


@dataclass(frozen=True)
class SweepOptions:
    phase: str = setting("head", "head (phase 1) or fine-tune (phase 2, from --unfreeze-from).",
                         choices=LR_FIND_PHASES)
    min_lr: float = setting(1e-7, "First learning rate.", low=0.0, low_open=True)
    max_lr: float = setting(1.0, "Last learning rate.", low=0.0, low_open=True)
    steps: int = setting(100, "Mini-batches, one learning rate each.", low=8)
    plot: str | None = setting(None, "The plot of the test (.png, .svg or .pdf; default lr-find-PHASE.png).",
                               kind="path", optional=True, flag="out", short="-o")


@dataclass(frozen=True)
class Settings:
    data: DataSettings
    recipe: Recipe = Recipe()
    scratch: ScratchSettings = ScratchSettings()
    run: RunOptions = RunOptions()
    cv: CvOptions = CvOptions()
    sweep: SweepOptions = SweepOptions()
    study: StudyOptions = StudyOptions()
    given: frozenset = frozenset()  # names given explicitly (keywords, flags, a config file): the search keeps them

    def flat(self) -> dict:
        """Every setting by its name."""
        return {name: getattr(getattr(self, group), name) for name, (group, _) in TABLE.items()}

    def as_dict(self, groups: tuple[str, ...] = ("data", "recipe", "scratch", "run")) -> dict:
        """The settings of `groups`, nested by group, as JSON types (what config.json records); paths that
        exist here are made absolute, so the record replays from any folder."""
        def value(name, v):
            if isinstance(v, tuple):
                return list(v)
            keyword = name == "weights" and v in ("imagenet", "none")  # not a file, whatever the folder holds
            if name in ("data", "weights", "from_model", "cache_dir", "exclude", "relabel") and v and not keyword \
                    and Path(v).exists():
                return str(Path(v).resolve())
            return v

        return {g: {k: value(k, v) for k, v in dataclasses.asdict(getattr(self, g)).items()} for g in groups}

    def replace(self, **changes) -> "Settings":
        """A copy with settings changed by name (values are not checked again)."""
        by_group: dict[str, dict] = {}
        for name, value in changes.items():
            by_group.setdefault(TABLE[name][0], {})[name] = value
        return dataclasses.replace(self, **{g: dataclasses.replace(getattr(self, g), **v) for g, v in by_group.items()})


_GROUP_CLASSES = {"data": DataSettings, "recipe": Recipe, "scratch": ScratchSettings, "run": RunOptions,
                  "cv": CvOptions, "sweep": SweepOptions, "study": StudyOptions}
GROUPS = tuple(_GROUP_CLASSES)
# name -> (group, Spec): the one table every check, flag and signature is made from.
TABLE: dict[str, tuple[str, Spec]] = {f.name: (group, f.metadata["spec"])
                                      for group, cls in _GROUP_CLASSES.items() for f in dataclasses.fields(cls)}
# The settings a command's --help shows (a newcomer's first choices); --help-all lists every one.
BASIC = ("out", "weights", "image_size", "epochs", "fine_tune_epochs", "batch_size", "val_split", "test_split",
         "search", "augment", "class_weight", "coverage", "export", "resume", "cache_dir", "folds", "trials",
         "min_lr", "max_lr", "steps")
DEFAULTS = {name: f.default for cls in _GROUP_CLASSES.values() for f in dataclasses.fields(cls)
            for name in [f.name] if f.default is not dataclasses.MISSING}
