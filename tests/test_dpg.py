"""DPG-Bench: question graph parsing (first row kept), dependency scoring, folder scoring and sampling."""

import json

import pytest
from PIL import Image

import recakit.bench.runs as runs
from recakit.bench import dpg
from recakit.commands import dpg as dpg_commands

HEADER = ",".join(dpg.CSV_COLUMNS)


def row(item, prompt, qid, dependency, tuple_, question):
    return f'{item},"{prompt}",,{qid},"{dependency}",entity,whole,{tuple_},{question}'


CSV = (
    "\n".join(
        [
            HEADER,
            row("truck", "a red truck on a beach", 1, "0", "entity - whole (truck)", "Is there a truck?"),
            row("truck", "a red truck on a beach", 2, "1", "attribute - color (truck, red)", "Is the truck red?"),
            row(
                "truck",
                "a red truck on a beach",
                3,
                "2",
                "attribute - texture (truck, glossy)",
                "Is the red truck glossy?",
            ),
            row(
                "truck",
                "a red truck on a beach",
                4,
                "1,3",
                "relation - spatial (truck, beach, on)",
                "Is the truck on a beach?",
            ),
            row("truck", "a red truck on a beach", 5, "0", "entity - whole (beach)", "Is there a beach?"),
            row("cat", "a blue cat", 1, "0", "entity - whole (cat)", "Is there a cat?"),
            row("cat", "a blue cat", 2, "1", "attribute - color (cat, blue)", "Is the cat blue?"),
        ]
    )
    + "\n"
)


def test_the_first_csv_row_is_kept():
    items = dpg.parse_questions(CSV)
    assert list(items) == ["truck", "cat"]
    truck = items["truck"]
    assert truck.prompt == "a red truck on a beach"
    assert sorted(truck.questions) == [1, 2, 3, 4, 5]  # the reference script loses question 1 here
    assert truck.questions[1].text == "Is there a truck?" and truck.questions[1].parents == [0]
    assert truck.questions[4].parents == [1, 3]
    assert truck.questions[2].category == "attribute - color"
    # the first question decides the others: a "no" to it zeroes its children
    all_yes = {qid: "yes" for qid in truck.questions}
    assert dpg.score_answers(truck, all_yes)[0] == 1.0
    assert dpg.score_answers(truck, {**all_yes, 1: "no"})[0] == pytest.approx(1 / 5)


def test_dependency_zeroing_runs_down_the_graph():
    truck = dpg.parse_questions(CSV)["truck"]
    answers = {1: "yes", 2: "no", 3: "yes", 4: "yes", 5: " Yes "}
    score, final = dpg.score_answers(truck, answers)
    # 3 loses its parent 2; 4 loses its parent 3 although 3 itself said yes
    assert final == {1: 1.0, 2: 0.0, 3: 0.0, 4: 0.0, 5: 1.0}
    assert score == pytest.approx(2 / 5)


def test_only_an_exact_yes_counts():
    assert dpg.is_yes("yes") and dpg.is_yes(" YES ") and dpg.is_yes("Yes\n")
    assert not dpg.is_yes("yes.") and not dpg.is_yes("yes yes") and not dpg.is_yes("no") and not dpg.is_yes("")


def test_malformed_question_files_are_rejected():
    with pytest.raises(ValueError, match="columns"):
        dpg.parse_questions("item_id,text\nx,y\n")
    with pytest.raises(ValueError, match="unknown"):
        dpg.parse_questions(HEADER + "\n" + row("x", "p", 1, "7", "entity - whole (a)", "Is there a?") + "\n")
    with pytest.raises(ValueError, match="line 2"):
        dpg.parse_questions(HEADER + "\n" + row("x", "p", "one", "0", "entity - whole (a)", "Is there a?") + "\n")
    looped = dpg.parse_questions(
        HEADER
        + "\n"
        + row("x", "p", 1, "2", "e - w (a)", "A?")
        + "\n"
        + row("x", "p", 2, "1", "e - w (b)", "B?")
        + "\n"
    )["x"]
    with pytest.raises(ValueError, match="cycle"):
        dpg.score_answers(looped, {1: "yes", 2: "yes"})


def test_csv_comes_from_the_cache_or_a_local_path(tmp_path, monkeypatch):
    monkeypatch.setenv("RECAKIT_CACHE", str(tmp_path / "cache"))
    fetched = []
    monkeypatch.setattr(runs, "_download", lambda url, timeout: fetched.append(url) or CSV.encode())
    assert list(dpg.load_items()) == ["truck", "cat"]
    assert list(dpg.load_items()) == ["truck", "cat"]
    assert fetched == [dpg.DPG_CSV_URL]  # downloaded once, then cached
    local = tmp_path / "local.csv"
    local.write_text(CSV)
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "truck.txt").write_text("A glossy red pickup truck parked on sand.\n")
    (prompts / "cat.txt").write_text("A blue cat.\n")
    items = dpg.load_items(local, prompts)
    assert items["truck"].prompt == "A glossy red pickup truck parked on sand."
    with pytest.raises(FileNotFoundError):
        dpg.load_items(tmp_path / "nope.csv")


