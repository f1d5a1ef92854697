"""DPG-Bench: dense-prompt following, scored by asking a VQA model questions about each image.

DPG-Bench (from the ELLA project) has 1065 long prompts. Each comes with a graph of yes/no
questions ("Is there a truck?", "Is the truck red?"), where a question may depend on others:
asking about the truck's colour only makes sense if there is a truck. Scoring, as the reference:

- a question scores 1 only if the VQA model answers exactly "yes" (here after trimming spaces and
  lower-casing);
- a question whose parent (dependency ids, 0 = none) scored 0 is zeroed, and so on down the graph;
- an image scores the mean over its questions; DPG = 100 x the mean over images.

The reference script skips the first row of the question CSV (it drops `i == 0` of a table that
already had its header removed), which loses the first prompt's first question and makes that
prompt fail; this module keeps every row.

Images live as one PNG per prompt, `DIR/<item_id>.png`, holding the prompt's (up to) four samples
in a 2x2 grid, the layout the reference scorer reads. The paper's numbers use mPLUG-large as the
VQA model; the default here is a BLIP VQA checkpoint from transformers, so its numbers are for
comparing runs with each other, not with published DPG scores. Any `vqa(image, question) -> str`
can be plugged in.

Command line: `recakit dpg prompts | sample | score` (`recakit.commands.dpg`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

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

DPG_CSV_URL = "https://raw.githubusercontent.com/TencentQQGYLab/ELLA/main/dpg_bench/dpg_bench.csv"
CSV_COLUMNS = (
    "item_id",
    "text",
    "keywords",
    "proposition_id",
    "dependency",
    "category_broad",
    "category_detailed",
    "tuple",
    "question_natural_language",
)
DEFAULT_VQA = "Salesforce/blip-vqa-base"
GRID_SLOTS = ((0, 0), (1, 0), (0, 1), (1, 1))  # (column, row) of samples 0-3, as the reference crops them
RESULTS_FILE = "dpg_results.jsonl"


@dataclass
class Question:
    id: int
    text: str
    parents: list[int]
    category: str  # e.g. "entity - whole"; its first part ("entity") is the broad category


@dataclass
class DPGItem:
    item_id: str
    prompt: str
    questions: dict[int, Question] = field(default_factory=dict)


# -- data -------------------------------------------------------------------------------------------
def question_csv(path: str | Path | None = None) -> Path:
    """The question CSV: `path` when given, else the cached download of DPG_CSV_URL."""
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such DPG-Bench CSV: {path}")
        return path
    return cached_download(DPG_CSV_URL, "dpg/dpg_bench.csv")


def parse_questions(text: str) -> dict[str, DPGItem]:
    """DPG-Bench items, in file order, from the CSV text. Every row counts, the first included."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"not a DPG-Bench question CSV: columns {missing} are missing")
    items: dict[str, DPGItem] = {}
    for line_number, row in enumerate(reader, start=2):
        item = items.setdefault(row["item_id"], DPGItem(row["item_id"], row["text"]))
        try:
            question_id = int(row["proposition_id"])
            parents = [int(part) for part in row["dependency"].split(",")]
        except ValueError as error:
            raise ValueError(f"line {line_number}: bad proposition_id or dependency ({error})") from error
        item.questions[question_id] = Question(
            question_id, row["question_natural_language"], parents, row["tuple"].split("(")[0].strip()
        )
    for item in items.values():
        for question in item.questions.values():
            unknown = [p for p in question.parents if p != 0 and p not in item.questions]
            if unknown:
                raise ValueError(f"item {item.item_id}: question {question.id} depends on unknown {unknown}")
    return items


def load_items(csv_path: str | Path | None = None, prompts_dir: str | Path | None = None) -> dict[str, DPGItem]:
    """DPG-Bench items from the CSV. The prompt is the CSV's `text` column; with `prompts_dir` (the
    reference's `prompts/` folder of `<item_id>.txt` files) those texts are used instead."""
    items = parse_questions(question_csv(csv_path).read_text(encoding="utf-8"))
    if prompts_dir is not None:
        for item in items.values():
            prompt_file = Path(prompts_dir) / f"{item.item_id}.txt"
            if not prompt_file.exists():
                raise FileNotFoundError(f"{prompt_file} is missing")
            item.prompt = prompt_file.read_text(encoding="utf-8").strip()
    return items


# -- scoring rules ----------------------------------------------------------------------------------
def is_yes(answer: str) -> bool:
    return " ".join(answer.split()).lower() == "yes"


