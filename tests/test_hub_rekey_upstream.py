"""`at-rest rekey` covers the forwarder's key for the upper hub ([upstream] signing_key): after a rotation the
township hub, restarted as its own process with only the new key, still forwards (docs/hub.md, "Levels")."""

from __future__ import annotations

import os

from click.testing import CliRunner

from gateway.at_rest.envelope import key_id_of
from gateway.at_rest.keyring import KeyRing
from gateway.at_rest.stored import write_stored
from gateway.cli import cli
from tests.fixtures.hub import LiveHub, batch_body, record, sample
from tests.test_hub_forward import stored, wait_for


def _at_rest(hub: LiveHub, current: str, keys: tuple[str, ...]) -> None:
    """[at_rest] sealing under `current`, reading `keys` (each a key file in the hub's keys/)."""
    text = hub.config_path.read_text(encoding="utf-8").split("\n[at_rest]")[0]
    lines = ["", "[at_rest]", 'cipher = "sm4"', f'current = "{current}"', "[at_rest.keys]"]
    for k in keys:
        f = hub.dir / "keys" / f"at-rest-{k}"
        if not f.exists():
            f.write_text(os.urandom(16).hex() + "\n")
        lines.append(f'{k} = {{file = "keys/at-rest-{k}"}}')
    hub.config_path.write_text(text + "\n".join(lines) + "\n", encoding="utf-8")


def _rekey(hub: LiveHub, command: str = "rekey") -> str:
    r = CliRunner().invoke(cli, ["hub", "--config", str(hub.config_path), "at-rest", command])
    assert r.exit_code == 0, r.output
    return r.output


def test_rekey_rewrites_the_upstream_key_and_the_hub_still_forwards(hub_levels) -> None:
    township, county = hub_levels(("township", "county"), process=True).hubs
    keys = township.dir / "keys"
    township.stop()
    # Both private keys sealed under k1, as `keys new` writes them with [at_rest] on.
    _at_rest(township, "k1", ("k1",))
    ring = KeyRing("k1", {"k1": bytes.fromhex((keys / "at-rest-k1").read_text().strip())})
    for name in ("hub.key", "upstream.key"):
        write_stored(keys / name, (keys / name).read_bytes(), ring)
    township.start()
    assert township.post("/api/v1/batches", batch_body([record("material", sample("material", 1))])).status_code == 200
    wait_for(lambda: len(stored(county)) == 1)

    township.stop()
    _at_rest(township, "k2", ("k2", "k1"))
    # The two private keys under k1 and the UI session key (made plaintext at the first start): all three rewritten.
    assert "secrets: 3 file(s) (2 k1, 1 plaintext); 3 rewritten as key k2" in _rekey(township)
    assert key_id_of((keys / "upstream.key").read_bytes()) == "k2"
    _at_rest(township, "k2", ("k2",))  # k1 gone: a key file left under it would no longer open
    assert "secrets: 3 file(s) (3 k2); 0 rewritten" in _rekey(township, "status")
    township.start()
    r = township.post("/api/v1/batches", batch_body([record("material", sample("material", 2))]))
    assert r.status_code == 200
    # The county accepted the forwarded batch: the township's forwarder opened its upstream key under k2.
    at_county = wait_for(lambda: len(stored(county)) == 2 and stored(county))
    assert at_county[("material", "WZ-0002")]["provenance"]["hubs"][0]["batch_id"] == r.json()["batch_id"]
