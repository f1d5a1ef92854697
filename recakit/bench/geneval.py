"""GenEval, reproduced without mmdet: prompts, the official judging rules, sampling and scoring.

GenEval (Ghosh et al., 2023) asks a text-to-image model for 553 short compositional prompts
("a photo of a red cup and a blue clock"), runs an object detector on every image and checks the
prompt's metadata line: are the objects there, as many as asked, in the right colour and place?
The score of a task is the share of its images judged correct; the overall score is the
unweighted mean of the six tasks. RecA's headline numbers are GenEval numbers, so this module
keeps the judging rules identical to the official evaluation script while letting the detector be
anything with a `detect(images)` method (`recakit.bench.scorers` names the two recakit has:
Mask2Former + CLIP for real images, an exact detector for the ShapesWorld toy).

A detection is `{"class": str, "score": float, "box": [x0, y0, x1, y1], "color": str | None}`
(pixels, y down). Folder layout, the official one: `DIR/00000/metadata.jsonl` (that prompt's
metadata line) and `DIR/00000/samples/0000.png`, ...

Command line: `recakit geneval prompts | sample | score | agree` (`recakit.commands.geneval`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from recakit.bench.runs import (
    SamplingJob,
    cached_download,
    check_rewrite,
    check_run_settings,
    draw_jobs,
    sample_seed,
    sha256_of,
    write_image,
)

TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
RELATIONS = ("left of", "right of", "above", "below")
# The 80 object classes GenEval's prompts name (COCO's, in GenEval's spelling and order).
CLASSES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "computer mouse",
    "tv remote",
    "computer keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

# The official evaluation's constants.
SCORE_THRESHOLD = 0.3
COUNTING_SCORE_THRESHOLD = 0.9  # counting asks for "exactly N", so doubtful extras must not count
MAX_OBJECTS_PER_CLASS = 16
POSITION_MARGIN = 0.1  # share of the two objects' summed sizes an offset must exceed

OFFICIAL_METADATA_URL = "https://raw.githubusercontent.com/djghosh13/geneval/main/prompts/evaluation_metadata.jsonl"
OFFICIAL_METADATA_SHA256 = "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"
MINI_METADATA = Path(__file__).parents[1] / "data" / "geneval_mini.jsonl"

RESULTS_FILE = "geneval_results.jsonl"


# -- prompts ----------------------------------------------------------------------------------------
def official_metadata_path() -> Path:
    """The official 553-prompt `evaluation_metadata.jsonl`, from the cache or downloaded and checked."""
    return cached_download(OFFICIAL_METADATA_URL, "geneval/evaluation_metadata.jsonl", sha256=OFFICIAL_METADATA_SHA256)


def read_metadata(path: str | Path, classes=None) -> list[dict]:
    """Metadata lines of a GenEval jsonl file, each checked by `validate_entry` (blank lines
    skipped); an error names the file and line."""
    entries = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                validate_entry(entry, classes)
            except ValueError as error:  # json.JSONDecodeError is one too
                raise ValueError(f"{path}, line {number}: {error}") from None
            entries.append(entry)
    return entries


def validate_entry(entry: dict, classes=None) -> None:
    """Raise ValueError unless `entry` is a well-formed GenEval metadata line; with `classes`,
    also require every class to be one of them."""
    if not isinstance(entry, dict):
        raise ValueError(f"a metadata line must be an object, got {type(entry).__name__}")
    expected_keys = ["tag", "include"] + (["exclude"] if "exclude" in entry else []) + ["prompt"]
    if list(entry) != expected_keys:
        raise ValueError(f"keys must be {expected_keys} in that order, got {list(entry)}")
    if entry["tag"] not in TASKS:
        raise ValueError(f"unknown tag {entry['tag']!r}")
    if not isinstance(entry["prompt"], str) or not entry["prompt"].startswith("a photo of "):
        raise ValueError(f"prompt must be a string starting 'a photo of ', got {entry['prompt']!r}")
    include = entry["include"]
    if not isinstance(include, list) or not include:
        raise ValueError("include must be a non-empty list")
    for index, item in enumerate(include):
        _validate_item(item, index, len(include), classes)
    if entry["tag"] == "counting":
        exclude = entry.get("exclude")
        if not (
            isinstance(exclude, list)
            and len(exclude) == 1
            and len(include) == 1
            and exclude[0] == {"class": include[0]["class"], "count": include[0]["count"] + 1}
        ):
            raise ValueError("a counting line needs one include item and exclude [{class, count + 1}]")
    elif "exclude" in entry:
        raise ValueError(f"only counting lines have exclude, not {entry['tag']}")
    if entry["tag"] == "position" and not any("position" in item for item in include):
        raise ValueError("a position line needs an item with a position")


def _validate_item(item: dict, index: int, n_items: int, classes) -> None:
    if not isinstance(item, dict):
        raise ValueError(f"include items must be objects, got {type(item).__name__}")
    allowed = ["class", "count", "color", "position"]
    keys = list(item)
    if keys[:2] != ["class", "count"] or any(k not in allowed for k in keys) or keys != sorted(keys, key=allowed.index):
        raise ValueError(f"include items hold class, count, then color / position; got {keys}")
    if not isinstance(item["class"], str) or (classes is not None and item["class"] not in classes):
        raise ValueError(f"unknown class {item['class']!r}")
    if not isinstance(item["count"], int) or isinstance(item["count"], bool) or item["count"] < 1:
        raise ValueError(f"count must be a positive integer, got {item['count']!r}")
    if "color" in item and item["color"] not in COLORS:
        raise ValueError(f"colour {item['color']!r} is not one of GenEval's {', '.join(COLORS)}")
    if "position" in item:
        position = item["position"]
        if not (
            isinstance(position, list)
            and len(position) == 2
            and position[0] in RELATIONS
            and isinstance(position[1], int)
            and 0 <= position[1] < n_items
            and position[1] != index
        ):
            raise ValueError(f"position must be [relation, index of another item], got {position!r}")


def load_prompts(prompt_set: str = "official") -> list[dict]:
    """GenEval metadata lines: "official" (553, downloaded once), "mini" (the ShapesWorld set
    shipped with recakit) or the path of any file in the same format."""
    if prompt_set == "official":
        return read_metadata(official_metadata_path())
    if prompt_set == "mini":
        if not MINI_METADATA.exists():
            raise FileNotFoundError(f"the GenEval-mini prompts are missing from the package: {MINI_METADATA}")
        return read_metadata(MINI_METADATA)
    if Path(prompt_set).exists():
        return read_metadata(prompt_set)
    raise ValueError(f"unknown prompt set {prompt_set!r}: use 'official', 'mini' or a .jsonl path")


# -- the rules --------------------------------------------------------------------------------------
def relative_position(box_a, box_b) -> set[str]:
    """Relations of box A to box B ("left of", "right of", "above", "below"), as GenEval sees them.

    Each axis of the centre offset is shrunk by 10 % of the two boxes' summed sizes on that axis;
    what is left, divided by the full offset's length, must exceed 0.5 on an axis for a relation.
    When nothing is left on either axis the objects are too close to be in any relation.
    """
    centre_a = ((box_a[0] + box_a[2]) / 2, (box_a[1] + box_a[3]) / 2)
    centre_b = ((box_b[0] + box_b[2]) / 2, (box_b[1] + box_b[3]) / 2)
    size_a = (abs(box_a[2] - box_a[0]), abs(box_a[3] - box_a[1]))
    size_b = (abs(box_b[2] - box_b[0]), abs(box_b[3] - box_b[1]))
    offset = [centre_a[axis] - centre_b[axis] for axis in (0, 1)]
    revised = [
        math.copysign(max(abs(offset[axis]) - POSITION_MARGIN * (size_a[axis] + size_b[axis]), 0.0), offset[axis])
        for axis in (0, 1)
    ]
    if all(abs(value) < 1e-3 for value in revised):
        return set()
    length = math.hypot(*offset)
    dx, dy = revised[0] / length, revised[1] / length
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def kept_detections(entry: dict, detections: list[dict]) -> dict[str, list[dict]]:
    """Detections the rules look at, per class: above the task's score threshold, most confident
    first, at most 16 per class."""
    threshold = COUNTING_SCORE_THRESHOLD if entry["tag"] == "counting" else SCORE_THRESHOLD
    by_class: dict[str, list[dict]] = {}
    for detection in sorted(detections, key=lambda d: d["score"], reverse=True):
        if detection["score"] > threshold:
            by_class.setdefault(detection["class"], []).append(detection)
    return {name: found[:MAX_OBJECTS_PER_CLASS] for name, found in by_class.items()}


def _describe_relations(relations: set[str]) -> str:
    if not relations:
        return "no relation (too close)"
    return " and ".join(sorted(relations))


def judge(entry: dict, detections: list[dict]) -> tuple[bool, str]:
    """Is one image correct for its metadata line? -> (correct, reason in a short sentence).

    Every `include` requirement must hold (its class found at least `count` times; the top
    `count` of them in the asked colour; each of them in the asked relation to every object of the
    requirement it refers to), and no `exclude` class may reach its count.
    """
    kept = kept_detections(entry, detections)
    problems = []
    # The objects each requirement matched, or None when it failed: position clauses refer to
    # earlier requirements by index.
    matched_groups: list[list[dict] | None] = []
    for requirement in entry.get("include", []):
        name, count = requirement["class"], requirement["count"]
        found = kept.get(name, [])[:count]
        matched = len(found) >= count
        if not matched:
            problems.append(f"expected {count} {name}, found {len(found)}")
        if matched and "color" in requirement:
            colors = [detection.get("color") for detection in found]
            if None in colors:
                raise ValueError(
                    f"the detector gave no colour for a {name}; colour prompts need a detector that classifies colour"
                )
            right = colors.count(requirement["color"])
            if right < count:
                matched = False
                seen = ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors)
                problems.append(f"expected {count} {requirement['color']} {name}, found {seen}")
        if matched and "position" in requirement:
            relation, target_index = requirement["position"]
            targets = matched_groups[target_index]
            target_name = entry["include"][target_index]["class"]
            if targets is None:
                matched = False
                problems.append(f"no {target_name} to place the {name} {relation}")
            else:
                for obj in found:
                    for target in targets:
                        relations = relative_position(obj["box"], target["box"])
                        if relation not in relations:
                            matched = False
                            problems.append(
                                f"expected {name} {relation} {target_name}, found {_describe_relations(relations)}"
                            )
                            break
                    if not matched:
                        break
        matched_groups.append(found if matched else None)
    for requirement in entry.get("exclude", []):
        name, count = requirement["class"], requirement["count"]
        present = len(kept.get(name, []))
        if present >= count:
            problems.append(f"expected fewer than {count} {name}, found {present}")
    if problems:
        return False, "; ".join(problems)
    return True, "all requirements met"


def summarize(results: list[dict]) -> dict:
    """Scores of judged images (each with `tag` and `correct`), as fractions in [0, 1].

    -> {"overall": mean of the task scores, "tasks": {task: score or None}, "n_images": n,
    "missing": tasks without images}. Tasks without images are left out of the overall mean,
    so an overall over fewer than six tasks is not comparable with published numbers.
    """
    per_task: dict[str, list[bool]] = {task: [] for task in TASKS}
    for result in results:
        if result["tag"] not in per_task:
            raise ValueError(f"unknown GenEval task {result['tag']!r}")
        per_task[result["tag"]].append(bool(result["correct"]))
    tasks = {task: (sum(values) / len(values) if values else None) for task, values in per_task.items()}
    scored = [score for score in tasks.values() if score is not None]
    return {
        "overall": sum(scored) / len(scored) if scored else None,
        "tasks": tasks,
        "n_images": len(results),
        "missing": [task for task, score in tasks.items() if score is None],
    }


# -- scoring ----------------------------------------------------------------------------------------
def find_samples(folder: str | Path) -> list[tuple[dict, Path]]:
    """(metadata line, image path) for every sample of a folder in the official layout."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    samples = []
    for prompt_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()):
        metadata_file = prompt_dir / "metadata.jsonl"
        if not metadata_file.exists():
            raise FileNotFoundError(f"{metadata_file} is missing")
        entry = json.loads(metadata_file.read_text(encoding="utf-8").splitlines()[0])
        for image_path in sorted((prompt_dir / "samples").glob("*.png")):
            if re.fullmatch(r"\d+\.png", image_path.name):
                samples.append((entry, image_path))
    if not samples:
        raise ValueError(f"{folder} holds no GenEval samples (expected {folder}/00000/samples/0000.png, ...)")
    return samples


