"""The README and docs/ say what the code and the committed reports say, and every command they show works.

- The README's answer (what the committed runs found) is checked figure by figure and verdict by
  verdict against the committed tables in ``reports/``; its table is generated from them.
- Blocks generated from the code (the suite keys, the presets, the attacks) equal what the code
  gives now. ``python tests/test_docs.py --write`` rewrites them after a change.
- Every dotted name ``robustbench_win.x.y`` in the docstrings, README and docs resolves; every link
  and every repository path they name exists.
- Every command in a ``bash`` block is parsed by the real command line (its suite and ``--set``
  overrides validated), is a Makefile target, a benchmark with those options, a package extra, or
  a Ray command that ``tests/test_ray_cluster.py`` runs. The Python examples run at a small size;
  the slow commands run as shown in ``make test-slow``.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import dataclasses
import importlib
import json
import re
import shlex
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CHANGELOG = ROOT / "CHANGELOG.md"
DOCS = ROOT / "docs"
REPORTS = ROOT / "reports"
MARKDOWN = [README, CHANGELOG, *sorted(DOCS.glob("*.md"))]
SOURCE_FOLDERS = ("robustbench_win", "models", "attacks", "benchmarks")
README_LIMIT = 12 * 1024  # bytes: a front page, not a manual
VERDICT_RUNS = ("mnist14", "cifar10-jpeg")  # the committed runs with enough seeds for a verdict
ALL_RUNS = ("quick", "mnist14", "cifar10-jpeg")
WRITE_HINT = "run `python tests/test_docs.py --write` and commit the result"


# --------------------------------------------------------------------------- committed reports


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def verdict_row(run: str, claim: str, table: str = "table_verdict") -> dict[str, str]:
    rows = [r for r in read_csv(REPORTS / run / f"{table}.csv") if r["claim"] == claim]
    assert len(rows) == 1, f"{run}/{table}: no single row '{claim}'"
    return rows[0]


def pooled_row(claim: str) -> dict[str, str]:
    rows = [r for r in read_csv(REPORTS / "compare" / "compare_pooled.csv") if r["claim"] == claim]
    assert len(rows) == 1, f"compare_pooled.csv: no single row '{claim}'"
    return rows[0]


def clean_table(run: str) -> dict[int, dict[str, str]]:
    """``table_clean_accuracy.csv`` of a committed run, by kernel size."""
    return {int(r["kernel_size"]): r for r in read_csv(REPORTS / run / "table_clean_accuracy.csv")}


def seeds_of(run: str) -> int:
    return len({r["seed"] for r in read_csv(REPORTS / run / "clean.csv")})


def largest_k(run: str) -> int:
    return max(int(r["kernel_size"]) for r in read_csv(REPORTS / run / "clean.csv"))


def meta(run: str) -> dict[str, Any]:
    return json.loads((REPORTS / run / "meta.json").read_text(encoding="utf-8"))


def signed(value: str | float, decimals: int = 2) -> str:
    return f"{float(value):+.{decimals}f}"


UNIT_DECIMALS = {"pp": 2, "": 3, "L2": 3}  # how the answer prints an effect of each unit


def effect_text(row: dict[str, str]) -> str:
    """``+6.46 pp [+4.57, +8.35]``: a verdict row's effect and 95 % interval."""
    decimals = UNIT_DECIMALS[row["unit"]]
    unit = f" {row['unit']}" if row["unit"] else ""
    if not row["ci_low"]:  # every seed gave the same effect: no spread, no interval
        return f"{signed(row['effect'], decimals)}{unit}, no spread"
    return f"{signed(row['effect'], decimals)}{unit} [{signed(row['ci_low'], decimals)}, {signed(row['ci_high'], decimals)}]"


# --------------------------------------------------------------------------- generated blocks


ANSWER_CLAIMS = ("clean accuracy gain", "min-norm AUC gain", "spatial robust acc. gain", "leakage reduction, block layers")


