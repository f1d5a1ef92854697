"""GenEval's real detector rebuilt on transformers: Mask2Former for objects, CLIP for colours.

The official GenEval scorer runs mmdetection's Mask2Former (Swin-S, COCO instance segmentation)
and open_clip's ViT-L/14 on a CUDA device (its script asserts one), with mmdet 2.x and
mmcv-full 1.7 compiled for that GPU, which fails or silently gives wrong scores on recent cards.
This module does the same steps with transformers only, on a GPU or the CPU:

1. Mask2Former instance segmentation, post-processed the way mmdet does it: the top 100
   (query, class) pairs, masks upsampled to the padded input, cropped to the image, resized to
   the original size and thresholded at 0.5; score = class probability x mean mask probability
   inside the mask; box = the mask's bounding box. Test scale 800 / 1333, like mmdet's config.
2. Colour of each object: the object's mask pasted on a #999999 gray canvas, cropped to its box,
   classified by CLIP zero-shot over GenEval's ten colours with three templates ("a photo of a
   {color} {object}", "a photo of a {color}-colored {object}", "a photo of a {color} object"),
   each colour's text embeddings normalised, averaged and normalised again.

Honest caveat: `facebook/mask2former-swin-small-coco-instance` is the transformers port of the
original Mask2Former release, not the mmdet checkpoint the official scorer loads, and transformers'
CLIP preprocessing differs from open_clip's in small resampling details. Scores are close but not
guaranteed identical; docs/benchmarks.md gives the procedure to measure the agreement with the
official scorer on your own machine before quoting numbers next to published ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image

from recakit.bench.geneval import CLASSES, COLORS, SCORE_THRESHOLD

DEFAULT_DETECTOR = "facebook/mask2former-swin-small-coco-instance"
DEFAULT_CLIP = "openai/clip-vit-large-patch14"
CROP_BACKGROUND = (153, 153, 153)  # "#999"
COLOR_TEMPLATES = ("a photo of a {color} {name}", "a photo of a {color}-colored {name}", "a photo of a {color} object")
MMDET_TEST_SIZE = {"shortest_edge": 800, "longest_edge": 1333}

# COCO label spellings of other ports -> the names GenEval's prompts use.
GENEVAL_NAMES = {
    "mouse": "computer mouse",
    "remote": "tv remote",
    "keyboard": "computer keyboard",
    "tvmonitor": "tv",
    "tv monitor": "tv",
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "hair dryer": "hair drier",
    "sportsball": "sports ball",
    "cellphone": "cell phone",
}


def geneval_name(label: str) -> str:
    name = label.strip().lower().replace("_", " ").replace("-", " ")
    return GENEVAL_NAMES.get(name, name)


def check_covers(class_names, required=CLASSES) -> None:
    """Raise ValueError unless the detector's class names (after `geneval_name`) include every
    required GenEval class: a class it cannot name would fail every prompt that asks for it."""
    missing = [name for name in required if name not in set(class_names)]
    if missing:
        raise ValueError(
            f"the detector's labels give no {', '.join(repr(name) for name in missing)} "
            f"({len(missing)} of the {len(required)} GenEval classes); add the checkpoint's "
            "spelling of each to GENEVAL_NAMES"
        )


def build_mask2former(config=None, model_id: str | None = None):
    """A Mask2FormerForUniversalSegmentation from a checkpoint id or a config."""
    from transformers import Mask2FormerForUniversalSegmentation

    if model_id is not None:
        return Mask2FormerForUniversalSegmentation.from_pretrained(model_id)
    return Mask2FormerForUniversalSegmentation(config)


def mask_box(mask: torch.Tensor) -> list[float]:
    """[x0, y0, x1, y1] of a boolean (H, W) mask, x1/y1 one past the last pixel, like mmdet's mask2bbox."""
    columns = torch.nonzero(mask.any(dim=0)).flatten()
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    return [float(columns[0]), float(rows[0]), float(columns[-1] + 1), float(rows[-1] + 1)]


def color_crop(image: Image.Image, mask: torch.Tensor, box: list[float]) -> Image.Image:
    """What CLIP sees of an object: its pixels on #999999 gray, cropped to its box."""
    gray = Image.new("RGB", image.size, CROP_BACKGROUND)
    stencil = Image.fromarray(mask.to(torch.uint8).mul(255).cpu().numpy())  # uint8 (H, W): mode "L"
    return Image.composite(image.convert("RGB"), gray, stencil).crop(tuple(int(round(v)) for v in box))


