// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {EnclaveRegistry} from "./EnclaveRegistry.sol";

/// @title Sealbridge settlement
/// @notice Escrows ERC-20 deposits and applies the balance effects of statements signed by an
///         active registered enclave, strictly in sequence (DESIGN §8, "Settlement contract").
/// @dev A statement commits to its effects through `effectsHash`; the effects themselves travel in
///      calldata. Re-submitting an already settled statement is recognised and never applied twice,
///      so relayers can retry blindly.
contract Settlement is AccessControl, EIP712 {
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

    /// @notice One escrow balance change: `delta` of `token` for `account`.
    struct Effect {
        address account;
        address token;
        int256 delta;
    }

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");

    bytes32 public constant STATEMENT_TYPEHASH = keccak256(
        "Statement(uint64 sequence,bytes32 prevStateRoot,bytes32 newStateRoot,bytes32 inputsRoot,uint32 inputCount,"
        "uint64 logSize,bytes32 logRoot,bytes32 policyHash,bytes32 effectsHash,uint64 notBefore,uint64 notAfter)"
    );

    /// @notice The registry consulted for the signer's status on every statement.
    EnclaveRegistry public immutable registry;

    /// @notice State root after the last settled statement (genesis: zero).
    bytes32 public stateRoot;
    /// @notice Sequence number of the last settled statement (genesis: 0; the first statement is 1).
    uint64 public lastSequence;
    /// @notice Log size committed by the last settled statement.
    uint64 public logSize;
    /// @notice Log root committed by the last settled statement.
    bytes32 public logRoot;
    /// @notice Hash of the policy statements must be produced under.
    bytes32 public policyHash;
    /// @notice EIP-712 digest of each settled statement, by sequence.
    mapping(uint64 sequence => bytes32) public statementDigest;

    mapping(address account => mapping(address token => uint256)) private _escrow;

    event Deposited(address indexed account, address indexed token, uint256 amount);
    event Withdrawn(address indexed account, address indexed token, uint256 amount);
    event PolicyChanged(bytes32 oldPolicyHash, bytes32 newPolicyHash);
    event AlreadySettled(uint64 indexed sequence, bytes32 digest);
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
    error SequenceConflict(uint64 sequence, bytes32 settledDigest, bytes32 digest);
    error SequenceGap(uint64 expected, uint64 sequence);
    error BadSignature();
    error SignerNotActive(address signer, uint8 status);
    error PrevRootMismatch(bytes32 expected, bytes32 got);
    error PolicyMismatch(bytes32 expected, bytes32 got);
    error OutsideWindow(uint64 notBefore, uint64 notAfter, uint256 nowTs);
    error EffectsHashMismatch(bytes32 committed, bytes32 computed);
    error EffectsNotSorted(uint256 index);
    error NotConserved(address token);
    error InsufficientEscrow(address account, address token);

    /// @param registry_ The enclave registry.
    /// @param admin Receives DEFAULT_ADMIN_ROLE and GOVERNOR_ROLE (a TimelockController in production).
    /// @param policyHash_ The initial policy hash.
    constructor(EnclaveRegistry registry_, address admin, bytes32 policyHash_) EIP712("Sealbridge Settlement", "1") {
        if (address(registry_) == address(0) || admin == address(0)) revert ZeroAddress();
        registry = registry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNOR_ROLE, admin);
        policyHash = policyHash_;
        emit PolicyChanged(bytes32(0), policyHash_);
    }

    // ------------------------------------------------------------------ escrow

    /// @notice Move `amount` of `token` from the caller into escrow (needs a prior ERC-20 approval).
    /// @dev Credits `amount` as requested: fee-on-transfer and rebasing tokens are not supported.
    function deposit(IERC20 token, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        _escrow[msg.sender][address(token)] += amount;
        emit Deposited(msg.sender, address(token), amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Take `amount` of `token` out of the caller's escrow.
    function withdraw(IERC20 token, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 bal = _escrow[msg.sender][address(token)];
        if (bal < amount) revert InsufficientEscrow(msg.sender, address(token));
        unchecked {
            _escrow[msg.sender][address(token)] = bal - amount;
        }
        emit Withdrawn(msg.sender, address(token), amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Escrowed balance of `account` in `token`.
    function balanceOf(address account, address token) external view returns (uint256) {
        return _escrow[account][token];
    }

    // ------------------------------------------------------------------ governance

    /// @notice Change the policy hash that new statements must carry.
    function setPolicyHash(bytes32 newPolicyHash) external onlyRole(GOVERNOR_ROLE) {
        emit PolicyChanged(policyHash, newPolicyHash);
        policyHash = newPolicyHash;
    }

    // ------------------------------------------------------------------ settlement

    /// @notice Verify and apply statement `s` with its `effects`, signed by an active enclave.
    /// @return applied True if applied now; false if this exact statement was already settled
    ///         (an `AlreadySettled` event is emitted and nothing changes).
    /// @dev Checks, in order (DESIGN §8): sequence (replay / conflict / gap), signature, signer
    ///      status in the registry, previous root, policy, time window, effects hash, effects order
    ///      (strictly ascending by (token, account), so each pair appears once), conservation per
    ///      token, escrow cover of every debit.
    function settle(Statement calldata s, Effect[] calldata effects, bytes calldata signature)
        external
        returns (bool applied)
    {
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
        _checkStatement(s, effects);
        _applyEffects(effects);
        _commit(s, digest, signer);
        return true;
    }

    /// @dev The signer must be a registered enclave that is Active in the registry right now.
    function _checkSigner(bytes32 digest, bytes calldata signature) private view returns (address signer) {
        ECDSA.RecoverError err;
        (signer, err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err != ECDSA.RecoverError.NoError) revert BadSignature();
        uint8 status = registry.enclaveStatus(signer);
        if (status != 0) revert SignerNotActive(signer, status);
    }

    /// @dev Root, policy, time window, effects hash, effects order and conservation.
    function _checkStatement(Statement calldata s, Effect[] calldata effects) private view {
        if (s.prevStateRoot != stateRoot) revert PrevRootMismatch(stateRoot, s.prevStateRoot);
        if (s.policyHash != policyHash) revert PolicyMismatch(policyHash, s.policyHash);
        if (block.timestamp < s.notBefore || block.timestamp > s.notAfter) {
            revert OutsideWindow(s.notBefore, s.notAfter, block.timestamp);
        }
        bytes32 eh = hashEffects(effects);
        if (eh != s.effectsHash) revert EffectsHashMismatch(s.effectsHash, eh);
        _checkEffects(effects);
    }

    function _commit(Statement calldata s, bytes32 digest, address signer) private {
        stateRoot = s.newStateRoot;
        lastSequence = s.sequence;
        logSize = s.logSize;
        logRoot = s.logRoot;
        statementDigest[s.sequence] = digest;
        emit StatementSettled(
            s.sequence, digest, s.newStateRoot, s.inputsRoot, s.inputCount, s.logSize, s.logRoot, signer
        );
    }

    /// @dev Order and conservation. Sorting by token first makes each token's effects contiguous,
    ///      so the per-token sum is checked when the token changes, in one pass and no memory.
    function _checkEffects(Effect[] calldata effects) private pure {
        uint256 n = effects.length;
        if (n == 0) return;
        address token = effects[0].token;
        address account = effects[0].account;
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
                sum = e.delta;
            }
            account = e.account;
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

    // ------------------------------------------------------------------ views

    /// @notice The full EIP-712 digest (domain separator included) an enclave signs for `s`.
    /// @dev Every member is a static type, so abi.encode(typehash, s) is exactly EIP-712 encodeData.
    function hashStatement(Statement calldata s) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(STATEMENT_TYPEHASH, s)));
    }

    /// @notice `keccak256(abi.encode(effects))`, the value a statement's `effectsHash` commits to.
    function hashEffects(Effect[] calldata effects) public pure returns (bytes32) {
        return keccak256(abi.encode(effects));
    }

    /// @notice The EIP-712 domain separator of this contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }
}