def answer_table() -> str:
    """The README's table: each primary claim at the largest k, per verdict run."""
    k = largest_k(VERDICT_RUNS[0])
    runs = " | ".join(f"`{run}` ({seeds_of(run)} seeds)" for run in VERDICT_RUNS)
    lines = [f"| claim (Hamming k = {k} against) | {runs} |", "|:--" * (len(VERDICT_RUNS) + 1) + "|"]
    for claim in ANSWER_CLAIMS:
        for baseline in (k, 3):
            name = f"{claim}: hamming k{k} vs none k{baseline}"
            cells = [f"{verdict_row(run, name)['verdict']}, {effect_text(verdict_row(run, name))}" for run in VERDICT_RUNS]
            lines.append(f"| `{name}` | {' | '.join(cells)} |")
    return "\n".join(lines)


def preset_table() -> str:
    """The presets and their descriptions, as ``robustbench-win list suites`` prints them."""
    from robustbench_win.suite import shipped_suites

    presets = shipped_suites()
    rows = [f"| `{name}` | {tomllib.loads(presets[name].read_text(encoding='utf-8'))['description']} |"
            for name in sorted(presets)]
    return "\n".join(["| preset | description |", "|:--|:--|", *rows])


def attribute_docs(cls: type) -> dict[str, str]:
    """``Attributes:`` of a Google-style class docstring: name -> one-line description."""
    docs: dict[str, str] = {}
    section, name = False, ""
    for line in (cls.__doc__ or "").splitlines():
        stripped = line.strip()
        if stripped == "Attributes:":
            section = True
        elif section and re.match(r"^\s{8}\w+: ", line):
            name, _, text = stripped.partition(": ")
            docs[name] = text
        elif section and name and line.startswith(" " * 12) and stripped:
            docs[name] += " " + stripped
        elif section and not stripped and docs:
            section = False
    return {key: value.replace("``", "`") for key, value in docs.items()}


def markdown_cell(text: str) -> str:
    """Plain text safe in a markdown table cell (``<name>`` would render as an HTML tag)."""
    return text.replace("|", "/").replace("<", "&lt;").replace(">", "&gt;")


def suite_keys_table() -> str:
    """Every key a suite file accepts, from the schema ``suite.py`` validates against."""
    from robustbench_win import suite
    from robustbench_win.train.config import TrainConfig

    tables = {"model": suite.MODEL_KEYS, "report": suite.REPORT_KEYS, "checks": suite.CHECK_KEYS}
    lines = ["| key | what |", "|:--|:--|"]
    for key, what in suite.TOP_LEVEL_KEYS.items():
        if key in tables:
            what += "; keys " + ", ".join(f"`{key}.{sub}`" for sub in sorted(tables[key]))
        elif key == "train":
            what += "; keys below"
        lines.append(f"| `{key}` | {markdown_cell(what)} |")
    described = attribute_docs(TrainConfig)
    lines += ["", "| `[train]` key | default | what |", "|:--|:--|:--|"]
    for item in dataclasses.fields(TrainConfig):
        default = suite.dump_toml({"v": item.default}).partition(" = ")[2].strip() if item.default is not None else "none"
        lines.append(f"| `train.{item.name}` | {default} | {described[item.name]} |")
    return "\n".join(lines)


def attacks_table() -> str:
    from robustbench_win.registry import ATTACKS

    rows = [f"| `{name}` | {ATTACKS.create(name).family} | {ATTACKS.describe(name)} |"
            for name in ATTACKS.in_registration_order()]
    return "\n".join(["| name | family | what |", "|:--|:--|:--|", *rows])


GENERATED: dict[tuple[Path, str], Callable[[], str]] = {
    (README, "answer"): answer_table,
    (DOCS / "suites.md", "presets"): preset_table,
    (DOCS / "suites.md", "keys"): suite_keys_table,
    (DOCS / "attacks.md", "attacks"): attacks_table,
}


def block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:begin[^\n]*-->\n)(.*?)(<!-- {name}:end -->)", re.DOTALL)