def test_offline_without_cache_names_the_file_to_provide(tmp_path, monkeypatch):
    monkeypatch.setenv("RECAKIT_CACHE", str(tmp_path))

    def offline(url, timeout):
        raise OSError("no network")

    monkeypatch.setattr(runs, "_download", offline)
    with pytest.raises(RuntimeError, match=str(tmp_path / "dpg" / "dpg_bench.csv")):
        dpg.load_items()


# -- folders -------------------------------------------------------------------------------------------
COLOURS = {"red": (220, 30, 35), "blue": (35, 75, 220), "white": (250, 250, 250)}


class ColourVQA:
    """Answers "yes" when the question names the tile's colour, or asks whether something is there."""

    def __init__(self):
        self.calls = 0

    def __call__(self, image, question):
        self.calls += 1
        pixel = image.getpixel((image.width // 2, image.height // 2))
        colour = min(COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(COLOURS[c], pixel)))
        if question.startswith("Is there"):
            return "yes"
        return "Yes" if colour in question else "no"


def write_grid(path, colours):
    dpg.make_grid([Image.new("RGB", (8, 8), COLOURS[c]) for c in colours]).save(path)


def test_score_folder_reads_grids_in_the_reference_order_and_resumes(tmp_path):
    items = dpg.parse_questions(CSV)
    write_grid(tmp_path / "truck.png", ["red", "blue", "red", "white"])
    vqa = ColourVQA()
    summary = dpg.score_folder(tmp_path, vqa, items, n_per_prompt=4)
    # red tiles: questions 1, 2 yes; 3 ("glossy") no; 4 zeroed by 3; 5 yes -> 3/5. Others: 2/5.
    assert summary["dpg"] == pytest.approx(100 * (3 / 5 + 2 / 5 + 3 / 5 + 2 / 5) / 4)
    assert summary["n_prompts"] == 1 and summary["n_images"] == 4 and summary["missing"] == ["cat"]
    # categories use the raw answers: "attribute" = colour (2 of 4 yes) + texture (0 of 4)
    assert summary["categories"]["attribute"] == pytest.approx(100 * 2 / 8)
    assert summary["subcategories"]["entity - whole"] == 100.0
    lines = [json.loads(line) for line in (tmp_path / dpg.RESULTS_FILE).read_text().splitlines()]
    assert [image["score"] for image in lines[0]["images"]] == pytest.approx([0.6, 0.4, 0.6, 0.4])
    # the tile order is the reference's: top-left, top-right, bottom-left, bottom-right
    only_two = dpg.score_folder(tmp_path, ColourVQA(), items, n_per_prompt=2, results_path=tmp_path / "two.jsonl")
    assert only_two["dpg"] == pytest.approx(100 * (0.6 + 0.4) / 2)
    # rerun: nothing asked again, unless the image changed
    again = ColourVQA()
    assert dpg.score_folder(tmp_path, again, items, n_per_prompt=4)["dpg"] == summary["dpg"]
    assert again.calls == 0
    write_grid(tmp_path / "truck.png", ["red", "red", "red", "red"])
    changed = ColourVQA()
    assert dpg.score_folder(tmp_path, changed, items, n_per_prompt=4)["dpg"] == pytest.approx(60.0)
    assert changed.calls == 4 * 5
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no DPG-Bench images"):
        dpg.score_folder(tmp_path / "empty", vqa, items)


def test_scoring_ignores_partial_writes_and_files_that_are_not_prompts(tmp_path):
    items = dpg.parse_questions(CSV)
    write_grid(tmp_path / "truck.png", ["red", "blue", "red", "white"])
    write_grid(tmp_path / "cat.partial.png", ["red"] * 4)  # an interrupted write of the other prompt
    write_grid(tmp_path / "overview.png", ["blue"] * 4)
    (tmp_path / "cat.png.txt").write_text("notes")
    vqa = ColourVQA()
    summary = dpg.score_folder(tmp_path, vqa, items, n_per_prompt=4)
    assert summary["n_prompts"] == 1 and summary["n_images"] == 4 and summary["missing"] == ["cat"]
    assert vqa.calls == 4 * len(items["truck"].questions)


def test_sampling_writes_grids_with_positional_seeds_and_resumes(tmp_path):
    items = dpg.parse_questions(CSV)
    calls = []

    def fake_generate(model, processor, prompts, *, seed, batch_size=None, **options):
        calls.append((prompts, seed))
        return [Image.new("RGB", (6, 6), (s * 20, 0, 0)) for s in seed]

    assert (
        dpg.sample_items(None, None, items, tmp_path, n_per_prompt=4, seed=1, batch_size=4, generate=fake_generate) == 2
    )
    assert calls == [(["a red truck on a beach"] * 4, [1, 2, 3, 4]), (["a blue cat"] * 4, [5, 6, 7, 8])]
    # a bigger batch draws both prompts in one call, into the same grids
    calls.clear()
    grids = {p.name: p.read_bytes() for p in tmp_path.glob("*.png")}
    assert (
        dpg.sample_items(
            None, None, items, tmp_path / "b8", n_per_prompt=4, seed=1, batch_size=8, generate=fake_generate
        )
        == 2
    )
    assert calls == [(["a red truck on a beach"] * 4 + ["a blue cat"] * 4, [1, 2, 3, 4, 5, 6, 7, 8])]
    assert {p.name: p.read_bytes() for p in (tmp_path / "b8").glob("*.png")} == grids
    with Image.open(tmp_path / "cat.png") as grid:
        assert grid.size == (12, 12)
        assert [tile.getpixel((0, 0))[0] for tile in dpg.grid_tiles(grid.convert("RGB"), 4)] == [100, 120, 140, 160]
    (tmp_path / "truck.png").unlink()
    calls.clear()
    assert (
        dpg.sample_items(None, None, items, tmp_path, n_per_prompt=4, seed=1, batch_size=4, generate=fake_generate) == 1
    )
    assert calls == [(["a red truck on a beach"] * 4, [1, 2, 3, 4])]
    assert json.loads((tmp_path / "run.json").read_text())["benchmark"] == "dpg"
    with pytest.raises(ValueError, match="one to four"):
        dpg.sample_items(None, None, items, tmp_path / "x", n_per_prompt=5, generate=fake_generate)
    seen = []
    dpg.sample_items(
        None,
        None,
        items,
        tmp_path / "fast",
        n_per_prompt=1,
        fast=True,
        generate=lambda *args, seed, **options: seen.append(options) or fake_generate(*args, seed=seed),
    )
    assert seen and all(options.get("fast") is True for options in seen)
    assert json.loads((tmp_path / "fast" / "run.json").read_text())["fast"] is True


def test_blip_vqa_wiring_with_a_tiny_random_model():
    pytest.importorskip("transformers")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        BlipConfig,
        BlipForQuestionAnswering,
        BlipImageProcessor,
        BlipProcessor,
        PreTrainedTokenizerFast,
    )

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[DEC]", "yes", "no", "is", "there", "a", "truck", "?"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            pad_token="[PAD]",
            unk_token="[UNK]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            bos_token="[DEC]",
        ),
    )
    config = BlipConfig(
        text_config=dict(
            vocab_size=len(words),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            encoder_hidden_size=16,
            max_position_embeddings=32,
            pad_token_id=0,
            bos_token_id=4,
            sep_token_id=3,
            eos_token_id=3,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
        ),
    )
    torch.manual_seed(0)
    vqa = dpg.BlipVQA(model=BlipForQuestionAnswering(config), processor=processor, device="cpu", max_new_tokens=3)
    image = Image.new("RGB", (40, 40), "red")
    answer = vqa(image, "is there a truck ?")
    assert isinstance(answer, str) and answer == answer.strip()
    assert 1 <= len(answer.split()) <= 3 and set(answer.split()) <= set(words[5:])
    assert vqa(image, "is there a truck ?") == answer
    # batched questions (padded to the longest) get the answers they get one by one
    questions = ["is there a truck ?", "a truck ?", "is there a a a truck ?"]
    vqa.batch_size = 2
    assert vqa.answer_all(image, questions) == [vqa(image, q) for q in questions]


