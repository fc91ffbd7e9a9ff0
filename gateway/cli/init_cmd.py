"""`gateway init DIR` and `gateway keys new`."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.at_rest.keyring import OFF
from gateway.cli.main import Context, cli, domain_errors
from gateway.protocol.keys import new_key_pair

CONFIG_TEMPLATE = '''\
# 应急资源数据交换前置机 — gateway configuration.
# Relative paths are relative to this file. Secrets are never written here:
# use {{env = "NAME"}} or {{credential = "name"}} (systemd LoadCredential=).

[department]
code = "{code}"          # department code registered at the township hub
name = "{name}"

[hub]
url = "{hub_url}"
hub_key = "keys/hub.pub"     # the hub's public key, to verify receipts (from the hub operator)
# ca_file = "ca.pem"         # custom CA for the hub's TLS certificate
# client_cert = "client.pem" # optional TLS client certificate
# client_key = "client.key"
timeout = 30
batch_size = 2000

[keys]
signing_key = "keys/gateway.key"   # private key (mode 0600) of the suite below; its .pub goes to the hub
key_id = "{code}-1"
suite = "{suite}"              # ed25519 | sm2-sm3 (SM2 signatures over SM3, for the 商用密码 assessment)
# sm2_signer_id = "1234567812345678"  # sm2-sm3: the signer ID in Z (GB/T 35276 default)

# SM4-GCM at rest for the signing key file and the generated web secret; once set,
# `gateway --config F at-rest rekey` seals the key written now.
# [at_rest]
# cipher = "sm4"
# current = "k1"
# [at_rest.keys]
# k1 = {{credential = "at-rest-k1"}}   # 32 hex digits: openssl rand -hex 16

[state]
path = "state/gateway.db"

[web]
listen = "127.0.0.1:8710"
secret_key = {{env = "GATEWAY_WEB_SECRET"}}
api_token = {{env = "GATEWAY_API_TOKEN"}}   # token department systems send to the local API

[freshness]
default_days = 90            # 数据至少每季度更新一次
expiry_warn_days = [30, 90]
# [freshness.days]
# stock = 30

# [standard]
# category_codes = "gbt38565.csv"   # optional GB/T 38565 code table; structure is always checked
# extra_units = ["盏"]

# One [[sources]] block per source. Example: a table in the department's database.
# [[sources]]
# name = "stock_db"
# type = "sql"
# record_type = "stock"
# mapping = "mappings/stock_db.toml"
# strategy = "cursor"          # cursor | fingerprint | append | snapshot
# every = "15m"                # or cron = "0 2 * * *"
# [sources.settings]
# url = {{env = "STOCK_DB_URL"}}
# table = "dept_stock"
# key_columns = ["id"]
# cursor_column = "updated_at"
'''


@cli.command("init")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--code", default="dept001", show_default=True, help="Department code registered at the hub.")
@click.option("--name", default="某某部门", show_default=True, help="Department name.")
@click.option("--hub-url", default="http://127.0.0.1:8700", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing config and key.")
@click.option("--suite", "suite_name", default="ed25519", show_default=True,
              help="algorithm suite of the deployment: ed25519, or sm2-sm3 (sm2)")
def init(directory: Path, code: str, name: str, hub_url: str, force: bool, suite_name: str) -> None:
    """Write a commented starting config and a new signing key pair of the suite into DIRECTORY."""
    from gateway.protocol.suites import UnknownSuite, suite

    try:
        suite_name = suite(suite_name).name
    except UnknownSuite as e:
        raise click.ClickException(str(e)) from None
    directory.mkdir(parents=True, exist_ok=True)
    cfg = directory / "gateway.toml"
    key = directory / "keys" / "gateway.key"
    if not force and (cfg.exists() or key.exists()):
        raise click.ClickException(f"{cfg} or {key} exists already; use --force to overwrite")
    cfg.write_text(CONFIG_TEMPLATE.format(code=code, name=name, hub_url=hub_url, suite=suite_name), encoding="utf-8")
    (directory / "mappings").mkdir(exist_ok=True)
    new_key_pair(key, key.with_suffix(".pub"), suite_name)
    click.echo(f"wrote {cfg}")
    click.echo(f"wrote {key} (private, mode 0600) and {key.with_suffix('.pub')} (give this to the hub operator)")


@cli.group("keys")
def keys() -> None:
    """Signing keys."""


@keys.command("new")
@click.argument("private_key", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True)
@click.option("--suite", "suite_name", default=None,
              help="algorithm suite: ed25519, or sm2 (sm2-sm3: SM2 signatures over SM3); "
                   "default: keys.suite of --config, else ed25519")
@click.option("--sm2-signer-id", default=None, help="sm2-sm3: the signer ID in Z (default: keys.sm2_signer_id, "
                                                      "else 1234567812345678); written into the .pub line")
@click.pass_obj
@domain_errors
def keys_new(ctx: Context, private_key: Path, force: bool, suite_name: str | None, sm2_signer_id: str | None) -> None:
    """Create a key pair: PRIVATE_KEY (mode 0600) and PRIVATE_KEY.pub."""
    from gateway.protocol.suites import UnknownSuite, suite

    if private_key.exists() and not force:
        raise click.ClickException(f"{private_key} exists; use --force to replace it")
    if ctx is not None and ctx.config_path is not None:  # a rotation: the deployment's suite and ID
        from gateway.config import key_settings

        config_suite, config_id, ring = key_settings(ctx.config_path)
        suite_name, sm2_signer_id = suite_name or config_suite, sm2_signer_id or config_id
    else:
        ring = OFF
    try:
        s = suite(suite_name or "ed25519")
        new_key_pair(private_key, private_key.with_suffix(".pub"), s.name, sm2_signer_id, ring.seal)
    except (UnknownSuite, ValueError) as e:
        raise click.ClickException(str(e)) from None
    sealed = f", sealed with SM4 under at-rest key {ring.current}" if ring.on else ""
    click.echo(f"wrote {private_key} and {private_key.with_suffix('.pub')} (suite {s.name}{sealed})")