def write_generated_blocks() -> None:
    for (path, name), make in GENERATED.items():
        text = path.read_text(encoding="utf-8")
        new, count = block_pattern(name).subn(lambda m: m.group(1) + make() + "\n" + m.group(3), text)
        assert count == 1, f"{path.name} has no block '{name}'"
        path.write_text(new, encoding="utf-8")


@pytest.mark.parametrize(("path", "name"), list(GENERATED), ids=[f"{p.name}:{n}" for p, n in GENERATED])
def test_each_generated_block_is_what_the_code_and_reports_give_now(path: Path, name: str) -> None:
    found = block_pattern(name).search(path.read_text(encoding="utf-8"))
    assert found, f"{path.name} lost its '{name}' block"
    assert found.group(2) == GENERATED[(path, name)]() + "\n", f"{path.name}: the '{name}' block is stale; {WRITE_HINT}"


# --------------------------------------------------------------------------- the README's answer


def answer_section() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"^## What the committed runs found\n(.*?)^## ", text, re.DOTALL | re.MULTILINE)
    assert found, "the README lost its section 'What the committed runs found'"
    return found.group(1)


def flat(text: str) -> str:
    """Text with every run of white space as one space (phrases may wrap anywhere)."""
    return " ".join(text.split())


def answer_prose() -> str:
    """The answer without its generated table (checked on its own), white space flattened."""
    return flat(block_pattern("answer").sub("", answer_section()))


def pooled_text(claim: str) -> str:
    """``-5.6 % [-10.7, -0.5]``: the pooled relative effect of ``reports/compare`` and its interval."""
    row = pooled_row(claim)
    return f"{signed(row['estimate'], 1)} % [{signed(row['ci_low'], 1)}, {signed(row['ci_high'], 1)}]"


def spatial_ceiling(run: str) -> str:
    """The highest mean spatial-grid robust accuracy (%) of any configuration of a run."""
    return f"{max(float(r['spatial-grid:robust_acc_mean']) for r in read_csv(REPORTS / run / 'table_spatial.csv')):.1f}"


def parameter_ratio_range() -> str:
    """``11 to 13``: the parameters of Hamming at the largest k over none at k = 3, rounded, over every run."""
    ratios = [round(float(clean_table(run)[largest_k(run)]["hamming:n_params"]) / float(clean_table(run)[3]["none:n_params"]))
              for run in ALL_RUNS]
    return f"{min(ratios)} to {max(ratios)}"


def cifar_accuracy_range() -> str:
    means = [float(row[f"{window}:acc_mean"]) for row in clean_table("cifar10-jpeg").values() for window in ("none", "hamming")]
    return f"{min(means):.1f} to {max(means):.1f} %"


