//! [`Sealbridge`]: the typed client over a [`Chain`].

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::{SolCall, SolEvent};

use super::{ContractError, DeployParams, Deployment, EnclaveStatus, Revert, SettleOutcome};
use crate::bindings::{
    AttestationResult, Effect, EnclaveRegistry, Exit, Handover, Settlement, Statement, TestToken,
};
use crate::chain::{Chain, TxReceipt};
use crate::eip712;
use crate::gas::GasLedger;

/// The typed client: a chain, a deployment on it, and the gas ledger of everything sent.
#[derive(Debug)]
pub struct Sealbridge<C> {
    chain: C,
    /// The contracts this client talks to.
    pub deployment: Deployment,
    gas: GasLedger,
}

impl<C: Chain> Sealbridge<C> {
    /// Deploy the three contracts from `params.admin` (see [`Deployment::deploy`]).
    pub fn deploy(mut chain: C, params: &DeployParams) -> Result<Self, ContractError> {
        let mut gas = GasLedger::new();
        let deployment = Deployment::deploy(&mut chain, params, &mut gas)?;
        Ok(Self {
            chain,
            deployment,
            gas,
        })
    }

    /// A client for an existing deployment.
    pub fn attach(chain: C, deployment: Deployment) -> Self {
        Self {
            chain,
            deployment,
            gas: GasLedger::new(),
        }
    }

    /// The chain.
    pub fn chain(&self) -> &C {
        &self.chain
    }

    /// The chain, mutably (time control, mining, raw transactions).
    pub fn chain_mut(&mut self) -> &mut C {
        &mut self.chain
    }

    /// Gas recorded so far.
    pub fn gas(&self) -> &GasLedger {
        &self.gas
    }

    /// Gas ledger, mutably (e.g. to reset or add external figures).
    pub fn gas_mut(&mut self) -> &mut GasLedger {
        &mut self.gas
    }

    // ------------------------------------------------------------- plumbing

    /// Send `call` to `to` from `from`, record its gas under `kind`, decode the return value.
    pub fn transact<T: SolCall>(
        &mut self,
        kind: &str,
        from: Address,
        to: Address,
        call: &T,
    ) -> Result<(TxReceipt, T::Return), ContractError> {
        let r = self.chain.send(from, to, call.abi_encode().into())?;
        if !r.success {
            self.gas.record(&format!("{kind}:reverted"), r.gas_used);
            return Err(ContractError::Reverted(Revert::decode(r.output)));
        }
        self.gas.record(kind, r.gas_used);
        let ret = T::abi_decode_returns(&r.output).map_err(ContractError::Abi)?;
        Ok((r, ret))
    }

    /// `eth_call` of `call` on `to` at the latest block, from the zero address (the admin may be a
    /// contract such as a timelock, and a call "from" an address with code is refused by EIP-3607
    /// rules; no view reads `msg.sender`).
    pub fn view<T: SolCall>(&self, to: Address, call: &T) -> Result<T::Return, ContractError> {
        let out = self
            .chain
            .call(Address::ZERO, to, call.abi_encode().into())?;
        T::abi_decode_returns(&out).map_err(ContractError::Abi)
    }

    /// [`Self::view`] against the state after block `hash` (EIP-1898): several reads of one
    /// block, even behind a load-balanced provider.
    pub fn view_at<T: SolCall>(
        &self,
        to: Address,
        call: &T,
        hash: B256,
    ) -> Result<T::Return, ContractError> {
        let out = self
            .chain
            .call_at(Address::ZERO, to, call.abi_encode().into(), hash)?;
        T::abi_decode_returns(&out).map_err(ContractError::Abi)
    }

    fn registry_tx<T: SolCall>(
        &mut self,
        kind: &str,
        from: Address,
        call: &T,
    ) -> Result<TxReceipt, ContractError> {
        let to = self.deployment.registry;
        self.transact(kind, from, to, call).map(|(r, _)| r)
    }

    fn settlement_tx<T: SolCall>(
        &mut self,
        kind: &str,
        from: Address,
        call: &T,
    ) -> Result<TxReceipt, ContractError> {
        let to = self.deployment.settlement;
        self.transact(kind, from, to, call).map(|(r, _)| r)
    }

    // ------------------------------------------------------------- registry governance

