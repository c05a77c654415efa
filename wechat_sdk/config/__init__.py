"""Configuration: pydantic models, JSON5 loading, ``${VAR}`` substitution, accounts."""

from wechat_sdk.config.accounts import (
    DEFAULT_ACCOUNT_ID,
    AccountSet,
    ResolvedAccount,
    asked_account_id,
    normalize_account_id,
    resolve_accounts,
)
from wechat_sdk.config.errors import ConfigError, ConfigProblem
from wechat_sdk.config.loader import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    accounts_of,
    config_path,
    did_you_mean,
    load_config,
    located,
    parse_config,
    validation_problems,
)
from wechat_sdk.config.models import (
    AccountConfig,
    Config,
    DraftChunkConfig,
    GroupConfig,
    HealthConfig,
    PacingConfig,
    PuppetOptions,
    TlsOptions,
    ToolPolicy,
    WechatConfig,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_CONFIG_PATH",
    "AccountConfig",
    "AccountSet",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DraftChunkConfig",
    "GroupConfig",
    "HealthConfig",
    "PacingConfig",
    "PuppetOptions",
    "ResolvedAccount",
    "TlsOptions",
    "ToolPolicy",
    "WechatConfig",
    "accounts_of",
    "asked_account_id",
    "config_path",
    "did_you_mean",
    "load_config",
    "located",
    "normalize_account_id",
    "parse_config",
    "resolve_accounts",
    "validation_problems",
]
