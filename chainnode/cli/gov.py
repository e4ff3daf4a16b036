"""`chainnode gov`: the committee's proposals and votes, and the permission commands, from
the command line (docs/governance.md has the rules, docs/cli.md an example of each).

    chainnode gov propose set-config tx_count_limit 500 --key gov0.key
    chainnode gov propose add-sealer --cert node4/node.pem --addr /ip4/10.0.0.5/tcp/30300 --key gov0.key
    chainnode gov vote 3 yes --key gov1.key
    chainnode gov list | show 3 | committee | kinds | account 0x…
    chainnode gov acl set 0x<contract> withdraw allow 0x<a>,0x<b> --key deployer.key

Arguments are typed per kind (hex for addresses, keys and serials, integers, true/false,
comma-separated address lists, `null`), checked here with the chain's own rules before
anything is signed, and refused with the kind's usage when they do not fit.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import click

from chainnode.cli.common import PASSWORD_ENV, emit
from chainnode.cli.rpc import (
    RECEIPT_TIMEOUT_S_DEFAULT,
    load_account,
    print_table,
    rpc_options,
    run_with_client,
    show_json,
    spinner,
    wait_receipt,
)
from chainnode.crypto import ADDRESS_BYTES
from chainnode.protocol.dialaddr import DialAddrError, parse_dial_addr
from chainnode.protocol.hexstr import HexError, parse_hex, to_hex
from chainnode.protocol.versions import VersionError, format_version, parse_version
from chainnode.system.governance import KINDS, REVOCATION_ID_BYTES, GovernanceError, check_params

PUB_LENGTHS = (32, 65)  # ed25519, sm
NODE_KINDS = ("add_sealer", "add_observer")
CERT_KINDS = ("add_sealer", "add_observer", "remove_node", "set_weight", "set_addrs", "revoke_cert")
REQUEST_KINDS = ("add_sealer", "add_observer", "set_addrs")

# What `propose KIND` takes on the command line (the chain's own description is KINDS[k].usage).
CLI_USAGE = {
    "add_sealer": "CONSENSUS_PUB PEER_ID [WEIGHT] [--addr ADDR ...]  |  --cert NODE.pem [WEIGHT] [--addr ...]  |  --request REQ [WEIGHT]",
    "add_observer": "CONSENSUS_PUB PEER_ID [WEIGHT] [--addr ADDR ...]  |  --cert NODE.pem [WEIGHT] [--addr ...]  |  --request REQ [WEIGHT]",
    "remove_node": "CONSENSUS_PUB  |  --cert NODE.pem",
    "set_addrs": "CONSENSUS_PUB --addr ADDR ...  |  --cert NODE.pem --addr ADDR ...  |  --request REQ",
    "set_weight": "CONSENSUS_PUB WEIGHT  |  --cert NODE.pem WEIGHT",
    "set_config": "NAME VALUE  (compatibility_version VERSION)",
    "set_governor": "ADDRESS WEIGHT",
    "set_rates": "PARTICIPATION_PCT WIN_PCT",
    "set_deploy_open": "true|false",
    "grant_deploy": "ADDRESS",
    "revoke_deploy": "ADDRESS",
    "freeze_account": "ADDRESS [REASON ...]",
    "unfreeze_account": "ADDRESS",
    "set_method_acl": "CONTRACT METHOD allow|deny [ADDRESS[,ADDRESS...] ...]",
    "clear_method_acl": "CONTRACT METHOD",
    "revoke_cert": "REVOCATION_ID ...  |  --cert CHAIN.pem  |  --crl FILE.crl --issuer ISSUER.pem",
    "register_name": "NAME ADDRESS|null",
}
assert set(CLI_USAGE) == set(KINDS), "every proposal kind needs its command-line usage"


# ---- running against a node ---------------------------------------------------------------


def _key_options(fn: Callable) -> Callable:
    for option in reversed([
        click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False), help="The signer's key file (a governor's, for proposals and votes)."),
        click.option("--password-file", type=click.Path(dir_okay=False), help=f"The key's password file (else ${PASSWORD_ENV}, else a prompt)."),
        click.option("--timeout-s", type=click.FloatRange(0.1, 3600), default=RECEIPT_TIMEOUT_S_DEFAULT, show_default=True, help="How long to wait for the receipt, in seconds."),
    ]):
        fn = option(fn)
    return fn


async def _transact(client: Any, account: Any, to: bytes, method: str, args: list, as_json: bool, timeout_s: float) -> dict:
    """Sign, send, wait: the receipt (JSON view)."""
    suite = (await client.group_info())["suite"]
    if account.suite.name != suite:
        raise click.ClickException(f"the key is a {account.suite.name} key but the chain uses {suite}; use a key of this chain's suite")
    tx = await client.build(account, to, method, args)
    tx_hash = to_hex(await client.send_transaction(tx))
    with spinner(as_json, f"waiting for the receipt of {tx_hash[:18]}…"):
        return await wait_receipt(client, tx_hash, timeout_s)


def _hint(message: str, pid: int | None = None) -> str:
    if "is not a governor" in message:
        return "; sign with a governor's key (`chainnode gov committee` lists the governors)"
    if "unknown proposal kind" in message:
        return "; `chainnode gov kinds` lists them"
    if "can no longer be voted on" in message or "has already voted" in message:
        return f"; `chainnode gov show {pid if pid is not None else 'ID'}` shows the proposal"
    if "only the proposer" in message:
        return "; let it expire, or vote no"
    if "frozen" in message:
        return "; the committee can lift it: chainnode gov propose unfreeze-account ADDRESS"
    return ""


def _refused(what: str, receipt: dict, as_json: bool, pid: int | None = None) -> None:
    message = receipt["errorMessage"] or receipt["errorType"]
    if as_json:
        emit(True, receipt, [])
    click.echo(f"Error: {what} was refused in block {receipt['blockNumber']} ({receipt['errorType']}): {message}{_hint(message, pid)}", err=True)
    sys.exit(1)


# ---- typed arguments ----------------------------------------------------------------------


class _Args:
    """The positional ARGS of one kind, with errors that name the argument and the usage."""

    def __init__(self, kind: str, args: tuple[str, ...]) -> None:
        self.kind = kind
        self.args = list(args)

    def usage_error(self, problem: str) -> click.UsageError:
        return click.UsageError(f"{problem}\nusage: chainnode gov propose {self.kind.replace('_', '-')} {CLI_USAGE[self.kind]}\n       ({KINDS[self.kind].usage})")

    def count(self, lo: int, hi: int) -> None:
        n = len(self.args)
        if not lo <= n <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise self.usage_error(f"{self.kind} takes {want} argument(s); got {n}{': ' + ' '.join(self.args) if self.args else ''}")

    def _bad(self, i: int, name: str, problem: str) -> click.BadParameter:
        return click.BadParameter(f"{problem}; got {self.args[i]!r}", param_hint=f"argument {i + 1} ({name}) of {self.kind}")

    def hex(self, i: int, name: str, lengths: tuple[int, ...], hint: str = "") -> bytes:
        try:
            value = parse_hex(self.args[i])
        except HexError:
            raise self._bad(i, name, f"must be hex{hint}") from None
        if len(value) not in lengths:
            sizes = " or ".join(f"{n} bytes ({2 * n} hex digits)" for n in lengths)
            raise self._bad(i, name, f"must be {sizes}, 0x optional{hint}")
        return value

    def address(self, i: int, name: str) -> bytes:
        return self.hex(i, name, (ADDRESS_BYTES,))

    def pub(self, i: int) -> bytes:
        return self.hex(i, "CONSENSUS_PUB", PUB_LENGTHS, hint=" (the node's consensus public key: `chainnode key show node.key`, or pass --cert NODE.pem)")

    def int(self, i: int, name: str) -> int:
        text = self.args[i].replace("_", "")
        try:
            return int(text, 10)
        except ValueError:
            try:
                return int(text, 0)
            except ValueError:
                raise self._bad(i, name, "must be an integer") from None

    def bool(self, i: int, name: str) -> bool:
        text = self.args[i].lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise self._bad(i, name, "must be true or false")

    def addresses(self, start: int, name: str) -> list[bytes]:
        out = []
        for i in range(start, len(self.args)):
            for part in self.args[i].split(","):
                part = part.strip()
                if not part:
                    continue
                try:
                    value = parse_hex(part, length=ADDRESS_BYTES)
                except HexError:
                    raise self._bad(i, name, f"{part!r} is not an address (0x + 40 hex digits; separate several with commas)") from None
                out.append(value)
        return out


def _read_cert(path: str, kind: str) -> Any:
    """The first certificate of a PEM file (a node's chain file), checked to be a node's
    unless it is to be revoked."""
    from chainnode.security.certs import CertificateError, read_certs

    try:
        leaf = read_certs(path)[0]
    except CertificateError as exc:
        raise click.BadParameter(str(exc), param_hint="--cert") from None
    if kind != "revoke_cert" and leaf.kind != "node":
        raise click.BadParameter(f"{path} starts with a {leaf.label()}, not a node certificate (the NODE.pem `chainnode ca issue-node` writes)",
                                 param_hint="--cert")
    return leaf


def revocation_ids(cert: str | None, crl: str | None, issuer: str | None) -> list[bytes]:
    """What `revoke-cert` revokes, from a chain file (its first certificate, issued by the
    second) or from a CRL signed by `issuer`."""
    from chainnode.security.certs import CertificateError, read_cert_file, read_certs, read_crl_file, revoked_by

    if crl is not None:
        if issuer is None:
            raise click.UsageError("--crl needs --issuer: the certificate of the CA or agency that signed the revocation list")
        try:
            return sorted(revoked_by(read_crl_file(crl), read_cert_file(issuer)))
        except CertificateError as exc:
            raise click.BadParameter(str(exc), param_hint="--crl / --issuer") from None
    assert cert is not None
    try:
        certs = read_certs(cert)
    except CertificateError as exc:
        raise click.BadParameter(str(exc), param_hint="--cert") from None
    if len(certs) < 2:
        raise click.BadParameter(f"{cert} holds one certificate; a revocation names its issuer too: give the chain file "
                                 "(the certificate, then its issuer's)", param_hint="--cert")
    return [certs[0].revocation_id(certs[1])]


def _dial_addrs(addrs: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return tuple(parse_dial_addr(a) for a in addrs)
    except DialAddrError as exc:
        raise click.BadParameter(str(exc), param_hint="--addr") from None


def parse_proposal(kind_text: str, args: tuple[str, ...], *, cert: str | None = None, addrs: tuple[str, ...] = (), crl: str | None = None,
                   issuer: str | None = None, request: str | None = None) -> tuple[str, list]:
    """(kind, params) from the command line; click errors (exit 2) that name what is wrong."""
    kind = kind_text.strip().lower().replace("-", "_")
    addrs = _dial_addrs(addrs)
    if kind not in KINDS:
        listed = "\n".join(f"  {k.replace('_', '-'):<18} {CLI_USAGE[k]}" for k in KINDS)
        raise click.BadParameter(f"unknown proposal kind {kind_text!r}; the kinds are:\n{listed}", param_hint="KIND")
    if cert is not None and kind not in CERT_KINDS:
        raise click.UsageError(f"--cert applies to {', '.join(CERT_KINDS)}; not to {kind}")
    if addrs and kind not in NODE_KINDS + ("set_addrs",):
        raise click.UsageError(f"--addr applies to {', '.join(NODE_KINDS)} and set_addrs; not to {kind}")
    if request is not None:
        if kind not in REQUEST_KINDS:
            raise click.UsageError(f"--request applies to {', '.join(REQUEST_KINDS)}; not to {kind}")
        if cert is not None or addrs:
            raise click.UsageError("--request carries the node's key, peer id and addresses: leave out --cert and --addr")
        from chainnode.node.ceremony import CeremonyError, read_request

        try:
            node_request = read_request(Path(request))
        except CeremonyError as exc:
            raise click.BadParameter(str(exc), param_hint="--request") from None
        if kind == "set_addrs":
            _Args(kind, args).count(0, 0)
            return kind, [node_request.consensus_pub, list(node_request.addrs)]
        a = _Args(kind, args)
        a.count(0, 1)
        weight = a.int(0, "WEIGHT") if a.args else 1
        return kind, [node_request.consensus_pub, node_request.peer_id, weight, list(node_request.addrs)]
    if (crl is not None or issuer is not None) and kind != "revoke_cert":
        raise click.UsageError(f"--crl and --issuer apply to revoke_cert; not to {kind}")
    a = _Args(kind, args)
    leaf = _read_cert(cert, kind) if cert is not None and kind != "revoke_cert" else None
    if kind in NODE_KINDS:
        if leaf is not None:
            a.count(0, 1)
            pub, peer_id, rest = leaf.public_key, leaf.peer_id, 0
        else:
            a.count(2, 3)
            pub, peer_id, rest = a.pub(0), a.args[1], 2
        weight = a.int(rest, "WEIGHT") if len(a.args) > rest else None
        params: list = [pub, peer_id]
        if weight is not None or addrs:
            params.append(1 if weight is None else weight)
        if addrs:
            params.append(list(addrs))
    elif kind == "set_addrs":
        a.count(0 if leaf is not None else 1, 0 if leaf is not None else 1)
        params = [leaf.public_key if leaf is not None else a.pub(0), list(addrs)]
    elif kind in ("remove_node", "set_weight"):
        extra = 1 if kind == "set_weight" else 0
        if leaf is not None:
            a.count(extra, extra)
            params = [leaf.public_key]
        else:
            a.count(1 + extra, 1 + extra)
            params = [a.pub(0)]
        if extra:
            params.append(a.int(len(a.args) - 1, "WEIGHT"))
    elif kind == "set_config":
        a.count(2, 2)
        if a.args[0] == "compatibility_version" and "." in a.args[1]:
            try:
                params = [a.args[0], parse_version(a.args[1])]
            except VersionError as exc:
                raise a._bad(1, "VALUE", str(exc)) from None
        else:
            params = [a.args[0], a.int(1, "VALUE")]
    elif kind == "set_governor":
        a.count(2, 2)
        params = [a.address(0, "ADDRESS"), a.int(1, "WEIGHT")]
    elif kind == "set_rates":
        a.count(2, 2)
        params = [a.int(0, "PARTICIPATION_PCT"), a.int(1, "WIN_PCT")]
    elif kind == "set_deploy_open":
        a.count(1, 1)
        params = [a.bool(0, "true|false")]
    elif kind in ("grant_deploy", "revoke_deploy", "unfreeze_account"):
        a.count(1, 1)
        params = [a.address(0, "ADDRESS")]
    elif kind == "freeze_account":
        if not a.args:
            a.count(1, 1)
        params = [a.address(0, "ADDRESS")]
        if len(a.args) > 1:
            params.append(" ".join(a.args[1:]))
    elif kind == "set_method_acl":
        if len(a.args) < 3:
            a.count(3, 3)
        mode = a.args[2].lower()
        if mode not in ("allow", "deny"):
            raise a._bad(2, "MODE", "must be allow (only the listed addresses may call) or deny (everyone but them)")
        params = [a.address(0, "CONTRACT"), a.args[1], mode, a.addresses(3, "ADDRESSES")]
    elif kind == "clear_method_acl":
        a.count(2, 2)
        params = [a.address(0, "CONTRACT"), a.args[1]]
    elif kind == "revoke_cert":
        if cert is not None or crl is not None:
            a.count(0, 0)
            params = [revocation_ids(cert, crl, issuer)]
        else:
            if not a.args:
                a.count(1, 1)
            lengths = tuple(range(REVOCATION_ID_BYTES[0], REVOCATION_ID_BYTES[1] + 1))
            params = [[a.hex(i, "REVOCATION_ID", lengths, hint=" (as `chainnode ca show` prints it)") for i in range(len(a.args))]]
    else:  # register_name
        a.count(2, 2)
        params = [a.args[0], None if a.args[1].lower() in ("null", "none", "-") else a.address(1, "ADDRESS")]
    return kind, params


# ---- views --------------------------------------------------------------------------------


def _short(value: Any, keep: int = 6) -> str:
    """A compact form of a JSON view for one table cell: long hex shortened, a list's items
    space-separated as they are typed on the command line (nested lists comma-separated)."""
    from rich.markup import escape

    def one(v: Any, sep: str) -> str:
        if isinstance(v, str) and v.startswith("0x") and len(v) > 2 + 2 * keep + 1:
            return f"{v[:2 + keep]}…{v[-keep:]}"
        if isinstance(v, list):
            return sep.join(one(x, ",") for x in v)
        if isinstance(v, str) and len(v) > 32 and not v.startswith("/"):  # a peer id, a long reason
            return f"{v[:12]}…{v[-8:]}"
        if isinstance(v, str):
            return v
        return show_json(v)

    return escape(one(value, " "))


def _status_line(p: dict) -> str:
    status = p["status"]
    if status == "open":
        return (f"open: {p['votedWeight']} of {p['totalWeight']} weight voted, {p['yesWeight']} yes; it passes at "
                f"{p['participationPct']}% participation and {p['winPct']}% yes; open until block {p['expiryHeight']}")
    if status in ("executed", "failed", "rejected"):
        return f"{status} in block {p['decidedHeight']}" + (f": {p['result']}" if p["result"] else "")
    if status == "revoked":
        return f"revoked by its proposer in block {p['decidedHeight']}"
    return f"{status}: not decided by block {p['expiryHeight']}"


def _proposal_lines(p: dict) -> list[str]:
    lines = [
        f"proposal {p['id']}: {p['kind']} {show_json(p['params'])}",
        f"status:    {_status_line(p)}",
        f"proposer:  {p['proposer']} (block {p['createdHeight']})",
        f"votes:     {p['yesWeight']} yes / {p['votedWeight']} voted / {p['totalWeight']} total weight",
    ]
    for v in p["votes"]:
        lines.append(f"           {'yes' if v['yes'] else 'no '}  {v['governor']}")
    return lines


def _next_step(p: dict) -> str | None:
    status = p["status"]
    if status == "open":
        return f"next:      other governors vote with `chainnode gov vote {p['id']} yes --key GOVERNOR.key` (or no); the proposer may `chainnode gov revoke {p['id']}`"
    if status == "executed" and p["kind"] in ("add_sealer", "add_observer", "remove_node", "set_weight"):
        return f"note:      membership changes take effect at block {p['decidedHeight'] + 2} (two blocks after this one)"
    if status == "failed":
        return "next:      nothing was changed; fix the cause and propose again"
    return None


def _report(p: dict, receipt: dict, as_json: bool) -> None:
    """After a propose or vote: the proposal as it now stands; exit 1 if it failed to apply."""
    data = {"proposalId": p["id"], "status": p["status"], "result": p["result"], "transactionHash": receipt["transactionHash"],
            "blockNumber": receipt["blockNumber"], "proposal": p}
    lines = _proposal_lines(p)
    step = _next_step(p)
    if step:
        lines.append(step)
    emit(as_json, data, lines)
    if p["status"] == "failed":
        click.echo(f"Error: proposal {p['id']} passed but could not be applied: {p['result']}", err=True)
        sys.exit(1)


# ---- commands -----------------------------------------------------------------------------


@click.group("gov")
def gov_group() -> None:
    """Governance: the committee's proposals and votes, permissions (docs/governance.md)."""


@gov_group.command("propose")
@click.argument("kind_text", metavar="KIND")
@click.argument("args", nargs=-1, metavar="[ARGS]...")
@click.option("--cert", "cert_path", type=click.Path(dir_okay=False), help="add-sealer / add-observer / remove-node / set-weight: take the node's consensus key and peer id from its certificate chain file; revoke-cert: revoke the first certificate of this chain file.")
@click.option("--crl", "crl_path", type=click.Path(dir_okay=False), help="revoke-cert: revoke every serial of this X.509 revocation list (with --issuer).")
@click.option("--issuer", "issuer_path", type=click.Path(dir_okay=False), help="revoke-cert --crl: the certificate of the CA or agency that signed the list.")
@click.option("--addr", "addrs", multiple=True, metavar="ADDR",
              help="add-sealer / add-observer / set-addrs: where other nodes dial it, /ip4/10.0.0.5/tcp/30300, /dns/node5.bank.example/tcp/30300 or host:port (repeatable).")
@click.option("--request", "request_path", type=click.Path(dir_okay=False),
              help="add-sealer / add-observer / set-addrs: the node's request file (`chainnode init --request`): its key, peer id and addresses, signature checked.")
@click.option("--force", is_flag=True, help="set-config compatibility_version: propose even if a sealer is not seen running that version.")
@click.option("--expiry-blocks", type=click.IntRange(1, 1_000_000), default=None, help="Blocks the proposal stays open (default 7200).")
@click.option("--no-precheck", is_flag=True, hidden=True, help="Send without checking the parameters here first (tests).")
@_key_options
@rpc_options
def gov_propose(kind_text: str, args: tuple[str, ...], cert_path: str | None, crl_path: str | None, issuer_path: str | None, addrs: tuple[str, ...],
                request_path: str | None, force: bool, expiry_blocks: int | None, no_precheck: bool,
                key_path: str, password_file: str | None, timeout_s: float, rpc_url: str, group: str, as_json: bool) -> None:
    """Propose a change of KIND (`chainnode gov kinds` lists them, with their ARGS).

    Your own yes vote is counted at once: with a single governor (admin mode) the proposal
    executes in the same transaction. Kinds may be written with dashes or underscores.
    """
    kind, params = parse_proposal(kind_text, args, cert=cert_path, addrs=addrs, crl=crl_path, issuer=issuer_path, request=request_path)
    if not no_precheck:
        try:
            check_params(kind, params)
        except GovernanceError as exc:
            raise click.UsageError(f"{exc} (checked here, nothing was sent: the chain refuses it too)") from None
    if kind == "set_config" and params[0] == "compatibility_version" and not force:
        _check_sealers_run(params[1], rpc_url, group)
    account = load_account(key_path, password_file)
    call_args: list = [kind, params] + ([expiry_blocks] if expiry_blocks is not None else [])
    _committee_tx(account, "propose", call_args, None, f"the {kind} proposal", timeout_s, rpc_url, group, as_json)


def _check_sealers_run(version: int, rpc_url: str, group: str) -> None:
    """Raising the compatibility version while a sealer runs older software stops that
    sealer (it refuses the new rules): check first what every sealer's handshake said."""

    async def body(client: Any) -> tuple[list, list, dict]:
        return await client.request("getSealerList"), (await client.request("getSyncStatus"))["peers"], await client.request("getClientVersion")

    sealers, peers, own = run_with_client(rpc_url, group, body)
    seen = {p["nodeId"]: p.get("version") for p in peers}
    seen[own.get("nodeId", "")] = own["version"]
    behind = []
    for s in sealers:
        running = seen.get(s["nodeId"])
        if running is None or parse_version(running) < version:
            behind.append(f"{s['nodeId']} ({'not connected to this node' if running is None else running})")
    if behind:
        raise click.ClickException(
            f"not every sealer is seen running chainnode {format_version(version)} or newer: {', '.join(behind)}; those sealers would stop "
            "when the vote passes. Upgrade them first (docs/operations.md, \"Rolling upgrades\"), or pass --force")


def _committee_tx(account: Any, method: str, args: list, pid: int | None, what: str, timeout_s: float,
                  rpc_url: str, group: str, as_json: bool) -> None:
    """Send `method(*args)` to the committee; report the proposal as it stands after it
    (`pid`, or the new one for a propose), or why the chain refused the transaction."""
    from chainnode.system.addresses import COMMITTEE_ADDRESS

    async def body(client: Any) -> tuple[dict, dict | None]:
        receipt = await _transact(client, account, COMMITTEE_ADDRESS, method, args, as_json, timeout_s)
        if receipt["status"] != 0:
            return receipt, None
        return receipt, await client.request("getProposal", receipt["output"] if pid is None else pid)

    receipt, proposal = run_with_client(rpc_url, group, body)
    if proposal is None:
        _refused(what, receipt, as_json, pid)
    _report(proposal, receipt, as_json)


def _proposal_id(text: str) -> int:
    try:
        pid = int(text, 10)
    except ValueError:
        pid = 0
    if pid < 1:
        raise click.BadParameter(f"must be a proposal id (1, 2, ...; `chainnode gov list` shows them); got {text!r}", param_hint="ID")
    return pid


@gov_group.command("vote")
@click.argument("id_text", metavar="ID")
@click.argument("choice", metavar="yes|no", type=click.Choice(["yes", "no", "true", "false"], case_sensitive=False))
@_key_options
@rpc_options
def gov_vote(id_text: str, choice: str, key_path: str, password_file: str | None, timeout_s: float, rpc_url: str, group: str, as_json: bool) -> None:
    """Vote yes or no on open proposal ID; the vote that makes it pass executes it."""
    pid = _proposal_id(id_text)
    yes = choice.lower() in ("yes", "true")
    account = load_account(key_path, password_file)
    _committee_tx(account, "vote", [pid, yes], pid, f"the vote on proposal {pid}", timeout_s, rpc_url, group, as_json)


@gov_group.command("revoke")
@click.argument("id_text", metavar="ID")
@_key_options
@rpc_options
def gov_revoke(id_text: str, key_path: str, password_file: str | None, timeout_s: float, rpc_url: str, group: str, as_json: bool) -> None:
    """Withdraw your own open proposal ID."""
    pid = _proposal_id(id_text)
    account = load_account(key_path, password_file)
    _committee_tx(account, "revoke", [pid], pid, f"revoking proposal {pid}", timeout_s, rpc_url, group, as_json)


@gov_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Every proposal, not only the open ones.")
@rpc_options
def gov_list(show_all: bool, rpc_url: str, group: str, as_json: bool) -> None:
    """The open proposals (with --all: every proposal), oldest first."""

    async def body(client: Any) -> tuple[list, int]:
        out, first = [], 1
        while True:
            page = await client.request("getProposals", first, 100)
            out.extend(page["proposals"])
            first += 100
            if first >= page["nextProposalId"]:
                return out, page["blockNumber"]

    proposals, height = run_with_client(rpc_url, group, body)
    shown = proposals if show_all else [p for p in proposals if p["status"] == "open"]
    if as_json:
        emit(True, shown, [])
        return
    if show_all:
        title = f"{len(shown)} proposal(s) at block {height}"
    else:
        title = f"{len(shown)} open proposal(s) at block {height}" + (f" (of {len(proposals)}; --all shows every one)" if len(proposals) > len(shown) else "")
    print_table(title, ["id", "kind", "params", "proposer", "status", "yes/voted/total", "expiry"], [
        [p["id"], p["kind"], _short(p["params"]), _short(p["proposer"], 4), p["status"],
         f"{p['yesWeight']}/{p['votedWeight']}/{p['totalWeight']}", p["expiryHeight"]]
        for p in shown
    ])


@gov_group.command("show")
@click.argument("id_text", metavar="ID")
@rpc_options
def gov_show(id_text: str, rpc_url: str, group: str, as_json: bool) -> None:
    """One proposal: parameters, votes, status and result."""
    pid = _proposal_id(id_text)
    p = run_with_client(rpc_url, group, lambda c: c.request("getProposal", pid))
    lines = _proposal_lines(p)
    if p["status"] in ("open", "expired"):
        lines.insert(2, f"expiry:    open until block {p['expiryHeight']} (read at block {p['blockNumber']})")
    step = _next_step(p)
    if step:
        lines.append(step)
    emit(as_json, p, lines)


@gov_group.command("committee")
@rpc_options
def gov_committee(rpc_url: str, group: str, as_json: bool) -> None:
    """The governors, their weights, and how a proposal passes."""
    c = run_with_client(rpc_url, group, lambda client: client.request("getCommittee"))
    if as_json:
        emit(True, c, [])
        return
    print_table(f"{len(c['governors'])} governor(s), total weight {c['totalWeight']}", ["address", "weight"],
           [[g["address"], g["weight"]] for g in c["governors"]])
    click.echo(f"a proposal passes with {c['participationPct']}% of the weight voting and {c['winPct']}% of the voted weight yes")
    if len(c["governors"]) == 1:
        click.echo("admin mode: one governor, whose proposals execute at once (keep 3+ governors in production: docs/governance.md)")
    click.echo(f"next proposal id: {c['nextProposalId']}  (at block {c['blockNumber']})")


@gov_group.command("kinds")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def gov_kinds(as_json: bool) -> None:
    """The proposal kinds and their arguments (no node needed)."""
    if as_json:
        emit(True, {k: {"args": CLI_USAGE[k], "what": KINDS[k].usage} for k in KINDS}, [])
        return
    print_table(f"{len(KINDS)} proposal kinds (chainnode gov propose KIND ARGS...)", ["kind", "arguments", "what it does"],
           [[k.replace("_", "-"), CLI_USAGE[k], KINDS[k].usage.split(": ", 1)[-1]] for k in KINDS])


@gov_group.command("account")
@click.argument("address_text", metavar="ADDRESS")
@rpc_options
def gov_account(address_text: str, rpc_url: str, group: str, as_json: bool) -> None:
    """An account's (or contract's) permissions: frozen, may deploy, its admin."""
    address = to_hex(_address_param(address_text, "ADDRESS"))
    s = run_with_client(rpc_url, group, lambda c: c.request("getAccountStatus", address))
    lines = [
        f"account {s['address']} (at block {s['blockNumber']})",
        "frozen:     " + (f"YES{': ' + s['frozenReason'] if s['frozenReason'] else ''} (its transactions are refused; propose unfreeze-account to lift it)" if s["frozen"] else "no"),
        "may deploy: " + ("yes" + (" (deploying is open to all)" if s["deployOpen"] else " (granted)") if s["mayDeploy"] else "no (deploying is closed; propose grant-deploy for it)"),
    ]
    if s["contractAdmin"]:
        lines.append(f"contract:   yes, administered by {s['contractAdmin']} (its deployer: sets its method access lists)")
    emit(as_json, s, lines)


def _address_param(text: str, hint: str) -> bytes:
    try:
        return parse_hex(text, length=ADDRESS_BYTES)
    except HexError:
        raise click.BadParameter(f"must be an address (0x + 40 hex digits); got {text!r}", param_hint=hint) from None


@gov_group.group("acl")
def gov_acl() -> None:
    """Method access lists: a contract's admin (its deployer) sets its own; `propose set-method-acl` otherwise."""


@gov_acl.command("set")
@click.argument("contract_text", metavar="CONTRACT")
@click.argument("method", metavar="METHOD")
@click.argument("mode", metavar="allow|deny", type=click.Choice(["allow", "deny"], case_sensitive=False))
@click.argument("addresses", nargs=-1, metavar="[ADDRESS[,ADDRESS...]]...")
@_key_options
@rpc_options
def gov_acl_set(contract_text: str, method: str, mode: str, addresses: tuple[str, ...], key_path: str, password_file: str | None, timeout_s: float,
                rpc_url: str, group: str, as_json: bool) -> None:
    """As the contract's admin: allow only ADDRESSES to call METHOD, or deny them."""
    from chainnode.system.addresses import PERMISSION_ADDRESS

    a = _Args("set_method_acl", (contract_text, method, mode, *addresses))
    contract = a.address(0, "CONTRACT")
    if not method:
        raise click.BadParameter("must name a contract method", param_hint="METHOD")
    addrs = a.addresses(3, "ADDRESSES")
    account = load_account(key_path, password_file)
    _acl_send(rpc_url, group, as_json, account, PERMISSION_ADDRESS, "set_method_acl", [contract, method, mode.lower(), addrs], timeout_s)


@gov_acl.command("clear")
@click.argument("contract_text", metavar="CONTRACT")
@click.argument("method", metavar="METHOD")
@_key_options
@rpc_options
def gov_acl_clear(contract_text: str, method: str, key_path: str, password_file: str | None, timeout_s: float, rpc_url: str, group: str, as_json: bool) -> None:
    """As the contract's admin: anyone may call METHOD again."""
    from chainnode.system.addresses import PERMISSION_ADDRESS

    contract = _address_param(contract_text, "CONTRACT")
    account = load_account(key_path, password_file)
    _acl_send(rpc_url, group, as_json, account, PERMISSION_ADDRESS, "clear_method_acl", [contract, method], timeout_s)


def _acl_send(rpc_url: str, group: str, as_json: bool, account: Any, to: bytes, method: str, args: list, timeout_s: float) -> None:
    contract, name = to_hex(args[0]), args[1]

    async def body(client: Any) -> tuple[dict, dict | None]:
        receipt = await _transact(client, account, to, method, args, as_json, timeout_s)
        if receipt["status"] != 0:
            return receipt, None
        return receipt, await client.request("getMethodAcl", contract, name)

    receipt, acl = run_with_client(rpc_url, group, body)
    if acl is None:
        _refused(f"{method} of {name}", receipt, as_json)
    emit(as_json, {**acl, "transactionHash": receipt["transactionHash"]}, [_acl_line(acl), f"(transaction {receipt['transactionHash']}, block {receipt['blockNumber']})"])


def _acl_line(acl: dict) -> str:
    who = ", ".join(acl["addresses"]) or "nobody"
    if acl["mode"] == "allow":
        return f"{acl['method']} of {acl['contract']}: only {who} may call it"
    if acl["mode"] == "deny":
        return f"{acl['method']} of {acl['contract']}: everyone but {who} may call it"
    return f"{acl['method']} of {acl['contract']}: anyone may call it (no access list)"


@gov_acl.command("show")
@click.argument("contract_text", metavar="CONTRACT")
@click.argument("method", metavar="METHOD")
@rpc_options
def gov_acl_show(contract_text: str, method: str, rpc_url: str, group: str, as_json: bool) -> None:
    """Who may call METHOD of CONTRACT."""
    contract = to_hex(_address_param(contract_text, "CONTRACT"))
    acl = run_with_client(rpc_url, group, lambda c: c.request("getMethodAcl", contract, method))
    lines = [_acl_line(acl)]
    if acl["admin"]:
        lines.append(f"admin: {acl['admin']} (may change it: chainnode gov acl set|clear)")
    emit(as_json, acl, lines)
