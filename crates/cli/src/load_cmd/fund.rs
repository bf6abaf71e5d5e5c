//! Funding for `sealbridge load` (a development chain): check that `--chain` is the node's
//! chain, wait for an earlier run's inputs to settle, top up each participant's escrow by the
//! shortfall of what its planned obligations owe, and wait until the node credited the
//! deposits to the enclave.

use std::time::{Duration, Instant};

use alloy_primitives::U256;
use anyhow::{Context, bail};
use sealbridge_chain::{Chain, Sealbridge, rpc::RpcChain};
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::{DevChain, DevParticipant, RpcDevChain, participants};
use serde_json::{Value, json};

use super::LoadArgs;

/// Where `--chain` points by default: anvil's default endpoint.
const DEFAULT_CHAIN: &str = "http://127.0.0.1:8545";

/// Fund the participants for obligations owing `owed` (per participant), as `args` says;
/// the funding summary for the report (`null` when not funding).
pub(super) fn prepare(
    client: &NodeClient,
    info: &Value,
    args: &LoadArgs,
    owed: &[u128],
    show: bool,
) -> anyhow::Result<Value> {
    let funding_started = Instant::now();
    let chain = match (&args.chain, args.no_fund) {
        (_, true) => None,
        (Some(url), false) => Some(url.clone()),
        (None, false) if RpcChain::connect(DEFAULT_CHAIN).is_ok() => Some(DEFAULT_CHAIN.into()),
        (None, false) => {
            if show {
                eprintln!(
                    "no chain answers at {DEFAULT_CHAIN}: not funding (a node on its embedded \
                     chain funds its participants at setup; pass --chain URL otherwise)"
                );
            }
            None
        }
    };
    Ok(match chain {
        None => Value::Null,
        Some(url) => {
            let timeout = Duration::from_secs(args.fund_timeout);
            let mut sb = attach_checked(&url, info)?;
            let unsettled = wait_quiet(client, &url, timeout, show)?;
            let ps = participants(owed.len() as u32);
            let (mut summary, head) = fund(&mut sb, &url, &ps, owed, show)?;
            let t = wait_credited(client, &url, head, timeout, show)?;
            summary["credited_after_s"] = json!(t);
            summary["unsettled_before"] = json!(unsettled);
            summary["elapsed_s"] = json!(funding_started.elapsed().as_secs_f64());
            summary
        }
    })
}

/// The node's contracts on the chain at `url`, checked (`client_cmd::attach_node_chain`): the
/// same chain id, and the node's settlement contract (with the enclave's policy) at the address
/// the node gave. The sender is the chain's first prefunded account (`eth_accounts`).
fn attach_checked(url: &str, info: &Value) -> anyhow::Result<Sealbridge<RpcDevChain>> {
    let shown = crate::endpoint::endpoint(url);
    let rpc = RpcChain::connect(url).map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the chain at {} to fund the participants ({e}); \
             pass the node's chain with --chain URL, or --no-fund",
            shown
        )
    })?;
    let chain = RpcDevChain(rpc);
    let admin = chain.admin()?;
    crate::client_cmd::attach_node_chain(chain, url, info, admin)
}

/// Top up each participant's escrow to what it owes: mint the shortfall from the chain's first
/// prefunded account, deposit it from the participant's (impersonated) account. Returns the
/// funding summary and the chain's head after the deposits (every deposit so far must reach
/// the enclave, including earlier ones that already cover the obligations).
fn fund(
    sb: &mut Sealbridge<RpcDevChain>,
    url: &str,
    ps: &[DevParticipant],
    owed: &[u128],
    show: bool,
) -> anyhow::Result<(Value, u64)> {
    let (admin, token) = (sb.deployment.admin, sb.deployment.token);
    let (mut topped_up, mut minted, mut last_block) = (0u64, 0u128, None);
    for (i, (p, need)) in ps.iter().zip(owed).enumerate() {
        let have = sb.escrow_balance(p.account, token)?;
        let need_u = U256::from(*need);
        if have >= need_u {
            continue;
        }
        let short = need_u - have;
        if show {
            eprintln!(
                "funding participant {i} ({}): escrow {have}, owes up to {need}: depositing {short}",
                p.account
            );
        }
        sb.chain_mut().fund_and_unlock(p.account)?;
        sb.mint(admin, p.account, short)?;
        let r = sb.deposit(p.account, token, short)?;
        topped_up += 1;
        minted = minted.saturating_add(u128::try_from(short).unwrap_or(u128::MAX));
        last_block = Some(last_block.unwrap_or(0).max(r.block_number));
    }
    if show && topped_up == 0 {
        eprintln!("escrow already covers every participant's obligations: no deposit");
    }
    let head = sb.chain().block_number()?;
    let summary = json!({
        "chain": crate::endpoint::endpoint(url),
        "funder": admin,
        "participants_topped_up": topped_up,
        "deposited": minted.to_string(),
        "owed_total": owed.iter().sum::<u128>().to_string(),
        "deposit_block": last_block,
    });
    Ok((summary, head))
}

/// Wait (up to `timeout`) until nothing accepted earlier is still unsettled (returns how many
/// were at first): until then the enclave's view of escrow includes net positions the chain
/// does not hold yet, and the shortfall read from the chain would be wrong. Mines a block when
/// the node only waits for confirmations (a development chain may mine only on transactions).
fn wait_quiet(
    client: &NodeClient,
    url: &str,
    timeout: Duration,
    show: bool,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let rpc = RpcChain::connect(url)?;
    let (mut first, mut said) = (None, false);
    loop {
        let s = client.status().context("reading the node's status")?;
        let pending = s["pending_inputs"].as_u64().unwrap_or(0);
        let unsettled = *first.get_or_insert(pending);
        if pending == 0 {
            return Ok(unsettled);
        }
        if started.elapsed() > timeout {
            eprintln!(
                "warning: {pending} input(s) of an earlier run are still unsettled; funding from \
                 the chain's escrow anyway (some obligations may be refused)"
            );
            return Ok(unsettled);
        }
        if show && !said {
            eprintln!("waiting for {pending} unsettled input(s) of an earlier run to settle");
            said = true;
        }
        let included = s["last_included_sequence"].as_u64();
        if included.is_some() && included == s["last_signed_sequence"].as_u64() {
            rpc.mine()?;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until the node has credited every deposit up to `block` to the enclave (its relayer's
/// deposit cursor is past it); returns how long that took. The node only scans confirmed
/// blocks: on a development chain that mines only on transactions, mine empty blocks until the
/// deposit has its confirmations.
fn wait_credited(
    client: &NodeClient,
    url: &str,
    block: u64,
    timeout: Duration,
    show: bool,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let rpc = RpcChain::connect(url)?;
    let mut said = false;
    loop {
        let s = client.status().context("reading the node's status")?;
        let Some(cursor) = s["deposit_cursor"].as_u64() else {
            eprintln!("warning: the node does not report its deposit cursor; not waiting");
            return Ok(started.elapsed().as_secs_f64());
        };
        if cursor > block {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > timeout {
            bail!(
                "the node has not credited the deposits after {} s: its relayer scanned \
                 deposits up to block {} and they are in block {block} (health: {}, {})",
                timeout.as_secs(),
                cursor.saturating_sub(1),
                s["health"],
                s["relayer_error"]
            );
        }
        let confirmations = s["confirmations"].as_u64().unwrap_or(1).max(1);
        if rpc.block_number()? < block + confirmations - 1 {
            rpc.mine()?;
        }
        if show && !said {
            eprintln!(
                "waiting for the node to credit the deposits up to block {block} \
                 ({confirmations} confirmation(s))"
            );
            said = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