def score_folder(folder: str | Path, detector, batch_size: int = 16, results_path: str | Path | None = None) -> dict:
    """Judge every image of a sample folder with `detector` -> `summarize` of the results, plus
    `results_path`.

    Per-image results are appended to `results_path` (default `FOLDER/geneval_results.jsonl`) as
    they are judged; a rerun with the same detector (its `name`, else its class) reuses the
    verdicts of unchanged images, so an interrupted scoring resumes where it stopped.
    """
    folder = Path(folder)
    results_path = Path(results_path) if results_path else folder / RESULTS_FILE
    scorer_name = getattr(detector, "name", type(detector).__name__)
    samples = find_samples(folder)
    image_hashes = {str(path.relative_to(folder)): sha256_of(path) for _, path in samples}

    done: dict[str, dict] = {}
    if results_path.exists():
        for line in results_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                result = json.loads(line)
                if result.get("scorer") == scorer_name and image_hashes.get(result["filename"]) == result.get(
                    "image_sha256"
                ):
                    done[result["filename"]] = result
    # Rewrite the file with only what is reused, so it never mixes scorers or stale images.
    with open(results_path, "w", encoding="utf-8") as handle:
        for result in done.values():
            handle.write(json.dumps(result) + "\n")

    todo = [(entry, path) for entry, path in samples if str(path.relative_to(folder)) not in done]
    with (
        open(results_path, "a", encoding="utf-8") as handle,
        tqdm(total=len(samples), initial=len(samples) - len(todo), desc="GenEval scoring", unit="img") as bar,
    ):
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            images = []
            for _, path in batch:
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            for (entry, path), detections in zip(batch, detector.detect(images)):
                correct, reason = judge(entry, detections)
                filename = str(path.relative_to(folder))
                result = {
                    "filename": filename,
                    "tag": entry["tag"],
                    "prompt": entry["prompt"],
                    "correct": correct,
                    "reason": reason,
                    "scorer": scorer_name,
                    "image_sha256": image_hashes[filename],
                    "detections": detections,
                }
                done[result["filename"]] = result
                handle.write(json.dumps(result) + "\n")
            handle.flush()
            bar.update(len(batch))
    summary = summarize(list(done.values()))
    summary["results_path"] = str(results_path)
    return summary


