"""What GenEval and DPG-Bench runs share: a download cache with checksums, and the resumable
sampling loop (run.json settings, seeds fixed by position, images written atomically).

A run draws `SamplingJob`s: each holds the prompts and seeds of one unit of output (one GenEval
image, or the four images of one DPG-Bench grid) and saves what was drawn. Jobs whose output
exists are left out by the caller, so an interrupted run resumes with the very same images.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

RUN_FILE = "run.json"


# -- downloads with a checked cache -----------------------------------------------------------------
def cache_dir() -> Path:
    """Where downloaded benchmark files live: $RECAKIT_CACHE, else ~/.cache/recakit."""
    return Path(os.environ.get("RECAKIT_CACHE") or "~/.cache/recakit").expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def cached_download(url: str, relative_path: str, *, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """The cached copy of `url` at `cache_dir()/relative_path`, downloaded when missing.

    With `sha256`, a cached file with another checksum is reported and fetched again, and a
    download with another checksum is refused. Offline with no usable copy, the error says exactly
    where to put the file by hand.
    """
    path = cache_dir() / relative_path
    if path.exists():
        if sha256 is None or sha256_of(path) == sha256:
            return path
        print(f"{path} has the wrong SHA-256 (expected {sha256}); downloading it again", file=sys.stderr)
    try:
        data = _download(url, timeout)
    except OSError as error:
        raise RuntimeError(
            f"could not download {url} ({error}). Without network access, download that file on "
            f"another machine and copy it to {path} (or set RECAKIT_CACHE to a folder holding "
            f"{relative_path})"
        ) from error
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"{url} did not match the expected SHA-256 {sha256}; not cached")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)  # an interrupted download never leaves a half file under the real name
    return path


# -- resumable sampling -----------------------------------------------------------------------------
def sample_seed(seed: int, prompt_index: int, n_per_prompt: int, k: int) -> int:
    """Seed of sample k of prompt `prompt_index`: fixed by position alone, so resuming or
    splitting a run across machines draws exactly the same images."""
    return seed + prompt_index * n_per_prompt + k


def check_rewrite(rewrite: str | None) -> None:
    if rewrite is not None and "{prompt}" not in rewrite:
        raise ValueError(f"the rewrite template {rewrite!r} has no {{prompt}} placeholder")


def write_image(image: Image.Image, path: Path) -> None:
    partial = path.with_name(path.stem + ".partial.png")
    image.save(partial)
    partial.replace(path)  # an interrupted save never leaves a broken PNG that resuming would trust


def sampler_options(cfg_scale: float | None, fast: bool) -> dict:
    """The keyword arguments a benchmark run passes to the sampler (none it leaves at their defaults)."""
    options = {} if cfg_scale is None else {"cfg_scale": cfg_scale}
    if fast:
        options["fast"] = True
    return options


#: settings added after run.json files were first written: a file without one ran with this value
LATER_SETTINGS = {"fast": False}


def check_run_settings(out_dir: Path, settings: dict) -> None:
    """Write run.json, or make sure a run resumed in the same folder used the same settings."""
    run_file = out_dir / RUN_FILE
    if run_file.exists():
        previous = {**LATER_SETTINGS, **json.loads(run_file.read_text(encoding="utf-8"))}
        differing = sorted(key for key in settings if previous.get(key) != settings[key])
        if differing:
            raise ValueError(
                f"{out_dir} holds a run with other settings ({', '.join(differing)} differ); use a new folder"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


@dataclass
class SamplingJob:
    """One unit of a run's output: its prompts and seeds (one per image) and how to save them."""

    prompts: list[str]
    seeds: list[int]
    save: Callable[[list[Image.Image]], None]


def draw_jobs(
    model,
    processor,
    jobs: list[SamplingJob],
    *,
    jobs_per_call: int,
    batch_size: int,
    cfg_scale: float | None,
    fast: bool,
    generate=None,
    total: int | None = None,
    desc: str = "sampling",
    unit: str = "img",
) -> None:
    """Draw `jobs`, `jobs_per_call` of them per call of `generate` (default
    `recakit.sampling.generate_images`), and save each; one progress bar for the whole run, which
    counts `total` units (default: the jobs) with the ones already done shown as done."""
    options = sampler_options(cfg_scale, fast)
    if generate is None:
        from recakit.sampling import generate_images as generate

        options["progress"] = False  # this driver shows one bar for the whole run
    total = len(jobs) if total is None else total
    with tqdm(total=total, initial=total - len(jobs), desc=desc, unit=unit) as bar:
        for start in range(0, len(jobs), jobs_per_call):
            group = jobs[start : start + jobs_per_call]
            images = generate(
                model,
                processor,
                [prompt for job in group for prompt in job.prompts],
                seed=[seed for job in group for seed in job.seeds],
                batch_size=batch_size,
                **options,
            )
            position = 0
            for job in group:
                job.save(images[position : position + len(job.prompts)])
                position += len(job.prompts)
            bar.update(len(group))