def answer_facts() -> list[tuple[str, bool]]:
    """Each phrase of the README's answer, and whether the committed reports bear it out."""
    k = largest_k("mnist14")
    same, small = f"vs none k{k}", "vs none k3"

    def verdicts(claim: str, table: str = "table_verdict") -> set[str]:
        return {verdict_row(run, claim, table)["verdict"] for run in VERDICT_RUNS}

    clean, auc = f"clean accuracy gain: hamming k{k}", f"min-norm AUC gain: hamming k{k}"
    leakage, spatial = f"leakage reduction, block layers: hamming k{k}", f"spatial robust acc. gain: hamming k{k}"
    at_three = "clean accuracy gain: hamming k3 vs none k3"
    size_gain = {run: clean_table(run)[k]["none:diff_k3_mean"] for run in VERDICT_RUNS}
    recipe_gain = {run: float(verdict_row(run, f"{clean} {small}")["effect"]) for run in VERDICT_RUNS}
    cifar_notes = meta("cifar10-jpeg")["notes"][0]
    models = {(r["model"], r["window"]) for run in ALL_RUNS for r in read_csv(REPORTS / run / "clean.csv")}
    return [
        ("Three runs of the paper's CNN, unwindowed (`none`) against Hamming, are committed",
         models == {("paper-cnn", "none"), ("paper-cnn", "hamming")} and len(ALL_RUNS) == 3),
        (f"`quick` (the embedded MNIST digits, {seeds_of('quick')} seeds: too few for a verdict", seeds_of("quick") < 3),
        (f"subsampled to 14x14, {seeds_of('mnist14')} seeds)", "14x14" in meta("mnist14")["dataset_name"]),
        (f"(a JPEG copy of CIFAR-10, {seeds_of('cifar10-jpeg')} seeds)", "JPEG copy" in meta("cifar10-jpeg")["dataset_name"]),
        (f"headline rows, at k = {k}", all(largest_k(run) == k for run in ALL_RUNS)),
        (f"(`{same}`: the window alone", True),
        ("lowers the learned spectral leakage of the block layers, supported in both 5-seed runs",
         verdicts(f"{leakage} {same}") == {"supported"} and {seeds_of(r) for r in VERDICT_RUNS} == {5}),
        ("no gain in accuracy or minimal-norm robustness shows: those rows are inconclusive",
         verdicts(f"{clean} {same}") | verdicts(f"{auc} {same}") == {"inconclusive"}),
        (f"pooled over the three runs the min-norm AUC is lower with the window "
         f"({pooled_text(f'{auc} {same}')} of the baseline's, `reports/compare`)",
         float(pooled_row(f"{auc} {same}")["ci_high"]) < 0 and pooled_row(f"{auc} {same}")["runs_pooled"] == "3"),
        (f"raises spatial robust accuracy by {signed(verdict_row('cifar10-jpeg', f'{spatial} {same}')['effect'])} pp (supported)",
         verdict_row("cifar10-jpeg", f"{spatial} {same}")["verdict"] == "supported"),
        (f"on mnist14 no model keeps more than {spatial_ceiling('mnist14')} % of the digits robust to it", True),
        (f"accuracy: {signed(verdict_row('mnist14', at_three, 'table_verdict_per_k')['effect'])} pp on mnist14 and "
         f"{signed(verdict_row('cifar10-jpeg', at_three, 'table_verdict_per_k')['effect'])} pp on CIFAR-10, contradicted",
         verdicts(at_three, "table_verdict_per_k") == {"contradicted"}),
        (f"(`{small}`: window, size and capacity together) Hamming k = {k} is more accurate, supported in both runs",
         verdicts(f"{clean} {small}") == {"supported"}),
        (f"has {parameter_ratio_range()} times the parameters", True),
        (f"gains nearly as much or more over k = 3 ({signed(size_gain['mnist14'])} pp on mnist14, "
         f"{signed(size_gain['cifar10-jpeg'])} pp on CIFAR-10, `table_clean_accuracy`)",
         all(float(size_gain[run]) >= 0.75 * recipe_gain[run] for run in VERDICT_RUNS)),
        ("Minimal-norm robustness against k = 3 is inconclusive in both runs", verdicts(f"{auc} {small}") == {"inconclusive"}),
        (f"CIFAR-10 accuracy is {cifar_accuracy_range()}", True),
        ("(5,000 of 50,000 training images, width 24 (stem 12), 3 conv layers, 8 epochs)",
         "5,000 of 50,000 training images, width 24 (stem 12), 3 conv layers, 8 epochs" in cifar_notes),
    ]


@pytest.mark.parametrize(("phrase", "holds"), answer_facts(), ids=lambda value: str(value)[:50])
def test_each_phrase_of_the_readme_answer_is_there_and_holds_in_the_reports(phrase: str, holds: bool) -> None:
    assert flat(phrase) in answer_prose(), f"the README's answer no longer says: {phrase!r}"
    assert holds, f"the committed reports no longer bear out: {phrase!r}"


def test_the_readme_answer_states_no_number_that_is_not_checked() -> None:
    prose = answer_prose()
    for phrase, _ in answer_facts():
        prose = prose.replace(phrase, "")
    prose = re.sub(r"CIFAR-10|mnist14|cifar10-jpeg", "", prose)  # names, not figures
    kernel_sizes = {str(k) for run in ALL_RUNS for k in clean_table(run)}
    unchecked = [n for n in re.findall(r"\d+(?:[.,]\d+)*", prose) if n not in kernel_sizes | {"95"}]
    assert not unchecked, f"numbers in the README's answer that tests/test_docs.py does not check: {unchecked}"


