"""KMS SDKs are optional: importing the data-key modules loads none, and a reference whose extra
is missing fails naming the extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.server import ROOT

SDK_MODULES = ("boto3", "botocore", "google", "azure", "hvac")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_data_key_modules_import_no_sdk() -> None:
    result = _python(
        "import sys, app.keys.data, app.keys.column, app.keys.kms\n"
        "import app.security.api_keys, app.security.totp\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SDK_MODULES!r}))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("hidden", "reference", "extra"),
    [
        ("boto3", "aws-kms://alias/data", "aws"),
        ("google", "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "gcp"),
        ("azure", "azure-kv-key://vault/key", "azure"),
        ("hvac", "vault-transit://transit/key", "vault"),
    ],
)
def test_a_missing_extra_names_the_extra(hidden: str, reference: str, extra: str) -> None:
    # As if the extra were not installed: the import of its SDK fails.
    result = _python(
        f"import sys\nsys.modules[{hidden!r}] = None\n"
        "from app.keys.kms import KmsKeys\n"
        "from app.secrets.references import MissingExtraError\n"
        "try:\n"
        f"    KmsKeys().unwrap({reference!r}, b'blob')\n"
        "except MissingExtraError as exc:\n"
        "    print(exc)\n"
    )
    assert result.returncode == 0, result.stderr
    assert f"pip install '.[{extra}]'" in result.stdout
    assert reference.split("://")[0] + "://" in result.stdout
