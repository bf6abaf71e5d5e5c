// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {EnclaveRegistry} from "./EnclaveRegistry.sol";

/// @title Sealbridge settlement
/// @notice Escrows ERC-20 deposits of the deployment's participants and applies the balance effects
///         of statements signed by an active registered enclave, strictly in sequence (DESIGN §8).
///         Escrow leaves the contract only through a settled statement (an exit the enclave granted,
///         then `claim`), or through the escape hatch once no statement has settled for `exitDelay`.
/// @dev A statement commits to its effects and exits through `effectsHash`; both travel in calldata.
///      Re-submitting an already settled statement is recognised and never applied twice, so relayers
///      can retry blindly. Roles: GOVERNOR_ROLE and DEFAULT_ADMIN_ROLE belong to a TimelockController in
///      production (its delay exceeds `exitDelay`, so participants can exit before any change takes
///      effect); GUARDIAN_ROLE can only make things safer at once (pause, revoke a measurement).
contract Settlement is AccessControlDefaultAdminRules, EIP712, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice The signed statement (EIP-712 type `Statement`), DESIGN §8.
    struct Statement {
        uint64 sequence;
        bytes32 prevStateRoot;
        bytes32 newStateRoot;
        bytes32 inputsRoot;
        uint32 inputCount;
        uint64 logSize;
        bytes32 logRoot;
        bytes32 policyHash;
        bytes32 effectsHash;
        uint64 notBefore;
        uint64 notAfter;
    }

    /// @notice A handover (EIP-712 type `Handover`, issue 12): the current enclave names an attested
    ///         successor at the next sequence; from then on only the successor signs statements.
    ///         The state root does not change; the log (size, root) grows by the handover entry.
    /// @param successorResultHash The registry's `resultHash` of the successor's registration (the
    ///        EIP-712 digest of its `AttestationResult`), so the handover names one attestation.
    struct Handover {
        uint64 sequence;
        bytes32 stateRoot;
        uint64 logSize;
        bytes32 logRoot;
        bytes32 policyHash;
        address successor;
        bytes32 successorMeasurement;
        bytes32 successorResultHash;
        uint64 notBefore;
        uint64 notAfter;
    }

    /// @notice One netting balance change: `delta` of `token` for `account`. Effects conserve value.
    struct Effect {
        address account;
        address token;
        int256 delta;
    }

    /// @notice One exit the enclave granted: `amount` of `token` leaves `account`'s escrow and becomes
    ///         claimable by `account`.
    struct Exit {
        address account;
        address token;
        uint256 amount;
    }

    /// @notice Deployment parameters (one struct: the list is long and every field is named).
    struct Config {
        EnclaveRegistry registry;
        /// Receives DEFAULT_ADMIN_ROLE and GOVERNOR_ROLE (a TimelockController in production).
        address admin;
        /// Receives GUARDIAN_ROLE (a separate key or multisig); may be zero.
        address guardian;
        /// Delay of a DEFAULT_ADMIN_ROLE transfer (AccessControlDefaultAdminRules).
        uint48 adminDelay;
        /// The enclave policy hash without the account and token lists (`EnclavePolicy::base_hash`).
        bytes32 basePolicyHash;
        /// The participant accounts, strictly ascending (the first chunk when `moreAccounts`).
        address[] accounts;
        /// More accounts follow through `addParticipants` (a constructor's init code is limited
        /// to 48 KiB, about 1,500 addresses): the deployer appends them, then `sealParticipants`.
        bool moreAccounts;
        /// The tokens, strictly ascending.
        address[] tokens;
        /// Measurements whose enclaves may sign statements for this deployment.
        bytes32[] measurements;
        /// Seconds without a settled statement after which anyone may freeze the deployment.
        uint64 exitDelay;
    }

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    bytes32 public constant STATEMENT_TYPEHASH = keccak256(
        "Statement(uint64 sequence,bytes32 prevStateRoot,bytes32 newStateRoot,bytes32 inputsRoot,uint32 inputCount,"
        "uint64 logSize,bytes32 logRoot,bytes32 policyHash,bytes32 effectsHash,uint64 notBefore,uint64 notAfter)"
    );

    bytes32 public constant HANDOVER_TYPEHASH = keccak256(
        "Handover(uint64 sequence,bytes32 stateRoot,uint64 logSize,bytes32 logRoot,bytes32 policyHash,"
        "address successor,bytes32 successorMeasurement,bytes32 successorResultHash,uint64 notBefore,uint64 notAfter)"
    );

    /// @notice The registry consulted for the signer's status on every statement.
    EnclaveRegistry public immutable registry;
    /// @notice Seconds without a settled statement after which `freeze` opens the escape hatch.
    uint64 public immutable exitDelay;
    /// @notice keccak256(abi.encodePacked(accounts)), ascending (part of `policyHash`); zero until the
    ///         participant list is sealed.
    bytes32 public accountsHash;
    /// @notice keccak256(abi.encodePacked(tokens)), ascending (part of `policyHash`). Tokens are
    ///         only ever added, by a policy change (`schedulePolicy`); none is removed, so no
    ///         escrow is ever stranded in a token the deployment stopped settling.
    bytes32 public tokensHash;
    /// @notice The account that may still append participants (the deployer, until
    ///         `sealParticipants`); zero once the list is final. Nothing can be deposited, requested or
    ///         settled before that, so the deployer never holds anything that can move value.
    address public participantSetup;

    /// @notice State root after the last settled statement (genesis: zero).
    bytes32 public stateRoot;
    /// @notice Sequence number of the last settled statement (genesis: 0; the first statement is 1).
    uint64 public lastSequence;
    /// @notice Log size committed by the last settled statement.
    uint64 public logSize;
    /// @notice Block time of the last settled statement (deployment time before the first).
    uint64 public lastSettledAt;
    /// @notice Settlement and deposits are paused by the guardian (governance resumes).
    bool public paused;
    /// @notice The escape hatch is open: no statement settles; participants withdraw their last
    ///         settled escrow with `escapeWithdraw`. Only governance lifts it, with
    ///         `resumeAfterLoss` (through the timelock).
    bool public frozen;
    /// @notice Number of withdrawal requests made so far (the last request id).
    uint64 public exitRequestCount;
    /// @notice Withdrawal requests 1..requestsDecided were decided by the enclave (granted or
    ///         refused), as the last settled statement that said so (its request marker) declared.
    uint64 public requestsDecided;
    /// @notice Log root committed by the last settled statement.
    bytes32 public logRoot;
    /// @notice Policy hash without the account and token lists.
    bytes32 public basePolicyHash;
    /// @notice Hash of the policy statements must be produced under:
    ///         keccak256(abi.encode(basePolicyHash, accountsHash, tokensHash)).
    bytes32 public policyHash;
    /// @notice A policy change scheduled by governance (issue 12 part 2, DESIGN §12): the policy
    ///         hash it makes (zero: none pending). Until a statement under it settles, statements
    ///         under `policyHash` still settle, so everything accepted before the enclave adopted
    ///         it settles under the old policy; the first settled statement that names it makes it
    ///         the policy in force (and its added participants participants), for good.
    bytes32 public pendingPolicyHash;
    /// @notice The base hash of the pending policy.
    bytes32 public pendingBasePolicyHash;
    /// @notice Block time before which no statement under the pending policy settles (the
    ///         activation point governance chose; the timelock's delay is the notice before it).
    uint64 public pendingPolicyActivatesAt;
    /// @notice Sequence of the first statement under the policy now in force (0: the genesis
    ///         policy, or one set before any statement by `setPolicyHash`).
    uint64 public policySince;
    /// @notice The deployment's current signer. Zero (as deployed, until the first statement
    ///         settles): any Active registered enclave whose measurement is allowed here may sign.
    ///         Set by the first settled statement (its signer), a settled `handover` (to its
    ///         successor) or governance (`adoptEnclave`, `resumeAfterLoss`); once set, only it
    ///         signs.
    address public enclave;
    /// @notice EIP-712 digest of each settled statement (or handover), by sequence.
    mapping(uint64 sequence => bytes32) public statementDigest;
    /// @notice Whether `account` is a participant of this deployment.
    mapping(address account => bool) public isParticipant;
    /// @notice Whether `token` is settled by this deployment.
    mapping(address token => bool) public isToken;
    /// @notice Measurements whose enclaves may sign statements here (checked beside the registry's own
    ///         allowlist, so a shared registry cannot admit another deployment's code).
    mapping(bytes32 measurement => bool) public measurementAllowed;
    /// @notice Block time of each withdrawal request, by id: a request left undecided for
    ///         `exitDelay` opens the escape hatch even while other statements settle.
    mapping(uint64 requestId => uint64) public requestedAt;
    /// @notice Block time of the last `resumeAfterLoss` (zero if never): a withdrawal request
    ///         still undecided then gets a full `exitDelay` from it before it reopens the hatch.
    uint64 public resumedAt;
    /// @notice Granted exits waiting to be claimed.
    mapping(address account => mapping(address token => uint256)) public claimable;

    mapping(address account => mapping(address token => uint256)) private _escrow;
    address[] private _accounts;
    address[] private _tokens;
    /// @dev The whole participant list under the pending policy (ascending): today's list with
    ///      the added accounts merged in.
    address[] private _pendingAccounts;
    /// @dev The whole token list under the pending policy (ascending): today's list with the
    ///      added tokens merged in.
    address[] private _pendingTokens;

    event Deposited(address indexed account, address indexed token, uint256 amount);
    event WithdrawalRequested(
        address indexed account, address indexed token, uint256 amount, uint64 indexed requestId
    );
    event ExitGranted(uint64 indexed sequence, address indexed account, address indexed token, uint256 amount);
    event Claimed(address indexed account, address indexed token, uint256 amount);
    event EscapeWithdrawn(address indexed account, address indexed token, uint256 amount);
    event Frozen(uint64 lastSequence, uint64 lastSettledAt, address by);
    event PausedBy(address indexed by);
    event Unpaused(address indexed by);
    event MeasurementAllowed(bytes32 indexed measurement);
    event MeasurementRevoked(bytes32 indexed measurement);
    event PolicyChanged(bytes32 oldPolicyHash, bytes32 newPolicyHash);
    event PolicyScheduled(
        bytes32 indexed policyHash, bytes32 basePolicyHash, address[] added, address[] addedTokens, uint64 activatesAt
    );
    event PolicyActivated(uint64 indexed sequence, bytes32 oldPolicyHash, bytes32 newPolicyHash);
    event PolicyCancelled(bytes32 indexed policyHash);
    event AlreadySettled(uint64 indexed sequence, bytes32 digest);
    event HandedOver(uint64 indexed sequence, address indexed from, address indexed to, bytes32 measurement);
    event EnclaveAdopted(address indexed enclave, address indexed previous, bytes32 measurement);
    event ResumedAfterLoss(
        address indexed successor,
        address indexed previous,
        uint64 lastSequence,
        bytes32 stateRoot,
        uint64 logSize
    );
    event StatementSettled(
        uint64 indexed sequence,
        bytes32 digest,
        bytes32 newStateRoot,
        bytes32 inputsRoot,
        uint32 inputCount,
        uint64 logSize,
        bytes32 logRoot,
        address signer
    );

    error ZeroAddress();
    error ZeroAmount();
    error NotSorted();
    error EmptyList();
    error NotInSetup();
    error SetupNotSealed();
    error ExitDelayTooShort(uint64 exitDelay);
    error NotAParticipant(address account);
    error TokenNotAllowed(address token);
    error NothingReceived();
    error SettlementPaused();
    error DeploymentFrozen();
    error NotFrozen();
    error HatchNotOpen(uint256 opensAt, uint256 nowTs);
    error NothingToClaim(address account, address token);
    error SequenceConflict(uint64 sequence, bytes32 settledDigest, bytes32 digest);
    error SequenceGap(uint64 expected, uint64 sequence);
    error BadSignature();
    error SignerNotActive(address signer, uint8 status);
    error MeasurementNotAllowedHere(bytes32 measurement);
    error PrevRootMismatch(bytes32 expected, bytes32 got);
    error PolicyMismatch(bytes32 expected, bytes32 got);
    error PolicyNotActiveYet(uint64 activatesAt, uint256 nowTs);
    error AlreadyParticipant(address account);
    error AlreadyToken(address token);
    error PolicyUnchanged(bytes32 policyHash);
    error PolicyPending(bytes32 pendingPolicyHash);
    error NoPolicyPending();
    error PolicyDue(bytes32 pendingPolicyHash, uint64 activatesAt);
    error ActivationNotInFuture(uint64 activatesAt, uint256 nowTs);
    error OutsideWindow(uint64 notBefore, uint64 notAfter, uint256 nowTs);
    error EffectsHashMismatch(bytes32 committed, bytes32 computed);
    error EffectsNotSorted(uint256 index);
    error ExitsNotSorted(uint256 index);
    error BadRequestMarker(uint256 marker, uint64 decided, uint64 requested);
    error NotConserved(address token);
    error InsufficientEscrow(address account, address token);
    error NotCurrentEnclave(address expected, address got);
    error SuccessorNotActive(address successor, uint8 status);
    error SuccessorMismatch(address successor);
    error SelfHandover();

    constructor(Config memory c)
        AccessControlDefaultAdminRules(c.adminDelay, c.admin)
        EIP712("Sealbridge Settlement", "1")
    {
        if (address(c.registry) == address(0)) revert ZeroAddress();
        if (c.exitDelay == 0) revert ExitDelayTooShort(c.exitDelay);
        registry = c.registry;
        exitDelay = c.exitDelay;
        _grantRole(GOVERNOR_ROLE, c.admin);
        if (c.guardian != address(0)) _grantRole(GUARDIAN_ROLE, c.guardian);
        if (c.accounts.length == 0) revert EmptyList();
        _appendAccounts(c.accounts);
        tokensHash = _commitSet(c.tokens, isToken);
        _tokens = c.tokens;
        for (uint256 i = 0; i < c.measurements.length; ++i) {
            measurementAllowed[c.measurements[i]] = true;
            emit MeasurementAllowed(c.measurements[i]);
        }
        lastSettledAt = uint64(block.timestamp);
        basePolicyHash = c.basePolicyHash;
        if (c.moreAccounts) {
            participantSetup = msg.sender;
        } else {
            _sealAccounts();
        }
    }

    /// @notice Append participant accounts (deployer only, before `sealParticipants`); the whole
    ///         list stays strictly ascending.
    function addParticipants(address[] calldata more) external {
        if (msg.sender != participantSetup || participantSetup == address(0)) revert NotInSetup();
        _appendAccounts(more);
    }

    /// @notice Fix the participant list for good and derive the policy hash from it.
    function sealParticipants() external {
        if (msg.sender != participantSetup || participantSetup == address(0)) revert NotInSetup();
        participantSetup = address(0);
        _sealAccounts();
    }

    function _appendAccounts(address[] memory list) private {
        uint256 n = _accounts.length;
        address prev = n == 0 ? address(0) : _accounts[n - 1];
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i] <= prev) revert NotSorted();
            isParticipant[list[i]] = true;
            _accounts.push(list[i]);
            prev = list[i];
        }
    }

    function _sealAccounts() private {
        accountsHash = keccak256(abi.encodePacked(_accounts));
        _setPolicy(basePolicyHash);
    }

    /// @dev Marks every address of a strictly ascending, non-empty list and returns its packed hash.
    function _commitSet(address[] memory list, mapping(address => bool) storage set)
        private
        returns (bytes32)
    {
        if (list.length == 0) revert EmptyList();
        address prev = address(0);
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i] <= prev) revert NotSorted();
            set[list[i]] = true;
            prev = list[i];
        }
        return keccak256(abi.encodePacked(list));
    }

    // ------------------------------------------------------------------ escrow

    /// @notice Move `amount` of `token` from the caller into escrow (needs a prior ERC-20 approval).
    ///         Credits what actually arrived (a fee-on-transfer token credits less than `amount`).
    /// @dev Only participants, only the deployment's tokens, not while paused or frozen.
    function deposit(IERC20 token, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        _checkOpen();
        if (!isParticipant[msg.sender]) revert NotAParticipant(msg.sender);
        if (!isToken[address(token)]) revert TokenNotAllowed(address(token));
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received == 0) revert NothingReceived();
        _escrow[msg.sender][address(token)] += received;
        emit Deposited(msg.sender, address(token), received);
    }

    /// @notice Ask the enclave to release up to `amount` of `token` from the caller's escrow. The
    ///         enclave grants what the caller can cover after its accepted obligations (partly or
    ///         not at all, with a logged reason) as an exit of its next statement; then `claim`.
    /// @return requestId The request's id (1, 2, 3, … with no gaps), as logged by the enclave.
    function requestWithdrawal(address token, uint256 amount) external returns (uint64 requestId) {
        if (amount == 0) revert ZeroAmount();
        if (participantSetup != address(0)) revert SetupNotSealed();
        if (frozen) revert DeploymentFrozen();
        if (!isParticipant[msg.sender]) revert NotAParticipant(msg.sender);
        if (!isToken[token]) revert TokenNotAllowed(token);
        requestId = exitRequestCount + 1;
        exitRequestCount = requestId;
        requestedAt[requestId] = uint64(block.timestamp);
        emit WithdrawalRequested(msg.sender, token, amount, requestId);
    }

    /// @notice Pay out every granted exit of `token` to the caller (pull payment: one participant's
    ///         transfer failing cannot stop a statement from settling).
    function claim(IERC20 token) external nonReentrant returns (uint256 amount) {
        amount = claimable[msg.sender][address(token)];
        if (amount == 0) revert NothingToClaim(msg.sender, address(token));
        claimable[msg.sender][address(token)] = 0;
        emit Claimed(msg.sender, address(token), amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Escape hatch: once frozen, withdraw exactly the caller's last settled escrow of `token`.
    function escapeWithdraw(IERC20 token) external nonReentrant returns (uint256 amount) {
        if (!frozen) revert NotFrozen();
        amount = _escrow[msg.sender][address(token)];
        if (amount == 0) revert NothingToClaim(msg.sender, address(token));
        _escrow[msg.sender][address(token)] = 0;
        emit EscapeWithdrawn(msg.sender, address(token), amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Anyone may freeze the deployment once no statement has settled for `exitDelay`
    ///         (enclave stalled or gone, operator vanished, or settlement paused that long), or once
    ///         a withdrawal request has gone undecided for `exitDelay` while statements kept
    ///         settling (a host withholding requests).
    function freeze() external {
        if (frozen) revert DeploymentFrozen();
        uint256 opensAt = hatchOpensAt();
        if (block.timestamp < opensAt) revert HatchNotOpen(opensAt, block.timestamp);
        frozen = true;
        emit Frozen(lastSequence, lastSettledAt, msg.sender);
    }

    /// @notice When anyone may call `freeze` if nothing changes before then: `exitDelay` after the
    ///         last settled statement, or after the oldest undecided withdrawal request if earlier
    ///         (counted from the last `resumeAfterLoss` for a request made before it).
    function hatchOpensAt() public view returns (uint256 opensAt) {
        opensAt = uint256(lastSettledAt) + exitDelay;
        uint64 decided = requestsDecided;
        if (exitRequestCount > decided) {
            uint256 from = requestedAt[decided + 1];
            if (from < resumedAt) from = resumedAt;
            uint256 byRequest = from + exitDelay;
            if (byRequest < opensAt) opensAt = byRequest;
        }
    }

    /// @notice Settled escrow of `account` in `token`.
    function balanceOf(address account, address token) external view returns (uint256) {
        return _escrow[account][token];
    }

    /// @notice The participant accounts, ascending.
    function participants() external view returns (address[] memory) {
        return _accounts;
    }

    /// @notice The participant accounts under the pending policy change, ascending (empty when
    ///         none is pending).
    function pendingParticipants() external view returns (address[] memory) {
        return _pendingAccounts;
    }

    /// @notice The deployment's tokens, ascending.
    function tokens() external view returns (address[] memory) {
        return _tokens;
    }

    /// @notice The tokens under the pending policy change, ascending (empty when none is
    ///         pending).
    function pendingTokens() external view returns (address[] memory) {
        return _pendingTokens;
    }

    function _checkOpen() private view {
        if (participantSetup != address(0)) revert SetupNotSealed();
        if (frozen) revert DeploymentFrozen();
        if (paused) revert SettlementPaused();
    }

    // ------------------------------------------------------------------ governance

    /// @notice Change the base policy hash at once (the account and token lists stay committed).
    ///         Every statement the enclave signed under the old policy and not yet settled then
    ///         reverts `PolicyMismatch`: use it to set the policy up before the first statement;
    ///         a running deployment changes its policy with `schedulePolicy`.
    function setPolicyHash(bytes32 newBasePolicyHash) external onlyRole(GOVERNOR_ROLE) {
        if (participantSetup != address(0)) revert SetupNotSealed();
        if (pendingPolicyHash != bytes32(0)) revert PolicyPending(pendingPolicyHash);
        _setPolicy(newBasePolicyHash);
    }

    /// @notice Withdraw a scheduled policy change before its activation time (governance).
    ///         From `pendingPolicyActivatesAt` on, for `exitDelay`, it can no longer be withdrawn
    ///         or replaced (`PolicyDue`): the policy's verifiers approve a change to the enclave
    ///         only once it is due. After that an abandoned change can be withdrawn.
    function cancelPolicy() external onlyRole(GOVERNOR_ROLE) {
        bytes32 p = pendingPolicyHash;
        if (p == bytes32(0)) revert NoPolicyPending();
        _requireNotDue();
        pendingPolicyHash = bytes32(0);
        pendingBasePolicyHash = bytes32(0);
        pendingPolicyActivatesAt = 0;
        delete _pendingAccounts;
        delete _pendingTokens;
        emit PolicyCancelled(p);
    }

    /// @notice Schedule a policy change (governance, through the timelock): base hash
    ///         `newBasePolicyHash`, participants `added` and tokens `addedTokens` (each strictly
    ///         ascending, none already in its list) merged into the lists. Nothing is removed.
    ///         Statements under the current policy keep settling; from `activatesAt` (block
    ///         time) a statement under the new one may settle, and the first that does puts it
    ///         in force. `activatesAt` must lie in the future. Scheduling again replaces a
    ///         pending change before its activation time or once abandoned (`PolicyDue` in
    ///         between).
    function schedulePolicy(
        bytes32 newBasePolicyHash,
        address[] calldata added,
        address[] calldata addedTokens,
        uint64 activatesAt
    ) external onlyRole(GOVERNOR_ROLE) {
        if (participantSetup != address(0)) revert SetupNotSealed();
        if (pendingPolicyHash != bytes32(0)) _requireNotDue();
        address[] memory merged = _merged(_accounts, added, isParticipant, false);
        address[] memory mergedTokens = _merged(_tokens, addedTokens, isToken, true);
        bytes32 next = keccak256(
            abi.encode(
                newBasePolicyHash, keccak256(abi.encodePacked(merged)), keccak256(abi.encodePacked(mergedTokens))
            )
        );
        if (next == policyHash) revert PolicyUnchanged(next);
        // Never due at once: governance keeps a window to withdraw a mistaken change.
        if (activatesAt <= block.timestamp) revert ActivationNotInFuture(activatesAt, block.timestamp);
        pendingPolicyHash = next;
        pendingBasePolicyHash = newBasePolicyHash;
        pendingPolicyActivatesAt = activatesAt;
        _pendingAccounts = merged;
        _pendingTokens = mergedTokens;
        emit PolicyScheduled(next, newBasePolicyHash, added, addedTokens, activatesAt);
    }

    /// @dev `list` (ascending) with `added` (strictly ascending, none in `member`) merged in.
    function _merged(
        address[] storage list,
        address[] calldata added,
        mapping(address => bool) storage member,
        bool tokenList
    ) private view returns (address[] memory merged) {
        uint256 n = list.length;
        merged = new address[](n + added.length);
        uint256 i = 0;
        uint256 j = 0;
        address prevAdded = address(0);
        for (uint256 k = 0; k < merged.length; ++k) {
            if (j < added.length && (i == n || added[j] < list[i])) {
                address a = added[j];
                if (a <= prevAdded) revert NotSorted();
                if (member[a]) {
                    if (tokenList) revert AlreadyToken(a);
                    revert AlreadyParticipant(a);
                }
                prevAdded = a;
                merged[k] = a;
                ++j;
            } else {
                merged[k] = list[i];
                ++i;
            }
        }
    }

    /// @notice The policy in force, the pending one (zero: none) and its activation time, read
    ///         at one block (what a verifier reads before approving a change to the enclave).
    function policyState() external view returns (bytes32 inForce, bytes32 pending, uint64 activatesAt) {
        return (policyHash, pendingPolicyHash, pendingPolicyActivatesAt);
    }

    /// @dev A pending change may be withdrawn or replaced before its activation time, or once it
    ///      has been due for `exitDelay` without any statement putting it in force (abandoned: an
    ///      enclave that cannot adopt it must not lock policy changes for good). In between it
    ///      is fixed, because the policy's verifiers approve it to the enclave from its
    ///      activation time on.
    function _requireNotDue() private view {
        uint256 at = pendingPolicyActivatesAt;
        if (block.timestamp >= at && block.timestamp < at + exitDelay) {
            revert PolicyDue(pendingPolicyHash, pendingPolicyActivatesAt);
        }
    }

    /// @notice Allow enclaves of measurement `m` to sign statements for this deployment.
    function allowMeasurement(bytes32 m) external onlyRole(GOVERNOR_ROLE) {
        measurementAllowed[m] = true;
        emit MeasurementAllowed(m);
    }

    /// @notice Stop enclaves of measurement `m` from signing statements here (guardian: at once).
    function revokeMeasurement(bytes32 m) external {
        if (!hasRole(GUARDIAN_ROLE, msg.sender)) _checkRole(GOVERNOR_ROLE);
        measurementAllowed[m] = false;
        emit MeasurementRevoked(m);
    }

    /// @notice Pause settlement and deposits (guardian or governance). A pause longer than
    ///         `exitDelay` opens the escape hatch, so a pause cannot trap funds.
    function pause() external {
        if (!hasRole(GUARDIAN_ROLE, msg.sender)) _checkRole(GOVERNOR_ROLE);
        paused = true;
        emit PausedBy(msg.sender);
    }

    /// @notice Resume settlement (governance only, through the timelock).
    function unpause() external onlyRole(GOVERNOR_ROLE) {
        paused = false;
        emit Unpaused(msg.sender);
    }

    /// @notice Make `successor` the deployment's only signer (governance, through the timelock):
    ///         for a deployment whose enclave is gone without a handover. It must be Active in the
    ///         registry with a measurement allowed here.
    function adoptEnclave(address successor) external onlyRole(GOVERNOR_ROLE) {
        bytes32 m = _checkSuccessor(successor);
        emit EnclaveAdopted(successor, enclave, m);
        enclave = successor;
    }

    /// @notice Recovery after losing the enclave **and** the host's data (issue 12, "Lost data
    ///         directory"): make `successor` the deployment's only signer, lift the escape hatch
    ///         and restart its clock. Governance only, through the timelock: its delay (longer
    ///         than `exitDelay`) is the participants' notice — while the deployment is frozen
    ///         they may still `escapeWithdraw`, and every escape has already reduced the escrow
    ///         the successor resumes from.
    /// @dev The successor must be Active in the registry with a measurement allowed here
    ///      (`_checkSuccessor`). Nothing settled changes: `lastSequence`, `stateRoot`,
    ///      `logSize`, `logRoot` and `requestsDecided` stay, so the successor's first statement
    ///      is `lastSequence + 1` and must chain from `stateRoot` (`PrevRootMismatch`
    ///      otherwise), its effects must be covered by the escrow as it is now
    ///      (`InsufficientEscrow`), and anything the lost enclave signed above `lastSequence`
    ///      now reverts (`NotCurrentEnclave`). `lastSettledAt` is reset so the hatch does not
    ///      reopen at once; `resumedAt` gives a withdrawal request still undecided a full
    ///      `exitDelay` from now before it can reopen the hatch (`hatchOpensAt`), so the
    ///      successor has the time any enclave has to decide it. A paused deployment stays
    ///      paused (`unpause` is its own decision). The contract does not judge whether
    ///      anything was lost: governance decides, and the event records what it resumed from.
    function resumeAfterLoss(address successor) external onlyRole(GOVERNOR_ROLE) {
        if (participantSetup != address(0)) revert SetupNotSealed();
        _checkSuccessor(successor);
        emit ResumedAfterLoss(successor, enclave, lastSequence, stateRoot, logSize);
        enclave = successor;
        frozen = false;
        uint64 t = uint64(block.timestamp);
        lastSettledAt = t;
        resumedAt = t;
    }

    function _setPolicy(bytes32 base) private {
        bytes32 next = keccak256(abi.encode(base, accountsHash, tokensHash));
        emit PolicyChanged(policyHash, next);
        basePolicyHash = base;
        policyHash = next;
    }

    // ------------------------------------------------------------------ settlement

    /// @notice Verify and apply statement `s` with its `effects` and `exits`, signed by an active
    ///         enclave whose measurement this deployment allows.
    /// @return applied True if applied now; false if this exact statement was already settled
    ///         (an `AlreadySettled` event is emitted and nothing changes).
    /// @dev Checks, in order (DESIGN §8): frozen/paused, sequence (replay / conflict / gap), signature,
    ///      signer status in the registry and measurement here, previous root, policy, time window,
    ///      effects hash, effects order and membership, conservation per token, escrow cover of every
    ///      debit, exits order and membership, escrow cover of every exit.
    function settle(Statement calldata s, Effect[] calldata effects, Exit[] calldata exits, bytes calldata signature)
        external
        returns (bool applied)
    {
        if (participantSetup != address(0)) revert SetupNotSealed();
        if (frozen) revert DeploymentFrozen();
        if (paused) revert SettlementPaused();
        bytes32 digest = hashStatement(s);
        uint64 last = lastSequence;
        if (s.sequence <= last) {
            bytes32 settled = statementDigest[s.sequence];
            if (settled == digest && s.sequence != 0) {
                emit AlreadySettled(s.sequence, digest);
                return false;
            }
            revert SequenceConflict(s.sequence, settled, digest);
        }
        if (s.sequence != last + 1) revert SequenceGap(last + 1, s.sequence);

        address signer = _checkSigner(digest, signature);
        if (s.policyHash != policyHash) _activatePolicy(s.sequence, s.policyHash);
        _checkStatement(s, effects, exits);
        _applyEffects(effects);
        _applyExits(s.sequence, exits);
        _commit(s, digest, signer);
        return true;
    }

    /// @notice Verify and apply handover `h`, signed by the current enclave: from now on only
    ///         `h.successor` signs statements (DESIGN §8, issue 12).
    /// @return applied True if applied now; false if this exact handover was already settled.
    /// @dev Checks, in order: setup, frozen, paused, sequence (replay / conflict / gap), signer
    ///      (as `settle`), state root, policy, time window, successor != signer, successor Active
    ///      in the registry with the named measurement and attestation result, measurement
    ///      allowed here.
    function handover(Handover calldata h, bytes calldata signature) external returns (bool applied) {
        if (participantSetup != address(0)) revert SetupNotSealed();
        if (frozen) revert DeploymentFrozen();
        if (paused) revert SettlementPaused();
        bytes32 digest = hashHandover(h);
        uint64 last = lastSequence;
        if (h.sequence <= last) {
            bytes32 settled = statementDigest[h.sequence];
            if (settled == digest && h.sequence != 0) {
                emit AlreadySettled(h.sequence, digest);
                return false;
            }
            revert SequenceConflict(h.sequence, settled, digest);
        }
        if (h.sequence != last + 1) revert SequenceGap(last + 1, h.sequence);

        address signer = _checkSigner(digest, signature);
        if (h.policyHash != policyHash) _activatePolicy(h.sequence, h.policyHash);
        if (h.stateRoot != stateRoot) revert PrevRootMismatch(stateRoot, h.stateRoot);
        if (h.policyHash != policyHash) revert PolicyMismatch(policyHash, h.policyHash);
        if (block.timestamp < h.notBefore || block.timestamp > h.notAfter) {
            revert OutsideWindow(h.notBefore, h.notAfter, block.timestamp);
        }
        if (h.successor == signer) revert SelfHandover();
        (bytes32 m, bytes32 resultHash) = _successor(h.successor);
        if (m != h.successorMeasurement || resultHash != h.successorResultHash) {
            revert SuccessorMismatch(h.successor);
        }
        if (!measurementAllowed[m]) revert MeasurementNotAllowedHere(m);

        enclave = h.successor;
        lastSequence = h.sequence;
        statementDigest[h.sequence] = digest;
        logSize = h.logSize;
        logRoot = h.logRoot;
        lastSettledAt = uint64(block.timestamp);
        emit HandedOver(h.sequence, signer, h.successor, m);
        return true;
    }

    /// @dev The signer must be Active in the registry right now, with a measurement allowed here,
    ///      and be the deployment's enclave once one is set.
    function _checkSigner(bytes32 digest, bytes calldata signature) private view returns (address signer) {
        ECDSA.RecoverError err;
        (signer, err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err != ECDSA.RecoverError.NoError) revert BadSignature();
        uint8 status = registry.enclaveStatus(signer);
        if (status != 0) revert SignerNotActive(signer, status);
        (bytes32 m,,,,,,) = registry.enclaves(signer);
        if (!measurementAllowed[m]) revert MeasurementNotAllowedHere(m);
        address current = enclave;
        if (current != address(0) && signer != current) revert NotCurrentEnclave(current, signer);
    }

    /// @dev A successor must be Active in the registry now: its measurement and result hash.
    function _successor(address successor) private view returns (bytes32 m, bytes32 resultHash) {
        uint8 status = registry.enclaveStatus(successor);
        if (status != 0) revert SuccessorNotActive(successor, status);
        (m,, resultHash,,,,) = registry.enclaves(successor);
    }

    /// @dev `_successor`, and its measurement allowed here.
    function _checkSuccessor(address successor) private view returns (bytes32 m) {
        (m,) = _successor(successor);
        if (!measurementAllowed[m]) revert MeasurementNotAllowedHere(m);
    }

    /// @dev Root, policy, time window, effects hash, effects order and conservation.
    function _checkStatement(Statement calldata s, Effect[] calldata effects, Exit[] calldata exits) private view {
        if (s.prevStateRoot != stateRoot) revert PrevRootMismatch(stateRoot, s.prevStateRoot);
        if (s.policyHash != policyHash) revert PolicyMismatch(policyHash, s.policyHash);
        if (block.timestamp < s.notBefore || block.timestamp > s.notAfter) {
            revert OutsideWindow(s.notBefore, s.notAfter, block.timestamp);
        }
        bytes32 eh = hashEffects(effects, exits);
        if (eh != s.effectsHash) revert EffectsHashMismatch(s.effectsHash, eh);
        _checkEffects(effects);
    }

    /// @dev A statement under the pending policy, at or after its activation point, puts it in
    ///      force before the statement's own checks (its effects may name added participants).
    ///      Anything else is left to `_checkStatement` (`PolicyMismatch`).
    function _activatePolicy(uint64 sequence, bytes32 named) private {
        bytes32 next = pendingPolicyHash;
        if (next == bytes32(0) || named != next) return;
        uint64 activation = pendingPolicyActivatesAt;
        if (block.timestamp < activation) revert PolicyNotActiveYet(activation, block.timestamp);
        address[] storage merged = _pendingAccounts;
        for (uint256 k = 0; k < merged.length; ++k) {
            address a = merged[k];
            if (!isParticipant[a]) isParticipant[a] = true;
        }
        _accounts = merged;
        delete _pendingAccounts;
        accountsHash = keccak256(abi.encodePacked(_accounts));
        address[] storage mergedTokens = _pendingTokens;
        for (uint256 k = 0; k < mergedTokens.length; ++k) {
            address t = mergedTokens[k];
            if (!isToken[t]) isToken[t] = true;
        }
        _tokens = mergedTokens;
        delete _pendingTokens;
        tokensHash = keccak256(abi.encodePacked(_tokens));
        emit PolicyActivated(sequence, policyHash, next);
        emit PolicyChanged(policyHash, next);
        basePolicyHash = pendingBasePolicyHash;
        policyHash = next;
        policySince = sequence;
        pendingPolicyHash = bytes32(0);
        pendingBasePolicyHash = bytes32(0);
        pendingPolicyActivatesAt = 0;
    }

    function _commit(Statement calldata s, bytes32 digest, address signer) private {
        // The first settled statement binds the deployment to its signer: from then on only a
        // handover, `adoptEnclave` or `resumeAfterLoss` changes who signs (otherwise another
        // Active enclave of an allowed measurement — a second one the host started — could
        // settle the next sequence and void the real one's receipts without notice).
        if (enclave == address(0)) enclave = signer;
        stateRoot = s.newStateRoot;
        lastSequence = s.sequence;
        logSize = s.logSize;
        lastSettledAt = uint64(block.timestamp);
        logRoot = s.logRoot;
        statementDigest[s.sequence] = digest;
        emit StatementSettled(
            s.sequence, digest, s.newStateRoot, s.inputsRoot, s.inputCount, s.logSize, s.logRoot, signer
        );
    }

    /// @dev Order, membership and conservation. Sorting by token first makes each token's effects
    ///      contiguous, so the per-token sum is checked when the token changes, in one pass.
    function _checkEffects(Effect[] calldata effects) private view {
        uint256 n = effects.length;
        if (n == 0) return;
        address token = effects[0].token;
        address account = effects[0].account;
        if (!isToken[token]) revert TokenNotAllowed(token);
        if (!isParticipant[account]) revert NotAParticipant(account);
        int256 sum = effects[0].delta;
        for (uint256 i = 1; i < n; ++i) {
            Effect calldata e = effects[i];
            if (e.token == token) {
                if (e.account <= account) revert EffectsNotSorted(i);
                sum += e.delta;
            } else {
                if (e.token < token) revert EffectsNotSorted(i);
                if (sum != 0) revert NotConserved(token);
                token = e.token;
                if (!isToken[token]) revert TokenNotAllowed(token);
                sum = e.delta;
            }
            account = e.account;
            if (!isParticipant[account]) revert NotAParticipant(account);
        }
        if (sum != 0) revert NotConserved(token);
    }

    /// @dev Each (account, token) pair appears once (checked above), so a debit is covered iff the
    ///      escrow before this statement covers it.
    function _applyEffects(Effect[] calldata effects) private {
        for (uint256 i = 0; i < effects.length; ++i) {
            Effect calldata e = effects[i];
            int256 d = e.delta;
            if (d == 0) continue;
            if (d > 0) {
                _escrow[e.account][e.token] += uint256(d);
            } else {
                uint256 debit = uint256(-d);
                uint256 bal = _escrow[e.account][e.token];
                if (bal < debit) revert InsufficientEscrow(e.account, e.token);
                unchecked {
                    _escrow[e.account][e.token] = bal - debit;
                }
            }
        }
    }

    /// @dev Exits, strictly ascending by (token, account), each for a participant and token of this
    ///      deployment, each covered by the escrow left after the effects; each becomes claimable.
    ///      A first entry with token and account zero is the enclave's request marker, not an
    ///      exit: `amount` is how many withdrawal requests it has decided (never fewer than a
    ///      settled statement said, never more than were made).
    function _applyExits(uint64 sequence, Exit[] calldata exits) private {
        address prevToken = address(0);
        address prevAccount = address(0);
        uint256 start = 0;
        if (exits.length > 0 && exits[0].token == address(0) && exits[0].account == address(0)) {
            uint256 marker = exits[0].amount;
            uint64 decided = requestsDecided;
            uint64 made = exitRequestCount;
            if (marker < decided || marker > made) {
                revert BadRequestMarker(marker, decided, made);
            }
            requestsDecided = uint64(marker);
            start = 1;
        }
        for (uint256 i = start; i < exits.length; ++i) {
            Exit calldata x = exits[i];
            if (i > start && (x.token < prevToken || (x.token == prevToken && x.account <= prevAccount))) {
                revert ExitsNotSorted(i);
            }
            prevToken = x.token;
            prevAccount = x.account;
            if (x.amount == 0) revert ZeroAmount();
            if (!isToken[x.token]) revert TokenNotAllowed(x.token);
            if (!isParticipant[x.account]) revert NotAParticipant(x.account);
            uint256 bal = _escrow[x.account][x.token];
            if (bal < x.amount) revert InsufficientEscrow(x.account, x.token);
            unchecked {
                _escrow[x.account][x.token] = bal - x.amount;
            }
            claimable[x.account][x.token] += x.amount;
            emit ExitGranted(sequence, x.account, x.token, x.amount);
        }
    }

    // ------------------------------------------------------------------ views

    /// @notice The full EIP-712 digest (domain separator included) an enclave signs for `s`.
    /// @dev Every member is a static type, so abi.encode(typehash, s) is exactly EIP-712 encodeData.
    function hashStatement(Statement calldata s) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(STATEMENT_TYPEHASH, s)));
    }

    /// @notice The full EIP-712 digest an enclave signs for handover `h`.
    function hashHandover(Handover calldata h) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(HANDOVER_TYPEHASH, h)));
    }

    /// @notice `keccak256(abi.encode(effects, exits))`, the value a statement's `effectsHash` commits to.
    function hashEffects(Effect[] calldata effects, Exit[] calldata exits) public pure returns (bytes32) {
        return keccak256(abi.encode(effects, exits));
    }

    /// @notice The EIP-712 domain separator of this contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }
}
