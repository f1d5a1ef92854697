"""Wiring of the transformers GenEval detector, with tiny models built from configs (no downloads)."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from recakit.bench.geneval import CLASSES, COLORS, SCORE_THRESHOLD, judge
from recakit.bench.mask2former import (
    CROP_BACKGROUND,
    Mask2FormerDetector,
    build_mask2former,
    color_crop,
    geneval_name,
    mask_box,
)

transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    Mask2FormerConfig,
    Mask2FormerImageProcessor,
    PreTrainedTokenizerFast,
    SwinConfig,
)

LABELS = {0: "cup", 1: "mouse", 2: "potted plant"}
LABEL_NAMES = ("cup", "computer mouse", "potted plant")  # what the test models must cover
RGB = {"red": (220, 30, 35), "blue": (35, 75, 220), "green": (35, 160, 60)}


def tiny_mask2former():
    backbone = SwinConfig(
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=4,
        image_size=64,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = Mask2FormerConfig(
        backbone_config=backbone,
        feature_size=32,
        mask_feature_size=32,
        hidden_dim=32,
        encoder_feedforward_dim=32,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        dim_feedforward=32,
        num_queries=5,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    return build_mask2former(config)


def tiny_clip():
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = [
        "[PAD]",
        "[UNK]",
        "a",
        "photo",
        "of",
        "object",
        "cup",
        "computer",
        "mouse",
        "potted",
        "plant",
        *COLORS,
        *(f"{c}-colored" for c in COLORS),
    ]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]"),
    )
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(words),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=2,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
        ),
        projection_dim=8,
    )
    return CLIPModel(config), processor


def test_tiny_random_models_give_detections_in_the_shared_format():
    torch.manual_seed(0)
    clip_model, clip_processor = tiny_clip()
    detector = Mask2FormerDetector(
        model=tiny_mask2former(),
        image_processor=Mask2FormerImageProcessor(),
        clip_model=clip_model,
        clip_processor=clip_processor,
        device="cpu",
        batch_size=2,
        min_score=0.0,
        detection_size={"shortest_edge": 64, "longest_edge": 128},
        required_classes=LABEL_NAMES,
    )
    images = [
        Image.new("RGB", (64, 48), RGB["red"]),
        Image.new("RGB", (64, 48), RGB["blue"]),
        Image.new("RGB", (48, 64), RGB["green"]),
    ]
    results = detector.detect(images)
    assert len(results) == 3
    for image, detections in zip(images, results):
        assert detections, "with min_score 0 a random model still returns its top queries"
        assert [d["score"] for d in detections] == sorted((d["score"] for d in detections), reverse=True)
        for detection in detections:
            assert set(detection) == {"class", "score", "box", "color"}
            assert detection["class"] in {"cup", "computer mouse", "potted plant"}  # "mouse" renamed for GenEval
            assert isinstance(detection["score"], float) and 0 < detection["score"] <= 1
            x0, y0, x1, y1 = detection["box"]
            assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
            assert detection["color"] in COLORS
    # batching does not change what is found in an image
    alone = detector.detect([images[0]])[0]
    assert [d["class"] for d in alone] == [d["class"] for d in results[0]]
    assert [d["score"] for d in alone] == pytest.approx([d["score"] for d in results[0]], abs=1e-4)

    # the judge reads them as they are: a random model's scores stay under the score threshold...
    def one_cup(color):
        return {"tag": "colors", "prompt": "", "include": [{"class": "cup", "count": 1, "color": color}]}

    assert max(d["score"] for d in results[0]) < SCORE_THRESHOLD
    assert judge(one_cup("red"), results[0]) == (False, "expected 1 cup, found 0")
    # ...and once they clear it, the colour of the most confident cup decides
    confident = [{**d, "score": 0.95} for d in results[0]]
    top_cup = next(d for d in results[0] if d["class"] == "cup")
    for color in ("red", "blue"):
        assert judge(one_cup(color), confident)[0] == (color == top_cup["color"]), color


# -- a scripted segmenter and CLIP, to check geometry, crops and colour logic exactly ----------------------
class ScriptedSegmenter(torch.nn.Module):
    """Query 0 is a "cup" covering the red pixels, query 1 a "mouse" covering the blue ones, the rest
    "no object"; masks come at a quarter of the (resized, padded) input like Mask2Former's."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(id2label=LABELS)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, pixel_values, pixel_mask=None):
        red = (pixel_values[:, 0] > 0.5) & (pixel_values[:, 2] < 0)
        blue = (pixel_values[:, 2] > 0.5) & (pixel_values[:, 0] < 0)
        quarter = F.avg_pool2d(torch.stack([red, blue], 1).float(), 4)
        masks = torch.full((len(pixel_values), 4, *quarter.shape[-2:]), -10.0)
        masks[:, :2] = quarter * 20 - 10
        classes = torch.full((len(pixel_values), 4, len(LABELS) + 1), -10.0)
        classes[:, :, -1] = 10.0
        classes[:, 0, 0], classes[:, 0, -1] = 10.0, -10.0
        classes[:, 1, 1], classes[:, 1, -1] = 10.0, -10.0
        return SimpleNamespace(class_queries_logits=classes, masks_queries_logits=masks)