def test_prompts_and_score_commands(tmp_path, monkeypatch, capsys):
    from recakit.commands.main import main

    local = tmp_path / "dpg.csv"
    local.write_text(CSV)
    assert main(["dpg", "prompts", "--csv", str(local), "--out", str(tmp_path / "prompts.jsonl")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "prompts.jsonl").read_text().splitlines()]
    assert lines == [
        {"item_id": "truck", "prompt": "a red truck on a beach", "n_questions": 5},
        {"item_id": "cat", "prompt": "a blue cat", "n_questions": 2},
    ]

    run = tmp_path / "run"
    run.mkdir()
    write_grid(run / "cat.png", ["blue", "red"])
    (run / "run.json").write_text(json.dumps({"n_per_prompt": 2}))
    monkeypatch.setattr(dpg_commands, "BlipVQA", lambda model_id, device=None: ColourVQA())
    out = tmp_path / "scores" / "dpg.json"
    assert main(["dpg", "score", str(run), "--csv", str(local), "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["dpg"] == pytest.approx(100 * (1.0 + 0.5) / 2)  # blue cat: 2/2; red tile: 1/2
    assert summary["n_images"] == 2 and summary["missing"] == ["truck"]
    assert summary["comparable_with_paper"] is False and summary["vqa_model"] == dpg.DEFAULT_VQA
    assert summary["csv"] == str(local) and len(summary["csv_sha256"]) == 64
    assert (tmp_path / "scores" / "dpg.prompts.jsonl").exists()
    assert "DPG" in capsys.readouterr().out
