"""`data_key_values{kid, state}`: sealed values per data key, counted in the database in the
background, labelled with the LIVE ring's view (current, previous, missing), so an operator sees
a rotation through: new key current -> old key `previous` with values -> 0 after `data
reencrypt` -> gone after `keys retire`; and values whose key left the ring show as `missing`."""

from __future__ import annotations

import json
from pathlib import Path

from app.keys.data import new_data_jwk
from app.security.sealed import sealed_columns
from tests.api.mfa_helpers import mfa_account
from tests.conftest import SettingsFactory
from tests.observability.scraping import value
from tests.observability.test_secret_metrics import scrape_until
from tests.secrets.helpers import write_atomically
from tests.support.app import client_for, resources, running_app


def test_the_sealed_columns_are_found_from_the_models() -> None:
    assert [column.name for column in sealed_columns()] == ["users.mfa_secret"]


async def test_values_per_kid_follow_a_rotation(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    old, new = new_data_jwk(now=1_700_000_000), new_data_jwk()
    ring_file = tmp_path / "data_keys"
    ring_file.write_text(json.dumps({"keys": [old]}))
    settings = make_settings(
        data_keys=None, data_keys_file=str(ring_file), data_key_metrics_seconds=0.2
    )
    async with running_app(settings) as app, client_for(app) as client:
        samples = await scrape_until(
            client, lambda s: value(s, "data_key_values", kid=old["kid"]) == 0.0
        )
        assert value(samples, "data_key_values", kid=old["kid"], state="current") == 0.0
        assert value(samples, "data_keys_in_ring") == 1.0
        assert value(samples, "data_key_values_counted_timestamp")
        for _ in range(2):
            await mfa_account(client)
        await scrape_until(
            client, lambda s: value(s, "data_key_values", kid=old["kid"], state="current") == 2.0
        )

        write_atomically(ring_file, json.dumps({"keys": [new, old]}))
        samples = await scrape_until(
            client, lambda s: value(s, "data_key_values", kid=new["kid"], state="current") == 0.0
        )
        assert value(samples, "data_key_values", kid=old["kid"], state="previous") == 2.0
        assert value(samples, "data_keys_in_ring") == 2.0

        # Retired too early (without re-encrypting): the values' key is missing.
        write_atomically(ring_file, json.dumps({"keys": [new]}))
        samples = await scrape_until(
            client, lambda s: value(s, "data_key_values", kid=old["kid"], state="missing") == 2.0
        )
        assert value(samples, "data_key_values", kid=new["kid"], state="current") == 0.0
        assert resources(app).store.entry("DATA_KEYS") is not None