class NearestColourClip(torch.nn.Module):
    """Image features: one-hot of the colour nearest the crop's mean non-gray pixel; text features:
    one-hot of the colour named in the text."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def get_image_features(self, pixel_values):
        return F.one_hot(pixel_values, len(COLORS)).float()

    def get_text_features(self, input_ids, **_):
        return F.one_hot(input_ids, len(COLORS)).float()


class NearestColourClipProcessor:
    def __init__(self):
        self.images_seen = []

    def __call__(self, text=None, images=None, return_tensors="pt", padding=None):
        if text is not None:
            ids = [next(i for i, c in enumerate(COLORS) if f" {c} " in f" {t.replace('-', ' ')} ") for t in text]
            return _Batch(input_ids=torch.tensor(ids))
        self.images_seen.extend(images)
        return {"pixel_values": torch.tensor([self._nearest(image) for image in images])}

    @staticmethod
    def _nearest(image):
        pixels = [p for p in image.get_flattened_data() if p != CROP_BACKGROUND]
        mean = [sum(channel) / len(pixels) for channel in zip(*pixels)]
        return COLORS.index(min(RGB, key=lambda c: sum((a - b) ** 2 for a, b in zip(RGB[c], mean))))


class _Batch(dict):
    def to(self, device):
        return self


def scene(size, cup_box, mouse_box):
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse(cup_box, fill=RGB["red"])
    draw.rectangle(mouse_box, fill=RGB["blue"])
    return image


def test_masks_boxes_scores_and_colours_follow_the_image_through_resize_and_padding():
    clip_processor = NearestColourClipProcessor()
    detector = Mask2FormerDetector(
        model=ScriptedSegmenter(),
        image_processor=Mask2FormerImageProcessor(),
        clip_model=NearestColourClip(),
        clip_processor=clip_processor,
        device="cpu",
        batch_size=2,
        detection_size={"shortest_edge": 64, "longest_edge": 128},
        required_classes=LABEL_NAMES,
    )
    # a landscape and a portrait image share a padded batch; the third runs alone
    images = [
        scene((96, 64), (8, 8, 40, 40), (60, 30, 90, 58)),
        scene((64, 96), (10, 50, 50, 90), (4, 4, 30, 20)),
        scene((64, 64), (30, 4, 62, 36), (2, 40, 22, 62)),
    ]
    expected = [
        ((8, 8, 41, 41), (60, 30, 91, 59)),
        ((10, 50, 51, 91), (4, 4, 31, 21)),
        ((30, 4, 63, 37), (2, 40, 23, 63)),
    ]
    results = detector.detect(images)
    for detections, (cup_box, mouse_box) in zip(results, expected):
        by_class = {d["class"]: d for d in detections}
        assert set(by_class) == {"cup", "computer mouse"}
        assert by_class["cup"]["box"] == pytest.approx(cup_box, abs=2)
        assert by_class["computer mouse"]["box"] == pytest.approx(mouse_box, abs=2)
        assert by_class["cup"]["color"] == "red" and by_class["computer mouse"]["color"] == "blue"
        assert all(0.9 < d["score"] <= 1 for d in detections)
    # CLIP saw each object's pixels on #999999 gray, cropped to its box: the ellipse's corners are
    # gray, not the white of the image
    cup_crop = next(
        crop
        for crop in clip_processor.images_seen[:2]
        if crop.getpixel((crop.width // 2, crop.height // 2)) == RGB["red"]
    )
    assert (
        cup_crop.getpixel((0, 0)) == CROP_BACKGROUND and cup_crop.getpixel((cup_crop.width - 1, 0)) == CROP_BACKGROUND
    )
    assert abs(cup_crop.width - 33) <= 2 and abs(cup_crop.height - 33) <= 2
    # a correct GenEval judgement falls out: the cup is left of the mouse in the first image
    entry = {
        "tag": "position",
        "prompt": "",
        "include": [{"class": "computer mouse", "count": 1}, {"class": "cup", "count": 1, "position": ["left of", 0]}],
    }
    assert judge(entry, results[0])[0] and not judge(entry, results[1])[0]


def test_min_score_drops_weak_detections():
    detector = Mask2FormerDetector(
        model=ScriptedSegmenter(),
        image_processor=Mask2FormerImageProcessor(),
        clip_model=NearestColourClip(),
        clip_processor=NearestColourClipProcessor(),
        device="cpu",
        detection_size={"shortest_edge": 64, "longest_edge": 128},
        required_classes=LABEL_NAMES,
    )
    assert detector.detect([Image.new("RGB", (64, 64), "white")]) == [[]]


def test_color_crop_and_mask_box():
    image = Image.new("RGB", (10, 8), (255, 0, 0))
    mask = torch.zeros(8, 10, dtype=torch.bool)
    mask[2:5, 3:7] = True
    mask[4, 3] = False
    box = mask_box(mask)
    assert box == [3.0, 2.0, 7.0, 5.0]
    crop = color_crop(image, mask, box)
    assert crop.size == (4, 3)
    assert crop.getpixel((0, 2)) == CROP_BACKGROUND and crop.getpixel((1, 1)) == (255, 0, 0)


def test_label_names_are_mapped_to_geneval_spelling():
    assert geneval_name("mouse") == "computer mouse"
    assert geneval_name("tvmonitor") == "tv"
    assert geneval_name("potted_plant") == "potted plant"
    assert geneval_name("Dining-Table") == "dining table"
    assert geneval_name("zebra") == "zebra"


class LabelsOnly(torch.nn.Module):
    """A stand-in segmenter that only has labels: building a detector reads nothing else."""

    def __init__(self, labels):
        super().__init__()
        self.config = SimpleNamespace(id2label=dict(enumerate(labels)))


def detector_with_labels(labels, **options):
    return Mask2FormerDetector(
        model=LabelsOnly(labels),
        image_processor=Mask2FormerImageProcessor(),
        clip_model=NearestColourClip(),
        clip_processor=NearestColourClipProcessor(),
        device="cpu",
        **options,
    )


def test_a_detector_must_name_all_80_geneval_classes_when_built():
    coco = {"computer mouse": "mouse", "tv remote": "remote", "computer keyboard": "keyboard"}
    coco_labels = [coco.get(name, name) for name in CLASSES]  # COCO's own spelling of GenEval's classes
    assert detector_with_labels(coco_labels).class_names == list(CLASSES)
    unmapped = [("television" if name == "tv" else name) for name in coco_labels if name != "toothbrush"]
    with pytest.raises(ValueError, match=r"no 'tv', 'toothbrush' \(2 of the 80 GenEval classes\)"):
        detector_with_labels(unmapped)
    assert detector_with_labels(LABELS.values(), required_classes=LABEL_NAMES).class_names == list(LABEL_NAMES)
    with pytest.raises(ValueError, match=r"no 'clock' \(1 of the 2"):
        detector_with_labels(LABELS.values(), required_classes=("cup", "clock"))