def score_answers(item: DPGItem, answers: dict[int, str]) -> tuple[float, dict[int, float]]:
    """(image score, final score per question) for one image's answers.

    A question keeps its yes only if every parent kept its own, down the whole graph.
    """
    raw = {qid: float(is_yes(answers[qid])) for qid in item.questions}
    final: dict[int, float] = {}

    def resolve(qid: int, path: tuple[int, ...] = ()) -> float:
        if qid in path:
            raise ValueError(f"item {item.item_id}: questions {path + (qid,)} depend on each other in a cycle")
        if qid not in final:
            parents_ok = all(
                resolve(parent, path + (qid,)) == 1.0 for parent in item.questions[qid].parents if parent != 0
            )
            final[qid] = raw[qid] if parents_ok else 0.0
        return final[qid]

    for qid in item.questions:
        resolve(qid)
    return sum(final.values()) / len(final), final


def grid_tiles(grid: Image.Image, n_images: int) -> list[Image.Image]:
    """The first `n_images` samples of a 2x2 grid image."""
    tile_w, tile_h = grid.width // 2, grid.height // 2
    return [
        grid.crop((col * tile_w, row * tile_h, (col + 1) * tile_w, (row + 1) * tile_h))
        for col, row in GRID_SLOTS[:n_images]
    ]


def make_grid(images: list[Image.Image]) -> Image.Image:
    """Up to four equal-size samples in a 2x2 grid (empty slots black)."""
    if not 1 <= len(images) <= 4:
        raise ValueError("a DPG-Bench grid holds one to four images")
    width, height = images[0].size
    grid = Image.new("RGB", (2 * width, 2 * height))
    for image, (col, row) in zip(images, GRID_SLOTS):
        grid.paste(image.convert("RGB").resize((width, height)), (col * width, row * height))
    return grid


def ask_all(vqa, image: Image.Image, questions: list[str]) -> list[str]:
    """Answers to every question about one image: in one batch when the VQA model offers
    `answer_all(image, questions)`, else one `vqa(image, question)` call each."""
    if hasattr(vqa, "answer_all"):
        return vqa.answer_all(image, questions)
    return [vqa(image, question) for question in questions]


def score_folder(
    folder: str | Path, vqa, items: dict[str, DPGItem], *, n_per_prompt: int = 4, results_path: str | Path | None = None
) -> dict:
    """Ask `vqa(image, question) -> str` every question about every sample of a DPG folder.

    -> {"dpg": 100 x mean image score, "categories": broad-category scores, "subcategories": ...,
    "n_prompts", "n_images", "missing": item ids with no image}. Category scores average the raw
    yes answers (before dependency zeroing, like the reference) over all images, x100.
    Per-prompt results are appended to `results_path` (default `FOLDER/dpg_results.jsonl`) as they
    come; a rerun with the same VQA model (its `name`, else its class) reuses those of unchanged
    images, so an interrupted scoring resumes.
    """
    folder = Path(folder)
    results_path = Path(results_path) if results_path else folder / RESULTS_FILE
    image_hashes = {
        item_id: sha256_of(folder / f"{item_id}.png") for item_id in items if (folder / f"{item_id}.png").exists()
    }
    if not image_hashes:
        raise ValueError(f"{folder} holds no DPG-Bench images (expected {folder}/<item_id>.png)")
    vqa_name = getattr(vqa, "name", type(vqa).__name__)
    done: dict[str, dict] = {}
    if results_path.exists():
        for line in results_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                result = json.loads(line)
                if (
                    result.get("vqa") == vqa_name
                    and result.get("n_images") == n_per_prompt
                    and image_hashes.get(result["item_id"]) == result.get("image_sha256")
                ):
                    done[result["item_id"]] = result
    with open(results_path, "w", encoding="utf-8") as handle:
        for result in done.values():
            handle.write(json.dumps(result) + "\n")
        for item_id in tqdm([i for i in image_hashes if i not in done], desc="DPG-Bench scoring", unit="prompt"):
            item = items[item_id]
            with Image.open(folder / f"{item_id}.png") as grid:
                tiles = grid_tiles(grid.convert("RGB"), n_per_prompt)
            per_image = []
            for tile in tiles:
                answers = dict(zip(item.questions, ask_all(vqa, tile, [q.text for q in item.questions.values()])))
                score, _ = score_answers(item, answers)
                per_image.append({"score": score, "answers": {str(q): a for q, a in answers.items()}})
            result = {
                "item_id": item_id,
                "n_images": n_per_prompt,
                "vqa": vqa_name,
                "image_sha256": image_hashes[item_id],
                "score": sum(image["score"] for image in per_image) / len(per_image),
                "images": per_image,
            }
            done[item_id] = result
            handle.write(json.dumps(result) + "\n")
            handle.flush()
    return summarize(done.values(), items, missing=[i for i in items if i not in done])


def _percent(values: list[float]) -> float:
    return 100 * sum(values) / len(values)


