"""KMS tests run with the provider tests' clean cloud environment (no real cloud, no ~/.aws)."""

from tests.secrets.providers.conftest import clean_cloud_env

__all__ = ["clean_cloud_env"]