def format_summary(summary: dict) -> str:
    """A small plain-text table of a summary, in percent like the papers."""
    lines = [f"{'task':<15}{'score':>8}"]
    for task in TASKS:
        score = summary["tasks"].get(task)
        lines.append(f"{task:<15}{'-' if score is None else f'{100 * score:.1f}':>8}")
    overall = summary["overall"]
    lines.append(f"{'overall':<15}{'-' if overall is None else f'{100 * overall:.1f}':>8}")
    lines.append(
        f"({summary['n_images']} images"
        + (f"; no images for {', '.join(summary['missing'])})" if summary.get("missing") else ")")
    )
    return "\n".join(lines)


def _image_key(filename: str) -> str:
    """ "00000/samples/0000.png" from any path to a sample, so two scorers' files line up."""
    return "/".join(Path(filename).parts[-3:])


def read_results(path: str | Path) -> dict[str, dict]:
    """Per-image results (this module's or the official evaluate_images.py's results.jsonl), by image.
    An image judged twice is refused: one of its verdicts would silently decide every comparison."""
    results = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                result = json.loads(line)
                key = _image_key(result["filename"])
                if key in results:
                    raise ValueError(f"{path}, line {number}: {key} is judged a second time")
                results[key] = result
    return results


def _paired_results(ours: str | Path, theirs: str | Path) -> tuple[list[str], dict, dict]:
    """Both scorers' results by image, refused unless they hold the same images and prompts."""
    ours_results, theirs_results = read_results(ours), read_results(theirs)
    only_ours = sorted(set(ours_results) - set(theirs_results))
    only_theirs = sorted(set(theirs_results) - set(ours_results))
    if only_ours or only_theirs:
        raise ValueError(
            f"{ours} and {theirs} do not hold the same images: {len(only_ours)} only in the first "
            f"{only_ours[:3]}, {len(only_theirs)} only in the second {only_theirs[:3]}; "
            "score the same sample folder with both scorers"
        )
    shared = sorted(ours_results)
    if not shared:
        raise ValueError(f"{ours} and {theirs} hold no per-image results")
    differ = [
        key
        for key in shared
        if ours_results[key]["tag"] != theirs_results[key]["tag"]
        or ours_results[key].get("prompt", "") != theirs_results[key].get("prompt", "")
    ]
    if differ:
        first = differ[0]
        raise ValueError(
            f"{ours} and {theirs} disagree on the prompt of {len(differ)} images, e.g. {first}: "
            f"{ours_results[first]['tag']} {ours_results[first].get('prompt')!r} against "
            f"{theirs_results[first]['tag']} {theirs_results[first].get('prompt')!r}"
        )
    return shared, ours_results, theirs_results