def test_the_readme_is_a_front_page() -> None:
    assert len(README.read_bytes()) <= README_LIMIT


# --------------------------------------------------------------------------- run times


def recorded_minutes(run: str, workers: int = 2) -> int:
    """A committed run's wall time: its models' recorded seconds (training and every stage), shared out over the workers."""
    training = sum(float(r["train_seconds"] or 0) for r in read_csv(REPORTS / run / "clean.csv"))
    stages = sum(float(r["seconds"]) for r in read_csv(REPORTS / run / "timings.csv"))
    return round((training + stages) / workers / 60)


def bench_quick_wall_seconds() -> int:
    rows = [line.split("|") for line in (ROOT / "bench" / "quick.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| make run")]
    assert len(rows) == 1, "bench/quick.md has no single 'make run' row"
    return round(float(rows[0][3]))


def test_the_run_times_the_readme_gives_are_those_recorded() -> None:
    text = README.read_text(encoding="utf-8")
    assert all(meta(run)["jobs"] == 2 and meta(run)["threads"] == 1 for run in ALL_RUNS)
    assert f"| `mnist14` | digits subsampled to 14x14, 5 seeds | {recorded_minutes('mnist14')} min |" in text
    assert f"5 seeds | {recorded_minutes('cifar10-jpeg')} min (on the JPEG copy) |" in text
    assert f"({bench_quick_wall_seconds()} s in [bench/quick.md](bench/quick.md))" in flat(text)
    assert "3 to 4 minutes" in text and 180 <= bench_quick_wall_seconds() <= 240


# --------------------------------------------------------------------------- names, links, paths


DOTTED = re.compile(r"robustbench_win(?:\.[A-Za-z_]\w*)+")


def documented_texts() -> Iterator[tuple[str, str]]:
    """(where, text) of every docstring of the package and benchmarks, and of every markdown page."""
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node, clean=False)
                    if doc:
                        yield f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 1)}", doc
    for path in MARKDOWN:
        yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


def entry_point_groups() -> set[str]:
    """The entry-point groups the registries read (``robustbench_win.<kind>``)."""
    from robustbench_win.registry import ATTACKS, DATASETS, ENTRY_POINT_PREFIX, MODELS

    return {ENTRY_POINT_PREFIX + registry.kind for registry in (MODELS, DATASETS, ATTACKS)}


