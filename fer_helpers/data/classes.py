"""FER-2013's classes in its label order, its splits and its face size: the facts that inference needs.

They live apart from `fer_helpers.data.fer2013` (which re-exports them) so that classifying a photo from an ONNX
export reads them without importing pandas, which the loader needs and a cold start cannot afford.
"""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
NUM_CLASSES = len(CLASS_NAMES)
SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
IMAGE_SIZE = 48  # FER-2013's faces are 48x48 grayscale