    /// `addVerifier(verifier)`.
    pub fn add_verifier(
        &mut self,
        from: Address,
        verifier: Address,
    ) -> Result<TxReceipt, ContractError> {
        self.registry_tx(
            "addVerifier",
            from,
            &EnclaveRegistry::addVerifierCall { verifier },
        )
    }

    /// `removeVerifier(verifier)`.
    pub fn remove_verifier(
        &mut self,
        from: Address,
        verifier: Address,
    ) -> Result<TxReceipt, ContractError> {
        self.registry_tx(
            "removeVerifier",
            from,
            &EnclaveRegistry::removeVerifierCall { verifier },
        )
    }

    /// `setThreshold(k)`.
    pub fn set_threshold(&mut self, from: Address, k: u32) -> Result<TxReceipt, ContractError> {
        self.registry_tx(
            "setThreshold",
            from,
            &EnclaveRegistry::setThresholdCall { k },
        )
    }

    /// `setAllowSimulated(allowed)`: dangerous, test deployments only.
    pub fn allow_simulated(
        &mut self,
        from: Address,
        allowed: bool,
    ) -> Result<TxReceipt, ContractError> {
        self.registry_tx(
            "setAllowSimulated",
            from,
            &EnclaveRegistry::setAllowSimulatedCall { allowed },
        )
    }

    /// `allowMeasurement(m, validFrom, validUntil)`.
    pub fn allow_measurement(
        &mut self,
        from: Address,
        measurement: B256,
        valid_from: u64,
        valid_until: u64,
    ) -> Result<TxReceipt, ContractError> {
        self.registry_tx(
            "allowMeasurement",
            from,
            &EnclaveRegistry::allowMeasurementCall {
                m: measurement,
                validFrom: valid_from,
                validUntil: valid_until,
            },
        )
    }

    /// `revokeMeasurement(m)`.
    pub fn revoke_measurement(
        &mut self,
        from: Address,
        measurement: B256,
    ) -> Result<TxReceipt, ContractError> {
        self.registry_tx(
            "revokeMeasurement",
            from,
            &EnclaveRegistry::revokeMeasurementCall { m: measurement },
        )
    }

    /// `revokeEnclave(enclave)`.
    pub fn revoke_enclave(
        &mut self,
        from: Address,
        enclave: Address,
    ) -> Result<TxReceipt, ContractError> {
        self.registry_tx(
            "revokeEnclave",
            from,
            &EnclaveRegistry::revokeEnclaveCall { enclave },
        )
    }

    /// `register(r, signatures)`; signatures must be ordered by ascending signer
    /// (see [`eip712::sign_attestation_sorted`]).
    pub fn register(
        &mut self,
        from: Address,
        result: &AttestationResult,
        signatures: Vec<Bytes>,
    ) -> Result<TxReceipt, ContractError> {
        self.registry_tx(
            "register",
            from,
            &EnclaveRegistry::registerCall {
                r: result.clone(),
                signatures,
            },
        )
    }

    // ------------------------------------------------------------- registry views

    /// `enclaveStatus(enclave)`.
    pub fn enclave_status(&self, enclave: Address) -> Result<EnclaveStatus, ContractError> {
        let v = self.view(
            self.deployment.registry,
            &EnclaveRegistry::enclaveStatusCall { enclave },
        )?;
        Ok(EnclaveStatus::from(v))
    }

    /// `isActive(enclave)`.
    pub fn is_active(&self, enclave: Address) -> Result<bool, ContractError> {
        self.view(
            self.deployment.registry,
            &EnclaveRegistry::isActiveCall { enclave },
        )
    }

    /// The registry's record of `enclave`.
    pub fn enclave(
        &self,
        enclave: Address,
    ) -> Result<EnclaveRegistry::enclavesReturn, ContractError> {
        self.view(
            self.deployment.registry,
            &EnclaveRegistry::enclavesCall { enclave },
        )
    }

    /// `hashAttestationResult(r)`: the digest computed by the contract.
    pub fn hash_attestation_result(
        &self,
        result: &AttestationResult,
    ) -> Result<B256, ContractError> {
        self.view(
            self.deployment.registry,
            &EnclaveRegistry::hashAttestationResultCall { r: result.clone() },
        )
    }

    /// `threshold()`.
    pub fn threshold(&self) -> Result<u32, ContractError> {
        self.view(self.deployment.registry, &EnclaveRegistry::thresholdCall {})
    }