def _compare(pairs: list[tuple[bool, bool]]) -> dict:
    """Counts, agreement, Cohen's kappa and score difference of (ours, theirs) verdict pairs."""
    n = len(pairs)
    both = sum(a and b for a, b in pairs)
    ours_only = sum(a and not b for a, b in pairs)
    theirs_only = sum(b and not a for a, b in pairs)
    observed = (n - ours_only - theirs_only) / n
    ours_rate, theirs_rate = (both + ours_only) / n, (both + theirs_only) / n
    # the agreement two scorers with these correct-rates would reach by chance
    chance = ours_rate * theirs_rate + (1 - ours_rate) * (1 - theirs_rate)
    return {
        "n": n,
        "agree": observed,
        "both_correct": both,
        "ours_only": ours_only,
        "theirs_only": theirs_only,
        "both_wrong": n - both - ours_only - theirs_only,
        "kappa": (observed - chance) / (1 - chance) if chance < 1 else None,
        "difference": ours_rate - theirs_rate,
    }


def agreement(ours: str | Path, theirs: str | Path, *, resamples: int = 2000, seed: int = 0) -> dict:
    """How two scorers judge the same images: the check to run before quoting transformers-scorer
    numbers next to official ones. The files must hold the same images with the same prompts.

    -> {"tasks": {task: figures}, "overall": figures, "n_images", "ours": summary, "theirs":
    summary, "resamples", "seed"}, the figures being "n", "agree" (share judged alike),
    "both_correct", "ours_only" (correct for ours only), "theirs_only", "both_wrong", "kappa"
    (Cohen's; None when neither scorer's verdict ever varies), "difference" (our score minus
    theirs; overall: of the GenEval overall, the mean of the task scores) and "difference_95",
    its bootstrap 95 % interval: images drawn again with replacement within each task,
    `resamples` times, from a generator seeded with `seed` (the same files give the same interval).
    """
    shared, ours_results, theirs_results = _paired_results(ours, theirs)
    pairs: dict[str, list[tuple[bool, bool]]] = {}
    for key in shared:
        pairs.setdefault(ours_results[key]["tag"], []).append(
            (bool(ours_results[key]["correct"]), bool(theirs_results[key]["correct"]))
        )
    tasks = [task for task in TASKS if task in pairs]
    rng = np.random.default_rng(seed)
    redrawn = {}  # task -> (resamples,) differences of the task scores on redrawn images
    for task in tasks:
        verdicts = np.array(pairs[task], dtype=float)  # (n, 2): ours, theirs
        draws = rng.integers(0, len(verdicts), size=(resamples, len(verdicts)))
        redrawn[task] = verdicts[draws, 0].mean(axis=1) - verdicts[draws, 1].mean(axis=1)

    def interval(values) -> list[float]:
        return [float(bound) for bound in np.quantile(values, [0.025, 0.975])]

    per_task = {task: {**_compare(pairs[task]), "difference_95": interval(redrawn[task])} for task in tasks}
    ours_summary = summarize([ours_results[key] for key in shared])
    theirs_summary = summarize([theirs_results[key] for key in shared])
    overall = {
        **_compare([pair for task in tasks for pair in pairs[task]]),
        "difference": ours_summary["overall"] - theirs_summary["overall"],
        "difference_95": interval(np.mean([redrawn[task] for task in tasks], axis=0)),
    }
    return {
        "tasks": per_task,
        "overall": overall,
        "n_images": len(shared),
        "ours": ours_summary,
        "theirs": theirs_summary,
        "resamples": resamples,
        "seed": seed,
    }


