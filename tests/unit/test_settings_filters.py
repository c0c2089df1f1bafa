import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import SettingsError
from core.filters import all_of, field_eq, field_in, quote
from core.settings import MAX_K, load_settings


def test_defaults_are_offline_and_embedded() -> None:
    s = load_settings()
    assert s.milvus_uri == "./data/milvus.db" and s.is_milvus_lite
    assert s.embedding_provider == "local" and s.embedding_model == "all-MiniLM-L6-v2"
    assert not s.uses_chat_model


def test_env_prefix_and_standard_provider_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_K", "7")
    monkeypatch.setenv("MILVUS_URI", "./x.db")  # must be ignored: it is pymilvus's own variable
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    s = load_settings()
    assert s.k == 7 and s.milvus_uri == "./data/milvus.db"
    assert s.uses_chat_model and s.openai_base_url == "http://127.0.0.1:9/v1"


def test_dotenv_is_read(tmp_path, monkeypatch) -> None:
    (tmp_path / ".env").write_text("RAG_COLLECTION=from_env_file\n")
    assert load_settings().collection == "from_env_file"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"RAG_K": "0"}, "RAG_K"),
        ({"RAG_CHUNK_SIZE": "500", "RAG_CHUNK_OVERLAP": "600"}, "RAG_CHUNK_OVERLAP"),
        ({"RAG_SEARCH_MODE": "fuzzy"}, "RAG_SEARCH_MODE"),
        ({"RAG_COLLECTION": "bad name; drop"}, "RAG_COLLECTION"),
        ({"RAG_EMBEDDING_PROVIDER": "openai"}, "OPENAI_API_KEY"),
    ],
)
def test_invalid_values_fail_with_a_plain_message(monkeypatch, env, fragment) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert fragment in str(err.value)
    assert "Traceback" not in str(err.value)


def test_filter_helpers() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert field_eq("source", "x") == 'source == "x"'
    assert field_eq("page", 3) == "page == 3"
    assert field_in("source", ["a", 'b"']) == 'source in ["a", "b\\""]'
    assert all_of("a == 1", None, "b == 2") == "(a == 1) and (b == 2)"
    assert all_of(None) is None
    with pytest.raises(ValueError):
        field_eq("source or 1==1", "x")


@given(st.text())
def test_quote_never_leaves_the_string_literal(value: str) -> None:
    literal = quote(value)
    assert literal.startswith('"') and literal.endswith('"')
    inner = literal[1:-1]
    # every double quote inside is escaped by an odd run of backslashes
    i = 0
    while i < len(inner):
        if inner[i] == "\\":
            i += 2
            continue
        assert inner[i] != '"'
        i += 1


def test_search_options_carry_every_retrieval_setting() -> None:
    from dataclasses import fields

    from chains.options import SearchOptions

    s = load_settings(
        k=9,
        rewrites=1,
        search_mode="mmr",
        score_threshold=0.4,
        hybrid_search=True,
        min_support=0.6,
        min_coverage=0.2,
    )
    opts = SearchOptions.from_settings(s)
    assert opts == SearchOptions(9, 20, 1, "mmr", 0.4, 0.5, False, 0, False, True, 0.6, 0.2)
    assert len(fields(SearchOptions)) == 12  # a new option needs a line above (and a setting, if people set it)
    wild = SearchOptions(
        k=10_000,
        fetch_k=-3,
        rewrites=99,
        mode="drop",
        threshold=7,
        mmr_lambda=-1,  # type: ignore[arg-type]
        openings=1,
        per_source=-5,
        keyword_rank=0,
        min_support=3,
        min_coverage=-2,
    ).clamped()  # type: ignore[arg-type]
    assert (wild.k, wild.fetch_k, wild.rewrites, wild.mode, wild.threshold, wild.mmr_lambda) == (
        MAX_K,
        MAX_K,
        8,
        "similarity",
        1.0,
        0.0,
    )
    assert (wild.openings, wild.per_source, wild.keyword_rank, wild.min_support, wild.min_coverage) == (
        True,
        0,
        False,
        1.0,
        0.0,
    )


def test_readme_documents_every_setting() -> None:
    from pathlib import Path

    from core.settings import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    aliases = {
        "openai_api_key": "OPENAI_API_KEY",
        "openai_base_url": "OPENAI_BASE_URL",
        "auth_secret": "CHAINLIT_AUTH_SECRET",
        "xdg_cache_home": "XDG_CACHE_HOME",
    }
    missing = [name for name in Settings.model_fields if f"`{aliases.get(name, 'RAG_' + name.upper())}`" not in readme]
    assert not missing, f"README lacks: {missing}"