    /// `isVerifier(verifier)`.
    pub fn is_verifier(&self, verifier: Address) -> Result<bool, ContractError> {
        self.view(
            self.deployment.registry,
            &EnclaveRegistry::isVerifierCall { verifier },
        )
    }

    /// `measurementAllowed(m)` at the latest block.
    pub fn measurement_allowed(&self, measurement: B256) -> Result<bool, ContractError> {
        self.view(
            self.deployment.registry,
            &EnclaveRegistry::measurementAllowedCall { m: measurement },
        )
    }

    // ------------------------------------------------------------- escrow

    /// `TestToken.mint(to, amount)` (open mint: test token only).
    pub fn mint(
        &mut self,
        from: Address,
        to: Address,
        amount: U256,
    ) -> Result<TxReceipt, ContractError> {
        let token = self.deployment.token;
        self.transact("mint", from, token, &TestToken::mintCall { to, amount })
            .map(|(r, _)| r)
    }

    /// ERC-20 `approve(settlement, amount)` on `token`, then `deposit(token, amount)`.
    pub fn deposit(
        &mut self,
        from: Address,
        token: Address,
        amount: U256,
    ) -> Result<TxReceipt, ContractError> {
        let spender = self.deployment.settlement;
        self.transact(
            "approve",
            from,
            token,
            &TestToken::approveCall {
                spender,
                value: amount,
            },
        )?;
        self.settlement_tx("deposit", from, &Settlement::depositCall { token, amount })
    }

    /// `requestWithdrawal(token, amount)`: the request id the contract assigned (from the
    /// receipt's `WithdrawalRequested` event) and the receipt.
    pub fn request_withdrawal(
        &mut self,
        from: Address,
        token: Address,
        amount: U256,
    ) -> Result<(u64, TxReceipt), ContractError> {
        let to = self.deployment.settlement;
        let (r, _) = self.transact(
            "requestWithdrawal",
            from,
            to,
            &Settlement::requestWithdrawalCall { token, amount },
        )?;
        let id = r
            .logs
            .iter()
            .filter(|l| l.address() == to)
            .find_map(|l| Settlement::WithdrawalRequested::decode_log(&l.inner).ok())
            .map(|e| e.data.requestId)
            .ok_or_else(|| {
                ContractError::Decode(
                    "requestWithdrawal without a WithdrawalRequested event".into(),
                )
            })?;
        Ok((id, r))
    }

    /// `claim(token)`: pay out the caller's granted exits of `token`.
    pub fn claim(&mut self, from: Address, token: Address) -> Result<TxReceipt, ContractError> {
        self.settlement_tx("claim", from, &Settlement::claimCall { token })
    }

    /// `escapeWithdraw(token)`: once frozen, the caller's last settled escrow of `token`.
    pub fn escape_withdraw(
        &mut self,
        from: Address,
        token: Address,
    ) -> Result<TxReceipt, ContractError> {
        self.settlement_tx(
            "escapeWithdraw",
            from,
            &Settlement::escapeWithdrawCall { token },
        )
    }

    /// `freeze()`: open the escape hatch (anyone, once nothing settled for `exitDelay`).
    pub fn freeze(&mut self, from: Address) -> Result<TxReceipt, ContractError> {
        self.settlement_tx("freeze", from, &Settlement::freezeCall {})
    }

    /// `pause()` (guardian or governor).
    pub fn pause(&mut self, from: Address) -> Result<TxReceipt, ContractError> {
        self.settlement_tx("pause", from, &Settlement::pauseCall {})
    }

    /// `unpause()` (governor).
    pub fn unpause(&mut self, from: Address) -> Result<TxReceipt, ContractError> {
        self.settlement_tx("unpause", from, &Settlement::unpauseCall {})
    }

