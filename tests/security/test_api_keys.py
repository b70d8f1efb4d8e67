"""API keys: format, typo refusal without a lookup, hash-only storage, and a leaked key caught by
the project's detect-secrets configuration."""

from __future__ import annotations

import math
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from detect_secrets.util.importlib import import_file_as_module

from app.security import api_keys
from app.security.api_keys import InvalidApiKey, generate, hash_key, parse, verify
from tests.deploy.tools import ROOT, tool

PLUGIN_FILE = ROOT / ".ci" / "detect_secrets_plugins.py"
SECRET_TYPE = "fastapi-secrets-template API key"


def _other_char(char: str) -> str:
    return "a" if char != "a" else "b"


def test_generated_keys_have_the_documented_shape() -> None:
    key, lookup_id, stored = generate()
    assert re.fullmatch(r"fst_[0-9A-Za-z]{38}", key)
    assert len(key) == api_keys.KEY_LENGTH == 42
    assert lookup_id == key[4:14]
    assert api_keys.public_prefix(lookup_id) == key[:14]
    assert stored == hash_key(key)
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    parsed = parse(key)
    assert parsed.lookup_id == lookup_id
    assert parsed.matches(stored)
    assert api_keys.looks_like_key(key)
    assert not api_keys.looks_like_key("eyJhbGciOiJFZERTQSJ9.e30.sig")


def test_the_secret_part_beyond_the_public_lookup_id_has_at_least_128_bits() -> None:
    secret_chars = api_keys.RANDOM_LENGTH - api_keys.LOOKUP_LENGTH
    assert secret_chars * math.log2(len(api_keys.ALPHABET)) >= 128
    assert len(set(api_keys.ALPHABET)) == 62


def test_keys_are_unique_and_characters_uniformly_drawn() -> None:
    keys = [generate().key for _ in range(2000)]
    assert len(set(keys)) == len(keys)
    assert len({k[4:14] for k in keys}) == len(keys)
    counts = Counter("".join(k[4:36] for k in keys))
    assert set(counts) == set(api_keys.ALPHABET)
    expected = 2000 * 32 / 62  # ~1032 per character
    assert all(0.8 * expected < n < 1.2 * expected for n in counts.values()), counts


def test_every_single_character_typo_and_adjacent_swap_is_refused_by_the_checksum() -> None:
    key = generate().key
    for position in range(4, len(key)):
        typo = key[:position] + _other_char(key[position]) + key[position + 1 :]
        with pytest.raises(InvalidApiKey, match="checksum mismatch"):
            parse(typo)
    for position in range(4, len(key) - 1):
        if key[position] != key[position + 1]:
            swapped = key[:position] + key[position + 1] + key[position] + key[position + 2 :]
            with pytest.raises(InvalidApiKey, match="checksum mismatch"):
                parse(swapped)


def test_malformed_keys_are_refused_without_echoing_them() -> None:
    key = generate().key
    cases = {
        "ghp_" + key[4:]: "start with fst_",
        "FST_" + key[4:]: "start with fst_",
        key[:-1]: "wrong length",
        key + "0": "wrong length",
        key[:20] + "-" + key[21:]: "only letters and digits",
        key[:20] + "é" + key[21:]: "only letters and digits",
    }
    for candidate, reason in cases.items():
        with pytest.raises(InvalidApiKey, match=reason) as info:
            parse(candidate)
        assert key[4:14] not in str(info.value)
        assert candidate not in str(info.value)


def test_storage_holds_a_hash_that_verifies_only_its_own_key() -> None:
    first, second = generate(), generate()
    assert first.key not in first.hash
    assert first.key[14:] not in first.hash
    assert verify(first.key, first.hash)
    assert not verify(second.key, first.hash)
    assert not verify(first.key, first.hash[:-1] + ("0" if first.hash[-1] != "0" else "1"))
    assert hash_key(first.key) == hash_key(first.key)


def test_reprs_never_show_the_key() -> None:
    generated = generate()
    for text in (repr(generated), str(generated), repr(parse(generated.key))):
        assert generated.key not in text
        assert generated.key[14:] not in text
    assert generated.lookup_id in repr(generated)


# ---- secret scanning -----------------------------------------------------------------------


def test_the_detect_secrets_plugin_matches_this_module_format() -> None:
    plugin = import_file_as_module(str(PLUGIN_FILE))
    assert plugin.PREFIX == api_keys.KEY_PREFIX
    assert plugin.ALPHABET == api_keys.ALPHABET
    assert plugin.RANDOM_LENGTH == api_keys.RANDOM_LENGTH
    assert plugin.CHECKSUM_LENGTH == api_keys.CHECKSUM_LENGTH
    detector = plugin.FastapiSecretsTemplateApiKeyDetector()
    for _ in range(50):
        key = generate().key
        assert list(detector.analyze_string(f'API_KEY="{key}"')) == [key]
        typo = key[:-1] + _other_char(key[-1])
        assert list(detector.analyze_string(f"token: {typo}")) == []
        assert list(detector.analyze_string(f"x{key}")) == []  # part of a longer word


def test_the_baseline_loads_the_plugin_by_a_repo_relative_path() -> None:
    import json

    baseline = json.loads((ROOT / ".secrets.baseline").read_text())
    entries = [p for p in baseline["plugins_used"] if p.get("path")]
    assert entries == [
        {
            "name": "FastapiSecretsTemplateApiKeyDetector",
            "path": "file://.ci/detect_secrets_plugins.py",
        }
    ]


def _hook(baseline: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    # What the pre-commit hook runs, from the repo root (the plugin path is relative to it).
    return subprocess.run(
        [tool("detect-secrets-hook"), "--baseline", str(baseline), *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_file_holding_a_generated_key_is_flagged_by_the_project_configuration(
    tmp_path: Path,
) -> None:
    baseline = tmp_path / "baseline.json"  # the hook insists a baseline inside git is staged
    baseline.write_text((ROOT / ".secrets.baseline").read_text())
    key = generate().key
    leaked = tmp_path / "client.py"
    leaked.write_text(f"import httpx\n\nhttpx.get(url, headers={{'X-API-Key': '{key}'}})\n")
    result = _hook(baseline, leaked)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Secret Type: {SECRET_TYPE}" in result.stdout
    assert f"{leaked}:3" in result.stdout

    typo = tmp_path / "notes.md"
    typo.write_text(f"a key with a typo: {key[:-1]}{_other_char(key[-1])}\n")
    result = _hook(baseline, typo)
    assert SECRET_TYPE not in result.stdout