def resolves(name: str) -> bool:
    """Whether ``a.b.c`` is an importable module, or an attribute chain of the longest importable prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for part in parts[cut:]:
            if not hasattr(found, part):
                return False
            found = getattr(found, part)
        return True
    return False


def test_every_dotted_name_in_docstrings_readme_and_docs_resolves() -> None:
    groups = entry_point_groups()
    stale = sorted({f"{name} ({where})" for where, text in documented_texts() for name in DOTTED.findall(text)
                    if not resolves(name) and name not in groups})
    assert not stale, "dotted names that neither import nor name an entry-point group:\n" + "\n".join(stale)


def test_the_entry_point_groups_named_anywhere_are_the_ones_the_registries_read() -> None:
    groups = entry_point_groups()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert set(pyproject["project"]["entry-points"]) - {"console_scripts"} == groups
    for where, text in documented_texts():
        if where == CHANGELOG.name:
            continue  # history: it may name what a group used to be called
        for sentence in re.split(r"(?<=[.:;])\s", " ".join(text.split())):
            if "entry-point group" in sentence:
                named = set(DOTTED.findall(sentence))
                assert named <= groups, f"{where}: {sentence!r} names {named - groups}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: p.name)
def test_every_link_resolves(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        assert path.exists(), f"{page.name}: link to {target}: no such file"
        if anchor:
            assert path.suffix == ".md" and anchor in anchors(path), f"{page.name}: link to {target}: no such heading"


REPOSITORY_PATH = re.compile(r"``?((?:models|attacks|robustbench_win|reports|bench|benchmarks|tests|docs)/[\w./-]*)``?")


def test_every_repository_path_named_in_docs_and_docstrings_exists() -> None:
    missing = sorted({f"{path} ({where})" for where, text in documented_texts() for path in REPOSITORY_PATH.findall(text)
                      if not re.search(r"[<>{}*]", path) and not (ROOT / path).exists()})
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


def test_every_file_of_a_committed_report_is_described_in_the_outputs_page() -> None:
    page = (DOCS / "outputs.md").read_text(encoding="utf-8")
    for path in (REPORTS / "quick").iterdir():
        name = path.name.removesuffix(".gz").removesuffix(".csv").removesuffix(".md") if path.is_file() else path.name
        assert f"`{name}" in page or f"`{path.name}`" in page, f"docs/outputs.md does not describe {path.name}"
    for figure in (REPORTS / "quick" / "figures").glob("*.png"):
        assert figure.stem.split("_")[0] in page.lower(), f"docs/outputs.md does not describe figures/{figure.name}"


def test_every_benchmark_and_bench_target_is_on_the_benchmarks_page() -> None:
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    for script in (ROOT / "benchmarks").glob("*.py"):
        assert f"`{script.name}`" in page, f"docs/benchmarks.md does not name {script.name}"
    for target in make_targets():
        if target.startswith("bench"):
            assert f"`make {target}`" in page, f"docs/benchmarks.md does not name make {target}"


# --------------------------------------------------------------------------- commands


def code_blocks(language: str) -> list[tuple[Path, str]]:
    return [(page, body) for page in MARKDOWN
            for body in re.findall(rf"^```{language}\n(.*?)^```", page.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)]


def shown_commands() -> list[tuple[str, list[str]]]:
    """Every command of every ``bash`` block: (page, words), continuation lines joined, comments and env assignments dropped."""
    commands = []
    for page, body in code_blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.match(r"^[A-Z_]+=", words[0]):
                words = words[1:]
            if words:
                commands.append((page.name, words))
    return commands


def cli_arguments(words: list[str]) -> list[str] | None:
    """The arguments of a ``robustbench-win`` command, however it is spelled; ``None`` for other commands."""
    if words[0] in ("robustbench-win", ".venv/bin/robustbench-win"):
        return words[1:]
    if words[:3] == ["python", "-m", "robustbench_win"]:
        return words[3:]
    return None


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE))


def ray_subcommands_tested() -> set[str]:
    source = (ROOT / "tests" / "test_ray_cluster.py").read_text(encoding="utf-8")
    return set(re.findall(r'\[\*RAY, "([\w-]+)"', source))


def check_other_command(words: list[str]) -> None:
    """A shown command that is not ``robustbench-win``: a make target, a benchmark, an extra, a tested Ray command."""
    if words[0] == "make":
        assert set(words[1:]) <= make_targets(), f"no Makefile target {words[1:]}"
    elif words[0] == "python" and words[1].startswith("benchmarks/"):
        source = (ROOT / words[1]).read_text(encoding="utf-8")
        for option in (w.partition("=")[0] for w in words[2:] if w.startswith("--")):
            assert f'"{option}"' in source, f"{words[1]} has no option {option}"
    elif words[:2] == ["pip", "install"]:
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
        for extra in re.findall(r"robustbench-win\[([\w,]+)\]", " ".join(words)):
            assert set(extra.split(",")) <= set(extras), f"no extra {extra}"
    elif words[0] == "ray":
        assert words[1] in ray_subcommands_tested(), f"tests/test_ray_cluster.py does not run `ray {words[1]}`"
    else:
        raise AssertionError(f"a command the docs test does not know how to check: {' '.join(words)}")


README_PLUGIN = re.compile(r"```python\n(# my_models\.py\n.*?)```", re.DOTALL)


@contextlib.contextmanager
def readme_plugin_loaded(folder: Path) -> Iterator[None]:
    """The README's plug-in file, written to ``folder`` (as the README's command expects), registered."""
    from robustbench_win.registry import MODELS

    found = README_PLUGIN.search(README.read_text(encoding="utf-8"))
    assert found, "the README's plug-in example moved"
    (folder / "my_models.py").write_text(found.group(1), encoding="utf-8")
    before = set(MODELS.names())  # names() loads the built-ins first, so the clean-up below keeps them
    try:
        yield
    finally:
        for name in set(MODELS._entries) - before:
            MODELS._entries.pop(name)


def check_cli_command(arguments: list[str]) -> None:
    """Parse with the real parser; a ``run`` loads its suite with its overrides (every key and value checked)."""
    from robustbench_win.cli import build_parser
    from robustbench_win.registry import load_plugin
    from robustbench_win.suite import load_suite

    args = build_parser().parse_args(arguments)
    for plugin in [*args.global_plugins, *args.plugin]:
        load_plugin(plugin)
    if args.command == "run":
        load_suite(args.suite, args.overrides)
    for folder in getattr(args, "folders", []) or ([args.out] if args.command == "report" else []):
        assert (ROOT / folder).is_dir(), f"{folder} is not a committed report"


def test_the_docs_show_commands() -> None:
    commands = shown_commands()
    assert sum(cli_arguments(words) is not None for _, words in commands) >= 10
    assert {"make"} <= {words[0] for _, words in commands}


@pytest.mark.parametrize(("page", "words"), shown_commands(), ids=lambda value: " ".join(value)[:60] if isinstance(value, list) else value)
def test_each_shown_command_is_valid(page: str, words: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    arguments = cli_arguments(words)
    if arguments is None:
        check_other_command(words)
        return
    if arguments[:1] == ["attack"]:
        write_attack_weights(tmp_path, arguments)
    with readme_plugin_loaded(tmp_path):
        check_cli_command(arguments)


def test_the_synopsis_names_every_command_and_only_options_they_take() -> None:
    from robustbench_win.cli import build_parser

    synopsis = next(body for page, body in code_blocks("text") if page == README)
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    shown = {line.split()[1] for line in synopsis.splitlines() if line.startswith("robustbench-win ")}
    assert shown == set(commands)
    current = ""
    for line in synopsis.splitlines():
        current = line.split()[1] if line.startswith("robustbench-win ") else current
        for option in re.findall(r"--[\w-]+", line.partition("#")[0]):
            assert option in commands[current]._option_string_actions, f"robustbench-win {current} has no {option}"


@pytest.mark.parametrize(("page", "body"), code_blocks("toml"), ids=lambda value: getattr(value, "name", "toml"))
def test_each_toml_example_is_a_valid_suite_or_suite_part(page: Path, body: str) -> None:
    from robustbench_win.suite import load_suite, suite_from_dict

    part = tomllib.loads(body)
    quick = load_suite("quick").raw
    merged = part if "dataset" in part else {**quick, **{k: {**quick.get(k, {}), **v} if isinstance(v, dict) else v for k, v in part.items()}}
    suite_from_dict(merged, source=page.name)


def write_attack_weights(folder: Path, arguments: list[str]) -> None:
    """An untrained model's state dict at the ``--weights`` path, built from the command's ``--model`` and ``--arg``s."""
    import torch

    from robustbench_win.cli import build_parser
    from robustbench_win.registry import MODELS
    from robustbench_win.suite import parse_value

    args = build_parser().parse_args(arguments)
    kwargs = {key: parse_value(value) for key, _, value in (item.partition("=") for item in args.arg)}
    model = MODELS.create(args.model, in_channels=1, num_classes=10, **kwargs)
    torch.save(model.state_dict(), folder / args.weights)


# --------------------------------------------------------------------------- examples that run


TINY_SUITE = ["train_size=400", "test_size=200", "attack_samples=4", "checks.cross-check=false"]


def python_example(marker: str) -> str:
    found = [body for _, body in code_blocks("python") if marker in body]
    assert len(found) == 1, f"no single python example containing {marker!r}"
    return found[0]


def test_the_package_face_example_runs_at_a_small_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's ``import robustbench_win as rbw`` example as printed, on a tiny suite (suite loads get small sizes appended)."""
    import robustbench_win as rbw

    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "quick").symlink_to(REPORTS / "quick")
    load, run = rbw.load_suite, rbw.run_suite
    monkeypatch.setattr(rbw, "load_suite", lambda name, overrides=(): load(name, [*overrides, *TINY_SUITE]))
    monkeypatch.setattr(rbw, "run_suite", lambda suite, out, **options: run(
        suite, out, checkpoint_dir=tmp_path / "checkpoints", progress=False, **options))
    exec(compile(python_example("import robustbench_win as rbw"), "README.md", "exec"), {})
    assert (tmp_path / "reports" / "mine" / "summary.md").is_file()
    pooled = read_csv(tmp_path / "reports" / "compare-mine" / "compare_pooled.csv")
    assert {row["claim"] for row in pooled} == {row["claim"] for row in read_csv(REPORTS / "quick" / "table_verdict.csv")}