# -- sampling (the loop itself is recakit.bench.runs.draw_jobs) ------------------------------------
def sample_prompts(
    model,
    processor,
    entries: list[dict],
    out_dir: str | Path,
    *,
    n_per_prompt: int = 4,
    seed: int = 0,
    batch_size: int = 8,
    cfg_scale: float | None = None,
    rewrite: str | None = None,
    run_info: dict | None = None,
    shard: tuple[int, int] = (0, 1),
    fast: bool = False,
    generate=None,
) -> int:
    """Draw `n_per_prompt` images for each metadata line into the official layout; returns how many
    images were drawn now.

    Prompts whose samples all exist are skipped and partial ones completed, so an interrupted run
    resumes. `shard=(k, n)` draws only prompts whose index is k modulo n: n processes (one per GPU)
    can share one folder, and the images are the same as a single run's. `rewrite` (a template with
    "{prompt}", e.g. "Generate an image: {prompt}") changes the text the model sees; it is off by
    default because GenEval numbers are reported on the raw prompts, and when used it is recorded in
    every metadata line and in run.json. `fast` asks the sampler for its static-cache path (see
    generate_images); it is recorded in run.json, since on a GPU its images differ from the plain
    loop's. `generate` defaults to `recakit.sampling.generate_images`.
    """
    if n_per_prompt < 1 or batch_size < 1:
        raise ValueError("n_per_prompt and batch_size must be at least 1")
    check_rewrite(rewrite)
    shard_index, shard_count = shard
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard {shard_index} of {shard_count} does not exist")
    out_dir = Path(out_dir)
    settings = dict(
        run_info or {},
        n_per_prompt=n_per_prompt,
        seed=seed,
        cfg_scale=cfg_scale,
        rewrite=rewrite,
        fast=fast,
        n_prompts=len(entries),
        seed_rule="seed + prompt_index * n_per_prompt + k",
    )
    check_run_settings(out_dir, settings)

    jobs = []  # one image each: ([model prompt], [seed], where to save it)
    for index, entry in enumerate(entries):
        if index % shard_count != shard_index:
            continue
        prompt_dir = out_dir / f"{index:05d}"
        (prompt_dir / "samples").mkdir(parents=True, exist_ok=True)
        text = rewrite.format(prompt=entry["prompt"]) if rewrite else entry["prompt"]
        line = dict(entry, rewrite=rewrite, model_prompt=text) if rewrite else entry
        (prompt_dir / "metadata.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
        for k in range(n_per_prompt):
            path = prompt_dir / "samples" / f"{k:04d}.png"
            if not path.exists():
                jobs.append(
                    SamplingJob(
                        [text],
                        [sample_seed(seed, index, n_per_prompt, k)],
                        lambda images, path=path: write_image(images[0], path),
                    )
                )

    total = len(range(shard_index, len(entries), shard_count)) * n_per_prompt
    draw_jobs(
        model,
        processor,
        jobs,
        jobs_per_call=batch_size,
        batch_size=batch_size,
        cfg_scale=cfg_scale,
        fast=fast,
        generate=generate,
        total=total,
        desc="GenEval sampling",
        unit="img",
    )
    return len(jobs)