def summarize(results, items: dict[str, DPGItem], missing: list[str] | None = None) -> dict:
    """DPG score and category breakdown of per-prompt results (see `score_folder`)."""
    results = list(results)
    image_scores = [image["score"] for result in results for image in result["images"]]
    by_detail: dict[str, list[float]] = {}
    for result in results:
        item = items[result["item_id"]]
        for image in result["images"]:
            for qid, question in item.questions.items():
                by_detail.setdefault(question.category, []).append(float(is_yes(image["answers"][str(qid)])))
    by_broad: dict[str, list[float]] = {}
    for category, values in by_detail.items():
        by_broad.setdefault(category.split("-")[0].strip(), []).extend(values)
    return {
        "dpg": _percent(image_scores) if image_scores else math.nan,
        "categories": {name: _percent(values) for name, values in sorted(by_broad.items())},
        "subcategories": {name: _percent(values) for name, values in sorted(by_detail.items())},
        "n_prompts": len(results),
        "n_images": len(image_scores),
        "missing": missing or [],
    }


# -- the default VQA model ------------------------------------------------------------------------------
class BlipVQA:
    """`vqa(image, question) -> str` with a BLIP VQA checkpoint from transformers (or built objects);
    `answer_all` asks all questions about an image in batches."""

    def __init__(
        self,
        model_id: str = DEFAULT_VQA,
        device=None,
        *,
        model=None,
        processor=None,
        max_new_tokens: int = 10,
        batch_size: int = 16,
    ):
        import torch
        from transformers import BlipForQuestionAnswering, BlipProcessor

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = (model or BlipForQuestionAnswering.from_pretrained(model_id)).to(self.device).eval()
        self.processor = processor or BlipProcessor.from_pretrained(model_id)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.name = f"blip:{model_id if model is None else 'custom'}"

    def __call__(self, image: Image.Image, question: str) -> str:
        return self.answer_all(image, [question])[0]

    def answer_all(self, image: Image.Image, questions: list[str]) -> list[str]:
        """All questions about one image, `batch_size` at a time."""
        import torch

        answers = []
        for start in range(0, len(questions), self.batch_size):
            batch = questions[start : start + self.batch_size]
            inputs = self.processor(
                images=[image.convert("RGB")] * len(batch), text=batch, padding=True, return_tensors="pt"
            ).to(self.device)
            with torch.no_grad():
                output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
            answers += [text.strip() for text in self.processor.batch_decode(output, skip_special_tokens=True)]
        return answers


# -- sampling ---------------------------------------------------------------------------------------
def sample_items(
    model,
    processor,
    items: dict[str, DPGItem],
    out_dir: str | Path,
    *,
    n_per_prompt: int = 4,
    seed: int = 0,
    batch_size: int = 8,
    cfg_scale: float | None = None,
    rewrite: str | None = None,
    run_info: dict | None = None,
    fast: bool = False,
    generate=None,
) -> int:
    """Draw `n_per_prompt` (1-4) images per prompt into `OUT/<item_id>.png` grids; returns how many
    prompts were drawn now. Seeds follow the prompt's position (seed + index * n + k), and prompts
    already drawn are skipped, so an interrupted run resumes with the same images. `fast` as in
    `recakit.bench.geneval.sample_prompts`."""
    if not 1 <= n_per_prompt <= 4:
        raise ValueError("DPG-Bench grids hold one to four images per prompt")
    check_rewrite(rewrite)
    out_dir = Path(out_dir)
    check_run_settings(
        out_dir,
        dict(
            run_info or {},
            benchmark="dpg",
            n_per_prompt=n_per_prompt,
            seed=seed,
            cfg_scale=cfg_scale,
            rewrite=rewrite,
            fast=fast,
            n_prompts=len(items),
            seed_rule="seed + prompt_index * n_per_prompt + k",
        ),
    )
    jobs = []  # one grid each
    for index, item in enumerate(items.values()):
        path = out_dir / f"{item.item_id}.png"
        if not path.exists():
            text = rewrite.format(prompt=item.prompt) if rewrite else item.prompt
            jobs.append(
                SamplingJob(
                    [text] * n_per_prompt,
                    [sample_seed(seed, index, n_per_prompt, k) for k in range(n_per_prompt)],
                    lambda images, path=path: write_image(make_grid(images), path),
                )
            )
    # Several prompts share a call when the batch holds more than one prompt's samples.
    draw_jobs(
        model,
        processor,
        jobs,
        jobs_per_call=max(1, batch_size // n_per_prompt),
        batch_size=batch_size,
        cfg_scale=cfg_scale,
        fast=fast,
        generate=generate,
        desc="DPG-Bench sampling",
        unit="prompt",
    )
    return len(jobs)
