"""The data stage's commands: validate, split, stats, agreement."""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from socialcare.core import paths
from socialcare.core.agreement import agreement_table
from socialcare.core.options import option
from socialcare.core.records import load_posts, validate, write_posts
from socialcare.core.splits import DEFAULT_FRACTIONS, stratified_split, writer_split
from socialcare.core.stats import counts_table
from socialcare.core.style import load_insurers, profiles_by_language, profiles_table


@dataclass
class ValidateOptions:
    """Check JSONL files of posts: schema, labels, duplicates. Exits 1 if anything is wrong."""

    paths: list[Path] = option(
        help="JSONL files or folders (searched recursively)", positional=True
    )


def run_validate(opts: ValidateOptions) -> int:
    count, problems = validate(opts.paths)
    for problem in problems:
        print(problem)
    verdict = "OK" if not problems else f"{len(problems)} problem(s)"
    print(f"{count} valid record(s); {verdict}", file=sys.stderr if problems else sys.stdout)
    return 1 if problems else 0


@dataclass
class SplitOptions:
    """Split labelled posts into fixed train/validation/test files, stratified by language
    and label."""

    input: list[Path] = option(help="JSONL files or folders of labelled posts")
    output_dir: Path = option(paths.SEED_DIR, help="where train/validation/test.jsonl are written")
    seed: int = option(13, help="random seed of the split")
    by: Literal["writer", "labels"] = option(
        "writer",
        help="writer: each writer (the posts' 'writer' field) in one split only, so held-out "
        "scores are those of unseen writers; labels: posts stratified by language x label",
    )
    train_only: list[str] = option(
        [], help="with --by writer: writers whose posts always go to train"
    )


def run_split(opts: SplitOptions) -> int:
    posts = load_posts(opts.input)
    if opts.by == "writer":
        splits = writer_split(posts, DEFAULT_FRACTIONS, opts.seed, frozenset(opts.train_only))
    else:
        splits = stratified_split(posts, DEFAULT_FRACTIONS, seed=opts.seed)
    for name, split_posts in splits.items():
        write_posts(opts.output_dir / f"{name}.jsonl", split_posts)
    print(counts_table(splits))
    return 0


@dataclass
class StatsOptions:
    """Print counts per split, language, intent and sentiment as a Markdown table; with
    --style, how the posts are written (lengths, mentions, emoji, slang, insurers...) per
    language, beside the real public posts of ../shared/data/public when present."""

    data_dir: Path = option(paths.SEED_DIR, help="folder with train/validation/test.jsonl")
    style: list[Path] | None = option(
        None, help="JSONL files or folders to profile for style instead of counting labels"
    )
    public_dir: Path = option(paths.PUBLIC_DATA_DIR, help="real posts to compare styles with")
    insurers: Path = option(paths.INSURERS_FILE, help="fictional insurers per language (JSON)")


def run_stats(opts: StatsOptions) -> int:
    if opts.style:
        print(style_table(opts.style, opts.public_dir, opts.insurers))
        return 0
    splits = {name: load_posts([opts.data_dir / f"{name}.jsonl"]) for name in paths.SPLITS}
    print(counts_table(splits))
    return 0


def style_table(files: list[Path], public_dir: Path, insurers_file: Path) -> str:
    """The style profile of ``files`` per language, and of the real posts when present."""
    insurers = load_insurers(insurers_file)
    columns = profiles_by_language(load_posts(files), "ours", insurers)
    real = sorted(public_dir.glob("*_train.jsonl")) if public_dir.is_dir() else []
    if real:
        columns |= profiles_by_language(load_posts(real), "real", {})
    else:
        print(f"({public_dir} is absent: no real posts to compare with)")
    return profiles_table(columns)


@dataclass
class AgreementOptions:
    """Cohen's kappa between two independent labelling passes over the same posts."""

    first: list[Path] = option(list(paths.FIRST_PASSES), help="first pass (JSONL files)")
    second: list[Path] = option(list(paths.SECOND_PASSES), help="second pass (JSONL files)")


def run_agreement(opts: AgreementOptions) -> int:
    print(agreement_table(load_posts(opts.first), load_posts(opts.second)))
    return 0
