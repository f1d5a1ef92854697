"""The GenEval detectors recakit has, by the names `recakit geneval score --scorer` and notebook 04
take: "mask2former" (Mask2Former + CLIP, `recakit.bench.mask2former`) for real images, and
"shapes" (`recakit.toy.detect`), exact on ShapesWorld. Each is imported only when asked for,
since the real one pulls in large models; `recakit.bench.geneval` judges with either."""

from __future__ import annotations

from importlib import import_module

#: scorer name -> "module:class" of its detector (anything with a `detect(images)` method)
SCORERS = {
    "shapes": "recakit.toy.detect:ShapesDetector",
    "mask2former": "recakit.bench.mask2former:Mask2FormerDetector",
}


def make_detector(scorer: str, **options):
    """The detector a scorer name stands for (see SCORERS), built with `options`."""
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}: choose one of {sorted(SCORERS)}")
    module_name, class_name = SCORERS[scorer].split(":")
    return getattr(import_module(module_name), class_name)(**options)