def test_the_package_face_is_light_and_complete() -> None:
    import robustbench_win as rbw

    assert {"load_suite", "run_suite", "build_report", "compare", "windowize", "MODELS", "DATASETS", "ATTACKS",
            "register_model", "register_dataset", "register_attack"} <= set(rbw.__all__)
    for name in rbw.__all__:
        assert getattr(rbw, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rbw.nope  # noqa: B018
    code = "import sys, robustbench_win; print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))"
    import subprocess

    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_the_windowize_example_runs() -> None:
    exec(compile(python_example("from robustbench_win.models import windowize"), "docs/windowize.md", "exec"), {})


def test_the_records_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(python_example('pd.read_csv("reports/quick/samples.csv.gz")'), "docs/outputs.md", "exec"), {})


@pytest.mark.slow
def test_the_compare_command_as_shown_remakes_the_committed_comparison(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robustbench_win.cli import main

    command = next(words for _, words in shown_commands() if cli_arguments(words) and cli_arguments(words)[0] == "compare")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    for run in ALL_RUNS:
        (tmp_path / "reports" / run).symlink_to(REPORTS / run)
    assert main(cli_arguments(command)) == 0
    for name in ("compare.md", "compare_runs.csv", "compare_pooled.csv"):
        assert (tmp_path / "reports" / "compare" / name).read_bytes() == (REPORTS / "compare" / name).read_bytes(), name


@pytest.mark.slow
def test_the_attack_command_as_shown_runs_on_an_untrained_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robustbench_win.cli import main

    command = next(cli_arguments(words) for _, words in shown_commands() if (cli_arguments(words) or [""])[0] == "attack")
    monkeypatch.chdir(tmp_path)
    write_attack_weights(tmp_path, command)
    assert main([*command, "--samples", "4", "--out", "out", "--quiet"]) == 0
    assert (tmp_path / "out" / "summary.md").is_file()


@pytest.mark.slow
def test_the_run_command_of_make_run_runs_as_shown_at_a_small_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``robustbench-win run quick --jobs 2 --threads 1`` (what ``make run`` runs), two workers, tiny sizes appended."""
    from robustbench_win.cli import main

    make_run = re.search(r"^run: install\n\t\$\(BIN\)/robustbench-win (.*)$", (ROOT / "Makefile").read_text(encoding="utf-8"),
                         re.MULTILINE)
    assert make_run, "the Makefile's run target changed"
    shown = [cli_arguments(words) for _, words in shown_commands()]
    command = shlex.split(make_run.group(1).replace("$(SUITE)", "quick"))
    assert command in shown, f"the docs do not show make run's command: {command}"
    monkeypatch.chdir(tmp_path)
    tiny = [f"--set={setting}" for setting in [*TINY_SUITE, "train.epochs=1", "seeds=[0]", "kernel_sizes=[3,5]"]]
    assert main([*command, *tiny, "--out", "out", "--checkpoint-dir", "checkpoints", "--quiet"]) == 0
    assert len(read_csv(tmp_path / "out" / "clean.csv")) == 4


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/test_docs.py --write   (rewrites the generated blocks of README.md and docs/)")
    write_generated_blocks()