    /// `claimable(account, token)`: granted exits not yet claimed.
    pub fn claimable(&self, account: Address, token: Address) -> Result<U256, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::claimableCall { account, token },
        )
    }

    /// `frozen()`.
    pub fn frozen(&self) -> Result<bool, ContractError> {
        self.view(self.deployment.settlement, &Settlement::frozenCall {})
    }

    /// `paused()`.
    pub fn paused(&self) -> Result<bool, ContractError> {
        self.view(self.deployment.settlement, &Settlement::pausedCall {})
    }

    /// `exitDelay()`.
    pub fn exit_delay(&self) -> Result<u64, ContractError> {
        self.view(self.deployment.settlement, &Settlement::exitDelayCall {})
    }

    /// `lastSettledAt()`.
    pub fn last_settled_at(&self) -> Result<u64, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::lastSettledAtCall {},
        )
    }

    /// `exitRequestCount()`: the last withdrawal request id.
    pub fn exit_request_count(&self) -> Result<u64, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::exitRequestCountCall {},
        )
    }

    /// `requestsDecided()`: withdrawal requests 1..=n the enclave declared decided.
    pub fn requests_decided(&self) -> Result<u64, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::requestsDecidedCall {},
        )
    }

    /// `requestedAt(id)`: block time of withdrawal request `id` (0 if none).
    pub fn requested_at(&self, id: u64) -> Result<u64, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::requestedAtCall { requestId: id },
        )
    }

    /// `hatchOpensAt()`: when anyone may `freeze` if nothing changes before.
    pub fn hatch_opens_at(&self) -> Result<u64, ContractError> {
        let t: U256 = self.view(self.deployment.settlement, &Settlement::hatchOpensAtCall {})?;
        u64::try_from(t).map_err(|e| ContractError::Decode(e.to_string()))
    }

    /// `participants()`: the committed participant accounts, ascending.
    pub fn participants(&self) -> Result<Vec<Address>, ContractError> {
        self.view(self.deployment.settlement, &Settlement::participantsCall {})
    }

    /// `tokens()`: the committed tokens, ascending.
    pub fn tokens(&self) -> Result<Vec<Address>, ContractError> {
        self.view(self.deployment.settlement, &Settlement::tokensCall {})
    }

    /// `Settlement.allowMeasurement(m)` (governor): enclaves of `m` may sign for this deployment.
    pub fn allow_measurement_here(
        &mut self,
        from: Address,
        measurement: B256,
    ) -> Result<TxReceipt, ContractError> {
        self.settlement_tx(
            "allowMeasurementHere",
            from,
            &Settlement::allowMeasurementCall { m: measurement },
        )
    }

    /// `Settlement.revokeMeasurement(m)` (guardian or governor).
    pub fn revoke_measurement_here(
        &mut self,
        from: Address,
        measurement: B256,
    ) -> Result<TxReceipt, ContractError> {
        self.settlement_tx(
            "revokeMeasurementHere",
            from,
            &Settlement::revokeMeasurementCall { m: measurement },
        )
    }

    /// Escrowed balance `balanceOf(account, token)` in the settlement contract.
    pub fn escrow_balance(&self, account: Address, token: Address) -> Result<U256, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::balanceOfCall { account, token },
        )
    }

    /// ERC-20 balance of `account` in `token`.
    pub fn token_balance(&self, token: Address, account: Address) -> Result<U256, ContractError> {
        self.view(token, &TestToken::balanceOfCall { account })
    }

    // ------------------------------------------------------------- settlement

    /// `setPolicyHash(base)`: the policy hash becomes the composition of `base` with the
    /// committed account and token lists.
    pub fn set_policy_hash(
        &mut self,
        from: Address,
        policy_hash: B256,
    ) -> Result<TxReceipt, ContractError> {
        self.settlement_tx(
            "setPolicyHash",
            from,
            &Settlement::setPolicyHashCall {
                newBasePolicyHash: policy_hash,
            },
        )
    }

    /// `schedulePolicy(base, added, [], activatesAt)` (issue 12 part 2): the policy of base
    /// hash `base` with the participants `added` (ascending) merged in takes effect with the
    /// first statement under it that settles at or after `activates_at`.
    pub fn schedule_policy(
        &mut self,
        from: Address,
        base: B256,
        added: &[Address],
        activates_at: u64,
    ) -> Result<TxReceipt, ContractError> {
        self.schedule_policy_with_tokens(from, base, added, &[], activates_at)
    }

    /// `schedulePolicy(base, added, addedTokens, activatesAt)`: as [`Self::schedule_policy`],
    /// with the tokens `added_tokens` (ascending) merged into the token list as well.
    pub fn schedule_policy_with_tokens(
        &mut self,
        from: Address,
        base: B256,
        added: &[Address],
        added_tokens: &[Address],
        activates_at: u64,
    ) -> Result<TxReceipt, ContractError> {
        self.settlement_tx(
            "schedulePolicy",
            from,
            &Settlement::schedulePolicyCall {
                newBasePolicyHash: base,
                added: added.to_vec(),
                addedTokens: added_tokens.to_vec(),
                activatesAt: activates_at,
            },
        )
    }

    /// `pendingTokens()`: the token list under the scheduled policy (empty: none).
    pub fn pending_tokens(&self) -> Result<Vec<Address>, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::pendingTokensCall {},
        )
    }

    /// `cancelPolicy()`: withdraw the scheduled policy change.
    pub fn cancel_policy(&mut self, from: Address) -> Result<TxReceipt, ContractError> {
        self.settlement_tx("cancelPolicy", from, &Settlement::cancelPolicyCall {})
    }

    /// `pendingParticipants()`: the participant list under the scheduled policy (empty: none).
    pub fn pending_participants(&self) -> Result<Vec<Address>, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::pendingParticipantsCall {},
        )
    }

    /// `pendingPolicyHash()`: the scheduled policy hash (zero: none).
    pub fn pending_policy_hash(&self) -> Result<B256, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::pendingPolicyHashCall {},
        )
    }

    /// `pendingPolicyActivatesAt()`: block time from which the pending policy may settle.
    pub fn pending_policy_activates_at(&self) -> Result<u64, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::pendingPolicyActivatesAtCall {},
        )
    }

    /// `policySince()`: the sequence of the first statement under the policy in force.
    pub fn policy_since(&self) -> Result<u64, ContractError> {
        self.view(self.deployment.settlement, &Settlement::policySinceCall {})
    }

    /// `settle(s, effects, exits, signature)`: [`SettleOutcome::Applied`] if applied now,
    /// [`SettleOutcome::AlreadySettled`] if this exact statement was settled before.
    pub fn settle(
        &mut self,
        from: Address,
        statement: &Statement,
        effects: &[Effect],
        exits: &[Exit],
        signature: Bytes,
    ) -> Result<SettleOutcome, ContractError> {
        let to = self.deployment.settlement;
        let call = Settlement::settleCall {
            s: statement.clone(),
            effects: effects.to_vec(),
            exits: exits.to_vec(),
            signature,
        };
        let r = self.chain.send(from, to, call.abi_encode().into())?;
        self.settle_outcome(statement.sequence, r)
    }

    /// `handover(h, signature)`: [`SettleOutcome::Applied`] if applied now (a `HandedOver`
    /// event), [`SettleOutcome::AlreadySettled`] if this exact handover was settled before.
    pub fn handover(
        &mut self,
        from: Address,
        handover: &Handover,
        signature: Bytes,
    ) -> Result<SettleOutcome, ContractError> {
        let to = self.deployment.settlement;
        let call = Settlement::handoverCall {
            h: handover.clone(),
            signature,
        };
        let r = self.chain.send(from, to, call.abi_encode().into())?;
        self.handover_outcome(handover.sequence, r)
    }

    /// What the receipt of the handover transaction at `sequence` says.
    fn handover_outcome(
        &mut self,
        sequence: u64,
        r: TxReceipt,
    ) -> Result<SettleOutcome, ContractError> {
        let to = self.deployment.settlement;
        if !r.success {
            self.gas.record("handover:reverted", r.gas_used);
            return Err(ContractError::Reverted(Revert::decode(r.output)));
        }
        self.gas.record("handover", r.gas_used);
        let ours = |l: &&crate::chain::LogEntry| l.address() == to;
        if r.logs.iter().filter(ours).any(|l| {
            Settlement::HandedOver::decode_log(&l.inner).is_ok_and(|e| e.data.sequence == sequence)
        }) {
            Ok(SettleOutcome::Applied(r))
        } else if r.logs.iter().filter(ours).any(|l| {
            Settlement::AlreadySettled::decode_log(&l.inner)
                .is_ok_and(|e| e.data.sequence == sequence)
        }) {
            Ok(SettleOutcome::AlreadySettled(r))
        } else {
            Err(ContractError::Decode(format!(
                "handover at sequence {sequence} succeeded without a HandedOver or \
                 AlreadySettled event"
            )))
        }
    }

    /// `enclave()`: the deployment's current signer (zero: any Active enclave allowed here).
    pub fn current_enclave(&self) -> Result<Address, ContractError> {
        self.view(self.deployment.settlement, &Settlement::enclaveCall {})
    }

    /// `adoptEnclave(successor)` (governor: the timelock in production): `successor` becomes
    /// the deployment's only signer.
    pub fn adopt_enclave(
        &mut self,
        from: Address,
        successor: Address,
    ) -> Result<TxReceipt, ContractError> {
        self.settlement_tx(
            "adoptEnclave",
            from,
            &Settlement::adoptEnclaveCall { successor },
        )
    }

    /// `resumeAfterLoss(successor)` (governor: the timelock in production; issue 12, lost
    /// data directory): `successor` becomes the only signer, the escape hatch is lifted and its
    /// clock restarted; settled state (sequence, roots, log anchor) is kept.
    pub fn resume_after_loss(
        &mut self,
        from: Address,
        successor: Address,
    ) -> Result<TxReceipt, ContractError> {
        self.settlement_tx(
            "resumeAfterLoss",
            from,
            &Settlement::resumeAfterLossCall { successor },
        )
    }

    /// `resumedAt()`: block time of the last `resumeAfterLoss` (0 if never).
    pub fn resumed_at(&self) -> Result<u64, ContractError> {
        self.view(self.deployment.settlement, &Settlement::resumedAtCall {})
    }

    /// `hashHandover(h)`: the digest computed by the contract.
    pub fn hash_handover(&self, handover: &Handover) -> Result<B256, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::hashHandoverCall {
                h: handover.clone(),
            },
        )
    }

    /// Digest of `handover` under this deployment's settlement domain, computed in Rust.
    pub fn handover_digest_local(&self, handover: &Handover) -> B256 {
        eip712::handover_digest(
            handover,
            self.deployment.chain_id,
            self.deployment.settlement,
        )
    }

    /// `HandedOver` events in an inclusive block range, in chain order.
    pub fn handed_over_events(
        &self,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<Settlement::HandedOver>, ContractError> {
        Ok(self
            .chain
            .logs(self.deployment.settlement, from_block, to_block)?
            .iter()
            .filter_map(|l| Settlement::HandedOver::decode_log(&l.inner).ok())
            .map(|l| l.data)
            .collect())
    }

    /// `settle` of several statements in one go, in this order, from `from`: sent with
    /// consecutive nonces without waiting for each to be mined ([`Chain::send_many`]), so that
    /// they can share a block. One outcome per statement, in order, ending at the first
    /// failure; a later statement may still have been sent and even settled (a revert is mined
    /// and does not stop the sending): the chain's `lastSequence` tells.
    pub fn settle_many(
        &mut self,
        from: Address,
        statements: &[(Statement, Vec<Effect>, Vec<Exit>, Bytes)],
    ) -> Vec<Result<SettleOutcome, ContractError>> {
        let to = self.deployment.settlement;
        let txs: Vec<(Address, Bytes)> = statements
            .iter()
            .map(|(s, effects, exits, signature)| {
                let call = Settlement::settleCall {
                    s: s.clone(),
                    effects: effects.clone(),
                    exits: exits.clone(),
                    signature: signature.clone(),
                };
                (to, call.abi_encode().into())
            })
            .collect();
        let receipts = self.chain.send_many(from, &txs);
        let mut out = Vec::with_capacity(receipts.len());
        for ((s, ..), r) in statements.iter().zip(receipts) {
            let o = r
                .map_err(ContractError::from)
                .and_then(|r| self.settle_outcome(s.sequence, r));
            let failed = o.is_err();
            out.push(o);
            if failed {
                break;
            }
        }
        out
    }

    /// What the receipt of the settle transaction of statement `sequence` says.
    fn settle_outcome(
        &mut self,
        sequence: u64,
        r: TxReceipt,
    ) -> Result<SettleOutcome, ContractError> {
        let to = self.deployment.settlement;
        if !r.success {
            self.gas.record("settle:reverted", r.gas_used);
            return Err(ContractError::Reverted(Revert::decode(r.output)));
        }
        self.gas.record("settle", r.gas_used);
        // The outcome comes from the receipt's events, not the return value: a JSON-RPC chain
        // recovers return data by replaying the call at the parent block, which is not exact
        // when other transactions precede ours in the block.
        let ours = |l: &&crate::chain::LogEntry| l.address() == to;
        if r.logs.iter().filter(ours).any(|l| {
            Settlement::StatementSettled::decode_log(&l.inner)
                .is_ok_and(|e| e.data.sequence == sequence)
        }) {
            Ok(SettleOutcome::Applied(r))
        } else if r.logs.iter().filter(ours).any(|l| {
            Settlement::AlreadySettled::decode_log(&l.inner)
                .is_ok_and(|e| e.data.sequence == sequence)
        }) {
            Ok(SettleOutcome::AlreadySettled(r))
        } else {
            Err(ContractError::Decode(format!(
                "settle of statement {sequence} succeeded without a StatementSettled or \
                 AlreadySettled event"
            )))
        }
    }

    /// `lastSequence()`.
    pub fn last_sequence(&self) -> Result<u64, ContractError> {
        self.view(self.deployment.settlement, &Settlement::lastSequenceCall {})
    }

    /// `stateRoot()`.
    pub fn state_root(&self) -> Result<B256, ContractError> {
        self.view(self.deployment.settlement, &Settlement::stateRootCall {})
    }

    /// `policyHash()`.
    pub fn policy_hash(&self) -> Result<B256, ContractError> {
        self.view(self.deployment.settlement, &Settlement::policyHashCall {})
    }

    /// `logSize()`.
    pub fn log_size(&self) -> Result<u64, ContractError> {
        self.view(self.deployment.settlement, &Settlement::logSizeCall {})
    }

    /// `logRoot()`.
    pub fn log_root(&self) -> Result<B256, ContractError> {
        self.view(self.deployment.settlement, &Settlement::logRootCall {})
    }

    /// `statementDigest(sequence)` (zero if not settled).
    pub fn statement_digest(&self, sequence: u64) -> Result<B256, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::statementDigestCall { sequence },
        )
    }

    /// `hashStatement(s)`: the digest computed by the contract.
    pub fn hash_statement(&self, statement: &Statement) -> Result<B256, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::hashStatementCall {
                s: statement.clone(),
            },
        )
    }

    /// `hashEffects(effects, exits)`: the effects hash computed by the contract.
    pub fn hash_effects(&self, effects: &[Effect], exits: &[Exit]) -> Result<B256, ContractError> {
        self.view(
            self.deployment.settlement,
            &Settlement::hashEffectsCall {
                effects: effects.to_vec(),
                exits: exits.to_vec(),
            },
        )
    }

    /// Digest of `statement` under this deployment's settlement domain, computed in Rust.
    pub fn statement_digest_local(&self, statement: &Statement) -> B256 {
        eip712::statement_digest(
            statement,
            self.deployment.chain_id,
            self.deployment.settlement,
        )
    }

    /// Digest of `result` under this deployment's registry domain, computed in Rust.
    pub fn attestation_digest_local(&self, result: &AttestationResult) -> B256 {
        eip712::attestation_digest(result, self.deployment.chain_id, self.deployment.registry)
    }

    /// `StatementSettled` events in an inclusive block range (what a relayer re-reads after a reorg).
    pub fn settled_events(
        &self,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<Settlement::StatementSettled>, ContractError> {
        Ok(statement_settled_events(
            &self.chain,
            self.deployment.settlement,
            from_block,
            to_block,
        )?)
    }
}