def _features(output) -> torch.Tensor:
    # CLIPModel.get_*_features returns a tensor in older transformers, an output object in newer.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class Mask2FormerDetector:
    """GenEval detector: `detect(images) -> [[{"class", "score", "box", "color"}, ...], ...]`.

    Pass checkpoint ids (downloaded by transformers on first use) or already-built objects
    (`model`, `image_processor`, `clip_model`, `clip_processor`). Detections scoring at or below
    `min_score` (the lowest threshold GenEval uses) are dropped early, which keeps colour
    classification cheap. `detection_size` is the image processor's resize rule (default: mmdet's
    800 / 1333 test scale; None keeps the processor's own). `required_classes`: the class names
    the checkpoint's labels must give (default GenEval's 80), checked when the detector is built.
    """

    def __init__(
        self,
        model_id: str = DEFAULT_DETECTOR,
        clip_id: str = DEFAULT_CLIP,
        device=None,
        batch_size: int = 8,
        *,
        model=None,
        image_processor=None,
        clip_model=None,
        clip_processor=None,
        min_score: float = SCORE_THRESHOLD,
        detection_size: dict | None = MMDET_TEST_SIZE,
        required_classes=CLASSES,
    ):
        from transformers import AutoImageProcessor, CLIPModel, CLIPProcessor

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        self.min_score = min_score
        self.detection_size = detection_size
        self.model = (model or build_mask2former(model_id=model_id)).to(self.device).eval()
        self.class_names = [geneval_name(self.model.config.id2label[i]) for i in range(len(self.model.config.id2label))]
        check_covers(self.class_names, required_classes)
        self.image_processor = image_processor or AutoImageProcessor.from_pretrained(model_id)
        self.clip_model = (clip_model or CLIPModel.from_pretrained(clip_id)).to(self.device).eval()
        self.clip_processor = clip_processor or CLIPProcessor.from_pretrained(clip_id)
        # identifies the scorer in per-image results, so a resumed scoring never mixes detectors
        self.name = (
            f"mask2former:{model_id if model is None else 'custom'}"
            f"+{clip_id if clip_model is None else 'custom'}@{detection_size}"
        )
        self._color_classifiers: dict[str, torch.Tensor] = {}

    # -- objects ------------------------------------------------------------------------------------
    @torch.no_grad()
    def _instances(self, images: list[Image.Image]) -> list[list[tuple[str, float, torch.Tensor]]]:
        """(class name, score, boolean mask at the image's size) per image, best first."""
        options = {} if self.detection_size is None else {"size": self.detection_size}
        inputs = self.image_processor(images=images, return_tensors="pt", **options)
        pixel_values = inputs["pixel_values"].to(self.device)
        pixel_mask = inputs["pixel_mask"].to(self.device) if "pixel_mask" in inputs else None
        outputs = self.model(pixel_values=pixel_values, pixel_mask=pixel_mask)
        padded_size = pixel_values.shape[-2:]
        found = []
        for i, image in enumerate(images):
            class_probs = outputs.class_queries_logits[i].float().softmax(-1)[:, :-1]  # drop "no object"
            num_queries, num_classes = class_probs.shape
            scores, flat = class_probs.flatten().topk(num_queries)
            # the final score is the class probability times a mask score <= 1: cut early
            keep = scores > self.min_score
            scores, flat = scores[keep], flat[keep]
            if len(scores) == 0:
                found.append([])
                continue
            queries, labels = flat // num_classes, flat % num_classes
            masks = outputs.masks_queries_logits[i, queries].float()[None]
            masks = F.interpolate(masks, size=padded_size, mode="bilinear", align_corners=False)
            if pixel_mask is not None:  # the processor pads a batch to its largest image
                height = int(pixel_mask[i].any(dim=1).sum())
                width = int(pixel_mask[i].any(dim=0).sum())
                masks = masks[..., :height, :width]
            masks = F.interpolate(masks, size=(image.height, image.width), mode="bilinear", align_corners=False)[0]
            binary = masks > 0
            mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
            final = scores * mask_scores
            instances = [
                (self.class_names[int(label)], float(score), mask)
                for label, score, mask in zip(labels, final, binary)
                if score > self.min_score and mask.any()
            ]
            found.append(sorted(instances, key=lambda item: item[1], reverse=True))
        return found

    # -- colours ------------------------------------------------------------------------------------
    @torch.no_grad()
    def _color_classifier(self, name: str) -> torch.Tensor:
        """(10, D) unit text embeddings, one per colour, each the normalised mean of the templates."""
        if name not in self._color_classifiers:
            texts = [template.format(color=color, name=name) for color in COLORS for template in COLOR_TEMPLATES]
            tokens = self.clip_processor(text=texts, return_tensors="pt", padding=True).to(self.device)
            embedded = F.normalize(_features(self.clip_model.get_text_features(**tokens)).float(), dim=-1)
            per_color = embedded.view(len(COLORS), len(COLOR_TEMPLATES), -1).mean(dim=1)
            self._color_classifiers[name] = F.normalize(per_color, dim=-1)
        return self._color_classifiers[name]

    @torch.no_grad()
    def classify_colors(self, crops: list[Image.Image], names: list[str]) -> list[str]:
        """The colour CLIP gives each crop, against the templates of that crop's object name."""
        colors = []
        for start in range(0, len(crops), self.batch_size):
            batch = crops[start : start + self.batch_size]
            pixels = self.clip_processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            embedded = F.normalize(_features(self.clip_model.get_image_features(pixel_values=pixels)).float(), dim=-1)
            for vector, name in zip(embedded, names[start : start + self.batch_size]):
                colors.append(COLORS[int((self._color_classifier(name) @ vector).argmax())])
        return colors

    # -- the detector interface -----------------------------------------------------------------------
    def detect(self, images: list[Image.Image]) -> list[list[dict]]:
        results = []
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            for image, instances in zip(batch, self._instances(batch)):
                boxes = [mask_box(mask) for _, _, mask in instances]
                crops = [color_crop(image, mask, box) for (_, _, mask), box in zip(instances, boxes)]
                colors = self.classify_colors(crops, [name for name, _, _ in instances]) if crops else []
                results.append(
                    [
                        {"class": name, "score": score, "box": box, "color": color}
                        for (name, score, _), box, color in zip(instances, boxes, colors)
                    ]
                )
        return results
