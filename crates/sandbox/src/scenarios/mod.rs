//! The registry of scenarios: one file each, listed once in [`scenarios`]. Later issues add
//! theirs here.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use alloy_primitives::U256;
use sealbridge_core::{Shared, health::NodeState, metrics::Metrics};
use sealbridge_node::{Setup, gateway};
use sealbridge_store::Store;
use serde_json::Value;

use crate::{Scenario, World};

mod effect_mismatch;
mod exit_hatch;
mod fee_on_transfer_deposit;
mod foreign_policy_enclave;
mod foreign_token_deposit;
mod forged_checkpoint;
mod forged_receipt;
mod forged_simulated_quote;
mod forked_log_witnesses;
mod front_run_registration;
mod governor_drain;
mod handover_to_unallowed_measurement;
mod host_cut_batch_of_one;
mod host_rollback;
mod keyholder_minority;
mod log_spam;
mod lone_obligation;
mod lost_enclave;
mod lost_enclave_and_data;
mod oversized_statement;
mod pay_outsider;
mod phantom_deposit;
mod policy_change_midload;
mod power_loss_tiles;
mod previous_version_client;
mod relayer_replay;
mod replay_refused_envelope;
mod replay_set_flood;
mod root_rotation;
mod second_session;
mod settled_inputs_at_rest;
mod snapshot_other_build;
mod split_view;
mod stale_collateral;
mod stale_evidence;
mod suite_sunset;
mod tick_max;
mod tile_path_escape;
mod time_jump;
mod upgrade_handover;
mod withdraw_after_accept;
mod withdraw_then_pay;
mod withhold_withdrawal;
mod zero_challenge;

/// Every scenario, in the order `--scenario all` runs them.
pub fn scenarios() -> Vec<&'static dyn Scenario> {
    vec![
        &withdraw_then_pay::WithdrawThenPay,
        &withdraw_after_accept::WithdrawAfterAccept,
        &governor_drain::GovernorDrain,
        &pay_outsider::PayOutsider,
        &foreign_token_deposit::ForeignTokenDeposit,
        &fee_on_transfer_deposit::FeeOnTransferDeposit,
        &stale_evidence::StaleEvidence,
        &zero_challenge::ZeroChallenge,
        &front_run_registration::FrontRunRegistration,
        &oversized_statement::OversizedStatement,
        &exit_hatch::ExitHatch,
        &relayer_replay::RelayerReplay,
        &withhold_withdrawal::WithholdWithdrawal,
        &tile_path_escape::TilePathEscape,
        &power_loss_tiles::PowerLossTiles,
        &forged_receipt::ForgedReceipt,
        &forged_checkpoint::ForgedCheckpoint,
        &foreign_policy_enclave::ForeignPolicyEnclave,
        &host_rollback::HostRollback,
        &second_session::SecondSession,
        &lone_obligation::LoneObligation,
        &host_cut_batch_of_one::HostCutBatchOfOne,
        &time_jump::TimeJump,
        &tick_max::TickMax,
        &replay_set_flood::ReplaySetFlood,
        &log_spam::LogSpam,
        &settled_inputs_at_rest::SettledInputsAtRest,
        &replay_refused_envelope::ReplayRefusedEnvelope,
        &suite_sunset::SuiteSunset,
        &previous_version_client::PreviousVersionClient,
        &keyholder_minority::KeyholderMinority,
        &lost_enclave::LostEnclave,
        &lost_enclave_and_data::LostEnclaveAndData,
        &root_rotation::RootRotation,
        &upgrade_handover::UpgradeHandover,
        &handover_to_unallowed_measurement::HandoverToUnallowedMeasurement,
        &policy_change_midload::PolicyChangeMidload,
        &effect_mismatch::EffectMismatch,
        &phantom_deposit::PhantomDeposit,
        &split_view::SplitView,
        &forked_log_witnesses::ForkedLogWitnesses,
        &forged_simulated_quote::ForgedSimulatedQuote,
        &stale_collateral::StaleCollateral,
        &snapshot_other_build::SnapshotOtherBuild,
    ]
}

/// A token amount as evidence: a JSON number when it fits in 64 bits, else its decimal string.
pub(crate) fn amount(v: U256) -> Value {
    u64::try_from(v)
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(v.to_string()))
}

/// A `u128` amount as evidence (see [`amount`]).
pub(crate) fn amount128(v: u128) -> Value {
    amount(U256::from(v))
}

/// A revert name as evidence: the name, or `null` when the call went through.
pub(crate) fn revert(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

/// Where the tokens are, as evidence, with whether they are conserved.
pub(crate) fn totals(t: &crate::world::Totals) -> Value {
    serde_json::json!({
        "deposited": amount(t.deposited),
        "escrow": amount(t.escrow),
        "claimable": amount(t.claimable),
        "claimed": amount(t.claimed),
        "escaped": amount(t.escaped),
        "contract_balance": amount(t.contract_balance),
        "conserved": t.conserved(),
    })
}

/// The node's gateway state for the world's deployment over `store`, the tiles in `tiles_dir`
/// and `shared` (what the gateway serves: checkpoint, status), with no enclave behind it
/// (tile-path-escape, forked-log-witnesses).
pub(crate) fn gateway_state(
    w: &World<'_>,
    store: Store,
    tiles_dir: PathBuf,
    shared: Arc<Shared>,
) -> Arc<gateway::AppState> {
    let d = w.sb.deployment;
    let (core, _core_rx) = std::sync::mpsc::sync_channel(1);
    Arc::new(gateway::AppState {
        core,
        store: Mutex::new(store),
        tiles_dir,
        metrics: Arc::new(Metrics::new(Arc::new(NodeState::default()))),
        shared,
        setup: Setup {
            chain_id: d.chain_id,
            admin: d.admin,
            registry: d.registry,
            settlement: d.settlement,
            token: d.token,
            policy: w.policy.clone(),
            participants: u32::try_from(w.participants.len()).unwrap_or(u32::MAX),
        },
        max_pending: 10,
        rate_limit: None,
        policies: None,
    })
}