/// `StatementSettled` events of `settlement` in an inclusive block range, in chain order.
fn statement_settled_events(
    chain: &impl Chain,
    settlement: Address,
    from_block: u64,
    to_block: u64,
) -> Result<Vec<Settlement::StatementSettled>, crate::chain::ChainError> {
    Ok(chain
        .logs(settlement, from_block, to_block)?
        .iter()
        .filter_map(|l| Settlement::StatementSettled::decode_log(&l.inner).ok())
        .map(|l| l.data)
        .collect())
}

/// What has settled on `chain` as it is now: the sequence of every `StatementSettled` and
/// `HandedOver` event of `settlement`, in chain order, and the inputs the statements settled in
/// total (each sequence is applied once, so a repeated sequence here would be a broken
/// contract; a handover settles no input).
pub fn settled_on_chain(
    chain: &impl Chain,
    settlement: Address,
) -> Result<(Vec<u64>, u64), crate::chain::ChainError> {
    let head = chain.block_number()?;
    let mut sequences = Vec::new();
    let mut inputs = 0u64;
    for l in chain.logs(settlement, 0, head)? {
        if let Ok(e) = Settlement::StatementSettled::decode_log(&l.inner) {
            sequences.push(e.data.sequence);
            inputs += u64::from(e.data.inputCount);
        } else if let Ok(e) = Settlement::HandedOver::decode_log(&l.inner) {
            sequences.push(e.data.sequence);
        }
    }
    Ok((sequences, inputs))
}
