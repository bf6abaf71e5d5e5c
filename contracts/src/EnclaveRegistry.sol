// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title Sealbridge enclave registry
/// @notice Registers enclave signing addresses from attestation results signed by a threshold of
///         verifiers, against a measurement allowlist with validity windows (DESIGN §8, "Registry").
/// @dev Governance is role based (`GOVERNOR_ROLE`); in a real deployment the role holder is an
///      OpenZeppelin `TimelockController` so that every allowlist or verifier change is delayed.
///      Settlement asks `enclaveStatus` on every statement, so revoking a measurement or an enclave
///      takes effect for the very next statement.
contract EnclaveRegistry is AccessControl, EIP712 {
    /// @notice Verifier output about one enclave, signed (EIP-712) by the verifiers.
    /// @param tee 0 simulated, 1 SGX, 2 TDX, 3 SEV-SNP, 4 Nitro.
    /// @param measurement The enclave measurement (MRENCLAVE / MRTD / launch digest / PCRs hash).
    /// @param tcbStatus The verifier's TCB verdict (opaque to this contract, recorded in the hash).
    /// @param enclave The enclave's secp256k1 signing address (the statement signer).
    /// @param ed25519Key The enclave's Ed25519 public key.
    /// @param keyBundleHash Hash of the enclave's published key bundle.
    /// @param evidenceHash Hash of the raw attestation evidence.
    /// @param advisoryHash Hash of the advisories the verifier accepted.
    /// @param challengeBlock Block whose hash was the challenge, or 0 if `challenge` is a verifier nonce.
    /// @param challenge The freshness challenge bound into the evidence.
    /// @param issuedAt The result is valid from this time (unix seconds).
    /// @param expiresAt The result, and the registration, expire at this time (exclusive).
    struct AttestationResult {
        uint8 tee;
        bytes32 measurement;
        uint8 tcbStatus;
        address enclave;
        bytes32 ed25519Key;
        bytes32 keyBundleHash;
        bytes32 evidenceHash;
        bytes32 advisoryHash;
        uint64 challengeBlock;
        bytes32 challenge;
        uint64 issuedAt;
        uint64 expiresAt;
    }

    /// @notice What the registry keeps about a registered enclave.
    struct Enclave {
        bytes32 measurement;
        bytes32 ed25519Key;
        bytes32 resultHash;
        uint64 expiresAt;
        uint8 tee;
        bool revoked;
    }

    /// @notice Validity window of an allowed measurement: allowed while validFrom <= now < validUntil.
    struct MeasurementWindow {
        uint64 validFrom;
        uint64 validUntil;
    }

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");

    bytes32 public constant ATTESTATION_RESULT_TYPEHASH = keccak256(
        "AttestationResult(uint8 tee,bytes32 measurement,uint8 tcbStatus,address enclave,bytes32 ed25519Key,"
        "bytes32 keyBundleHash,bytes32 evidenceHash,bytes32 advisoryHash,uint64 challengeBlock,bytes32 challenge,"
        "uint64 issuedAt,uint64 expiresAt)"
    );

    uint8 public constant TEE_SIMULATED = 0;
    uint8 public constant TEE_MAX = 4;

    /// Values returned by `enclaveStatus`.
    uint8 public constant STATUS_ACTIVE = 0;
    uint8 public constant STATUS_NOT_REGISTERED = 1;
    uint8 public constant STATUS_EXPIRED = 2;
    uint8 public constant STATUS_REVOKED = 3;
    uint8 public constant STATUS_MEASUREMENT_NOT_ALLOWED = 4;

    /// @notice Number of distinct verifier signatures `register` needs (k of the verifier set).
    uint32 public threshold;
    /// @notice Number of addresses in the verifier set.
    uint32 public verifierCount;
    /// @notice Whether results with tee == 0 (simulated, no hardware) are accepted. Off by default.
    bool public allowSimulated;

    mapping(address verifier => bool) public isVerifier;
    mapping(bytes32 measurement => MeasurementWindow) public measurementWindow;
    mapping(address enclave => Enclave) public enclaves;

    event EnclaveRegistered(
        address indexed enclave, bytes32 indexed measurement, bytes32 resultHash, uint64 expiresAt, bool renewal
    );
    event EnclaveRevoked(address indexed enclave);
    event MeasurementAllowed(bytes32 indexed measurement, uint64 validFrom, uint64 validUntil);
    event MeasurementRevoked(bytes32 indexed measurement);
    event VerifierAdded(address indexed verifier);
    event VerifierRemoved(address indexed verifier);
    event ThresholdChanged(uint32 oldThreshold, uint32 newThreshold);
    event SimulatedAllowed(bool allowed);

    error ZeroAddress();
    error InvalidThreshold(uint32 threshold, uint32 verifierCount);
    error InvalidWindow(uint64 validFrom, uint64 validUntil);
    error VerifierAlreadyAdded(address verifier);
    error NotAVerifier(address verifier);
    error EnclaveNotRegistered(address enclave);
    error NotEnoughSignatures(uint256 got, uint256 needed);
    error BadSignature(uint256 index);
    error UnknownVerifier(address signer);
    error SignersNotAscending(uint256 index);
    error UnknownTee(uint8 tee);
    error SimulatedNotAllowed();
    error ResultNotYetValid(uint64 issuedAt, uint256 nowTs);
    error ResultExpired(uint64 expiresAt, uint256 nowTs);
    error MeasurementNotAllowed(bytes32 measurement);
    error StaleChallenge(uint64 challengeBlock, uint256 blockNumber);
    error ChallengeMismatch(uint64 challengeBlock);
    error EnclaveIsRevoked(address enclave);
    error NotARenewal(uint64 currentExpiry, uint64 newExpiry);

    /// @param admin Receives DEFAULT_ADMIN_ROLE and GOVERNOR_ROLE (a TimelockController in production).
    /// @dev The verifier set starts empty with threshold 1, so nothing can register until governance
    ///      adds verifiers.
    constructor(address admin) EIP712("Sealbridge EnclaveRegistry", "1") {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNOR_ROLE, admin);
        threshold = 1;
    }

    // ------------------------------------------------------------------ governance

    /// @notice Add `verifier` to the verifier set.
    function addVerifier(address verifier) external onlyRole(GOVERNOR_ROLE) {
        if (verifier == address(0)) revert ZeroAddress();
        if (isVerifier[verifier]) revert VerifierAlreadyAdded(verifier);
        isVerifier[verifier] = true;
        verifierCount += 1;
        emit VerifierAdded(verifier);
    }

    /// @notice Remove `verifier`; refused if the set would become smaller than the threshold.
    function removeVerifier(address verifier) external onlyRole(GOVERNOR_ROLE) {
        if (!isVerifier[verifier]) revert NotAVerifier(verifier);
        uint32 count = verifierCount - 1;
        if (count < threshold) revert InvalidThreshold(threshold, count);
        isVerifier[verifier] = false;
        verifierCount = count;
        emit VerifierRemoved(verifier);
    }

    /// @notice Set k, the number of verifier signatures required; 1 <= k <= verifierCount.
    function setThreshold(uint32 k) external onlyRole(GOVERNOR_ROLE) {
        if (k == 0 || k > verifierCount) revert InvalidThreshold(k, verifierCount);
        emit ThresholdChanged(threshold, k);
        threshold = k;
    }

    /// @notice Accept or refuse simulated (tee == 0) results. Dangerous: test deployments only.
    function setAllowSimulated(bool allowed) external onlyRole(GOVERNOR_ROLE) {
        allowSimulated = allowed;
        emit SimulatedAllowed(allowed);
    }

    /// @notice Allow measurement `m` while validFrom <= block.timestamp < validUntil (replaces any window).
    function allowMeasurement(bytes32 m, uint64 validFrom, uint64 validUntil) external onlyRole(GOVERNOR_ROLE) {
        if (validFrom >= validUntil) revert InvalidWindow(validFrom, validUntil);
        measurementWindow[m] = MeasurementWindow(validFrom, validUntil);
        emit MeasurementAllowed(m, validFrom, validUntil);
    }

    /// @notice Disallow measurement `m` at once; every enclave with it stops being Active.
    function revokeMeasurement(bytes32 m) external onlyRole(GOVERNOR_ROLE) {
        delete measurementWindow[m];
        emit MeasurementRevoked(m);
    }

    /// @notice Revoke a registered enclave for good (it cannot re-register).
    function revokeEnclave(address enclave) external onlyRole(GOVERNOR_ROLE) {
        Enclave storage e = enclaves[enclave];
        if (e.expiresAt == 0) revert EnclaveNotRegistered(enclave);
        e.revoked = true;
        emit EnclaveRevoked(enclave);
    }

    // ------------------------------------------------------------------ registration

    /// @notice Register (or renew) `r.enclave` from a result signed by at least `threshold` verifiers.
    /// @param signatures 65-byte (r, s, v) signatures over `hashAttestationResult(r)`, ordered by
    ///        strictly ascending signer address (this rules out counting one verifier twice).
    /// @dev Anyone may submit; the verifier signatures are the authority (DESIGN §8).
    function register(AttestationResult calldata r, bytes[] calldata signatures) external {
        if (r.enclave == address(0)) revert ZeroAddress();
        if (r.tee > TEE_MAX) revert UnknownTee(r.tee);
        if (r.tee == TEE_SIMULATED && !allowSimulated) revert SimulatedNotAllowed();
        if (r.issuedAt > block.timestamp) revert ResultNotYetValid(r.issuedAt, block.timestamp);
        if (block.timestamp >= r.expiresAt) revert ResultExpired(r.expiresAt, block.timestamp);
        if (!measurementAllowed(r.measurement)) revert MeasurementNotAllowed(r.measurement);
        _checkChallenge(r.challengeBlock, r.challenge);

        Enclave storage e = enclaves[r.enclave];
        if (e.revoked) revert EnclaveIsRevoked(r.enclave);
        bool renewal = e.expiresAt != 0;
        if (renewal && r.expiresAt <= e.expiresAt) revert NotARenewal(e.expiresAt, r.expiresAt);

        bytes32 digest = hashAttestationResult(r);
        _checkSignatures(digest, signatures);

        e.measurement = r.measurement;
        e.ed25519Key = r.ed25519Key;
        e.resultHash = digest;
        e.expiresAt = r.expiresAt;
        e.tee = r.tee;
        emit EnclaveRegistered(r.enclave, r.measurement, digest, r.expiresAt, renewal);
    }

    /// @dev Block-hash challenges must name one of the last 256 blocks (the ones BLOCKHASH can see)
    ///      and match its hash; challengeBlock == 0 means the challenge was a verifier nonce.
    function _checkChallenge(uint64 challengeBlock, bytes32 challenge) private view {
        if (challengeBlock == 0) return;
        if (challengeBlock >= block.number || block.number - challengeBlock > 256) {
            revert StaleChallenge(challengeBlock, block.number);
        }
        if (blockhash(challengeBlock) != challenge) revert ChallengeMismatch(challengeBlock);
    }

    function _checkSignatures(bytes32 digest, bytes[] calldata signatures) private view {
        uint256 needed = threshold;
        if (signatures.length < needed) revert NotEnoughSignatures(signatures.length, needed);
        address prev = address(0);
        for (uint256 i = 0; i < signatures.length; ++i) {
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signatures[i]);
            if (err != ECDSA.RecoverError.NoError) revert BadSignature(i);
            if (!isVerifier[signer]) revert UnknownVerifier(signer);
            if (signer <= prev) revert SignersNotAscending(i);
            prev = signer;
        }
    }

    // ------------------------------------------------------------------ views

    /// @notice Whether measurement `m` is allowed at the current block time.
    function measurementAllowed(bytes32 m) public view returns (bool) {
        MeasurementWindow memory w = measurementWindow[m];
        return w.validFrom <= block.timestamp && block.timestamp < w.validUntil;
    }

    /// @notice 0 Active, 1 NotRegistered, 2 Expired, 3 Revoked, 4 MeasurementNotAllowed (now).
    function enclaveStatus(address enclave) public view returns (uint8) {
        Enclave storage e = enclaves[enclave];
        uint64 expiresAt = e.expiresAt;
        if (expiresAt == 0) return STATUS_NOT_REGISTERED;
        if (e.revoked) return STATUS_REVOKED;
        if (block.timestamp >= expiresAt) return STATUS_EXPIRED;
        if (!measurementAllowed(e.measurement)) return STATUS_MEASUREMENT_NOT_ALLOWED;
        return STATUS_ACTIVE;
    }

    /// @notice Whether `enclave` may sign statements now.
    function isActive(address enclave) external view returns (bool) {
        return enclaveStatus(enclave) == STATUS_ACTIVE;
    }

    /// @notice The full EIP-712 digest (domain separator included) the verifiers sign for `r`.
    /// @dev Every member is a static type, so abi.encode(typehash, r) is exactly EIP-712 encodeData.
    function hashAttestationResult(AttestationResult calldata r) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(ATTESTATION_RESULT_TYPEHASH, r)));
    }

    /// @notice The EIP-712 domain separator of this registry.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }
}
