// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title Sealbridge enclave registry
/// @notice Registers enclave signing addresses from attestation results signed by a threshold of
///         verifiers, against a measurement allowlist with validity windows (DESIGN §8, "Registry").
/// @dev Governance is role based (`GOVERNOR_ROLE`); in a real deployment the role holder is an
///      OpenZeppelin `TimelockController` so that every allowlist or verifier change is delayed.
///      `GUARDIAN_ROLE` can only make things safer at once: revoke an enclave, a measurement or a
///      verifier. A registration stays usable only while the verifiers that signed it still make
///      the threshold (no grace: removing a verifier stops its registrations at the next statement).
///      Settlement asks `enclaveStatus` on every statement, so revoking a measurement or an enclave
///      takes effect for the very next statement.
contract EnclaveRegistry is AccessControlDefaultAdminRules, EIP712 {
    /// @notice Verifier output about one enclave, signed (EIP-712) by the verifiers.
    /// @param tee 0 simulated, 1 SGX, 2 TDX, 3 SEV-SNP, 4 Nitro.
    /// @param measurement The enclave measurement (MRENCLAVE / MRTD / launch digest / PCRs hash).
    /// @param tcbStatus The verifier's TCB verdict (opaque to this contract, recorded in the hash).
    /// @param enclave The enclave's secp256k1 signing address (the statement signer).
    /// @param ed25519Key The enclave's Ed25519 public key.
    /// @param keyBundleHash Hash of the enclave's published key bundle.
    /// @param evidenceHash Hash of the raw attestation evidence.
    /// @param advisoryHash Hash of the advisories the verifier accepted.
    /// @param challengeBlock Block whose hash was the challenge (never 0: every result is fresh on chain).
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
        /// Bit i set: the verifier in slot i signed this registration's result.
        uint64 signerMask;
    }

    /// @notice Deployment parameters. An empty verifier list leaves registration closed until
    ///         governance adds verifiers (the development setup does this).
    struct Config {
        /// Receives DEFAULT_ADMIN_ROLE and GOVERNOR_ROLE (a TimelockController in production).
        address admin;
        /// Receives GUARDIAN_ROLE; may be zero.
        address guardian;
        /// Delay of a DEFAULT_ADMIN_ROLE transfer.
        uint48 adminDelay;
        address[] verifiers;
        uint32 threshold;
        bool allowSimulated;
        bytes32[] measurements;
        uint64[] validFrom;
        uint64[] validUntil;
        /// Oldest `issuedAt` accepted at registration, in seconds before now.
        uint32 maxResultAge;
        /// Longest `expiresAt - issuedAt` accepted.
        uint32 maxResultLifetime;
    }

    /// @notice Validity window of an allowed measurement: allowed while validFrom <= now < validUntil.
    struct MeasurementWindow {
        uint64 validFrom;
        uint64 validUntil;
    }

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    /// @notice Verifier slots ever assigned are at most this many (the signer mask is 64 bits).
    uint8 public constant MAX_VERIFIER_SLOTS = 64;

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
    /// @notice The verifiers that signed the registration no longer make the threshold.
    uint8 public constant STATUS_VERIFIERS_GONE = 5;

    /// @notice Number of distinct verifier signatures `register` needs (k of the verifier set).
    uint32 public threshold;
    /// @notice Number of addresses in the verifier set.
    uint32 public verifierCount;
    /// @notice Whether results with tee == 0 (simulated, no hardware) are accepted. Off by default.
    bool public allowSimulated;
    /// @notice Bit i set: the verifier in slot i is in the set now.
    uint64 public activeVerifierMask;
    /// @notice Oldest `issuedAt` accepted at registration, in seconds before now.
    uint32 public maxResultAge;
    /// @notice Longest `expiresAt - issuedAt` accepted at registration.
    uint32 public maxResultLifetime;
    /// @notice Verifier slots assigned so far (a slot is never reused).
    uint8 public verifierSlots;

    /// @notice 1 + the verifier's slot (0: never a verifier). Slots are permanent.
    mapping(address verifier => uint8) public verifierSlot;
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
    event FreshnessChanged(uint32 maxResultAge, uint32 maxResultLifetime);

    error ZeroAddress();
    error InvalidThreshold(uint32 threshold, uint32 verifierCount);
    error InvalidWindow(uint64 validFrom, uint64 validUntil);
    error InvalidFreshness(uint32 maxResultAge, uint32 maxResultLifetime);
    error LengthMismatch();
    error TooManyVerifiers();
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
    error ResultTooOld(uint64 issuedAt, uint256 nowTs, uint32 maxResultAge);
    error LifetimeTooLong(uint64 issuedAt, uint64 expiresAt, uint32 maxResultLifetime);
    error MeasurementNotAllowed(bytes32 measurement);
    error ZeroChallenge();
    error StaleChallenge(uint64 challengeBlock, uint256 blockNumber);
    error ChallengeMismatch(uint64 challengeBlock);
    error EnclaveIsRevoked(address enclave);
    error NotARenewal(uint64 currentExpiry, uint64 newExpiry);

    constructor(Config memory c)
        AccessControlDefaultAdminRules(c.adminDelay, c.admin)
        EIP712("Sealbridge EnclaveRegistry", "1")
    {
        _grantRole(GOVERNOR_ROLE, c.admin);
        if (c.guardian != address(0)) _grantRole(GUARDIAN_ROLE, c.guardian);
        for (uint256 i = 0; i < c.verifiers.length; ++i) {
            _addVerifier(c.verifiers[i]);
        }
        threshold = 1;
        if (c.verifiers.length > 0) _setThreshold(c.threshold);
        if (c.allowSimulated) {
            allowSimulated = true;
            emit SimulatedAllowed(true);
        }
        if (c.measurements.length != c.validFrom.length || c.measurements.length != c.validUntil.length) {
            revert LengthMismatch();
        }
        for (uint256 i = 0; i < c.measurements.length; ++i) {
            _allowMeasurement(c.measurements[i], c.validFrom[i], c.validUntil[i]);
        }
        _setFreshness(c.maxResultAge, c.maxResultLifetime);
    }

    // ------------------------------------------------------------------ governance

    /// @notice Add `verifier` to the verifier set.
    function addVerifier(address verifier) external onlyRole(GOVERNOR_ROLE) {
        _addVerifier(verifier);
    }

    /// @notice Remove `verifier` from the verifier set (guardian: at once). Every registration it
    ///         helped sign stops being Active as soon as its remaining signers fall below the
    ///         threshold. Governance cannot remove below the threshold; the guardian can (safety
    ///         first: registration then stays closed until governance repairs the set).
    function removeVerifier(address verifier) external {
        bool guardian = hasRole(GUARDIAN_ROLE, msg.sender);
        if (!guardian) _checkRole(GOVERNOR_ROLE);
        if (!isVerifier(verifier)) revert NotAVerifier(verifier);
        uint32 count = verifierCount - 1;
        if (!guardian && count < threshold) revert InvalidThreshold(threshold, count);
        activeVerifierMask &= ~(uint64(1) << (verifierSlot[verifier] - 1));
        verifierCount = count;
        emit VerifierRemoved(verifier);
    }

    /// @notice Set the number of verifier signatures a registration needs.
    function setThreshold(uint32 k) external onlyRole(GOVERNOR_ROLE) {
        _setThreshold(k);
    }

    /// @notice Accept (or stop accepting) results for the simulated TEE.
    /// @dev Development only: simulated evidence proves nothing about the code that runs.
    function setAllowSimulated(bool allowed) external onlyRole(GOVERNOR_ROLE) {
        allowSimulated = allowed;
        emit SimulatedAllowed(allowed);
    }

    /// @notice Bound the age and the lifetime of the attestation results accepted at registration.
    function setFreshness(uint32 maxAge, uint32 maxLifetime) external onlyRole(GOVERNOR_ROLE) {
        _setFreshness(maxAge, maxLifetime);
    }

    /// @notice Allow enclaves with measurement `m` from `validFrom` until `validUntil` (exclusive).
    function allowMeasurement(bytes32 m, uint64 validFrom, uint64 validUntil) external onlyRole(GOVERNOR_ROLE) {
        _allowMeasurement(m, validFrom, validUntil);
    }

    /// @notice Stop allowing measurement `m` (guardian: at once); its enclaves stop settling.
    function revokeMeasurement(bytes32 m) external {
        if (!hasRole(GUARDIAN_ROLE, msg.sender)) _checkRole(GOVERNOR_ROLE);
        delete measurementWindow[m];
        emit MeasurementRevoked(m);
    }

    /// @notice Revoke one enclave for good (guardian: at once); it can never register again.
    function revokeEnclave(address enclave) external {
        if (!hasRole(GUARDIAN_ROLE, msg.sender)) _checkRole(GOVERNOR_ROLE);
        Enclave storage e = enclaves[enclave];
        if (e.expiresAt == 0) revert EnclaveNotRegistered(enclave);
        e.revoked = true;
        emit EnclaveRevoked(enclave);
    }

    function _addVerifier(address verifier) private {
        if (verifier == address(0)) revert ZeroAddress();
        if (isVerifier(verifier)) revert VerifierAlreadyAdded(verifier);
        uint8 slot = verifierSlot[verifier];
        if (slot == 0) {
            if (verifierSlots >= MAX_VERIFIER_SLOTS) revert TooManyVerifiers();
            verifierSlots += 1;
            slot = verifierSlots;
            verifierSlot[verifier] = slot;
        }
        activeVerifierMask |= uint64(1) << (slot - 1);
        verifierCount += 1;
        emit VerifierAdded(verifier);
    }

    function _setThreshold(uint32 k) private {
        if (k == 0 || k > verifierCount) revert InvalidThreshold(k, verifierCount);
        emit ThresholdChanged(threshold, k);
        threshold = k;
    }

    function _setFreshness(uint32 maxAge, uint32 maxLifetime) private {
        if (maxAge == 0 || maxLifetime == 0) revert InvalidFreshness(maxAge, maxLifetime);
        maxResultAge = maxAge;
        maxResultLifetime = maxLifetime;
        emit FreshnessChanged(maxAge, maxLifetime);
    }

    function _allowMeasurement(bytes32 m, uint64 validFrom, uint64 validUntil) private {
        if (validFrom >= validUntil) revert InvalidWindow(validFrom, validUntil);
        measurementWindow[m] = MeasurementWindow(validFrom, validUntil);
        emit MeasurementAllowed(m, validFrom, validUntil);
    }

    // ------------------------------------------------------------------ registration

    /// @notice Register (or renew) the enclave named in `r`, given at least `threshold` verifier
    ///         signatures over its EIP-712 digest, from distinct verifiers in ascending address order.
    /// @dev Anyone may submit: the result itself is the authorisation. Every result must name a block
    ///      hash challenge from the last 256 blocks, be at most `maxResultAge` old and live at most
    ///      `maxResultLifetime`.
    function register(AttestationResult calldata r, bytes[] calldata signatures) external {
        if (r.enclave == address(0)) revert ZeroAddress();
        if (r.tee > TEE_MAX) revert UnknownTee(r.tee);
        if (r.tee == TEE_SIMULATED && !allowSimulated) revert SimulatedNotAllowed();
        if (r.issuedAt > block.timestamp) revert ResultNotYetValid(r.issuedAt, block.timestamp);
        if (block.timestamp >= r.expiresAt) revert ResultExpired(r.expiresAt, block.timestamp);
        if (block.timestamp - r.issuedAt > maxResultAge) {
            revert ResultTooOld(r.issuedAt, block.timestamp, maxResultAge);
        }
        if (r.expiresAt - r.issuedAt > maxResultLifetime) {
            revert LifetimeTooLong(r.issuedAt, r.expiresAt, maxResultLifetime);
        }
        if (!measurementAllowed(r.measurement)) revert MeasurementNotAllowed(r.measurement);
        _checkChallenge(r.challengeBlock, r.challenge);

        Enclave storage e = enclaves[r.enclave];
        if (e.revoked) revert EnclaveIsRevoked(r.enclave);
        bool renewal = e.expiresAt != 0;
        if (renewal && r.expiresAt <= e.expiresAt) revert NotARenewal(e.expiresAt, r.expiresAt);

        bytes32 digest = hashAttestationResult(r);
        uint64 mask = _checkSignatures(digest, signatures);

        e.measurement = r.measurement;
        e.ed25519Key = r.ed25519Key;
        e.resultHash = digest;
        e.expiresAt = r.expiresAt;
        e.tee = r.tee;
        e.signerMask = mask;
        emit EnclaveRegistered(r.enclave, r.measurement, digest, r.expiresAt, renewal);
    }

    /// @dev The challenge is the hash of one of the 256 most recent blocks (no other kind exists).
    function _checkChallenge(uint64 challengeBlock, bytes32 challenge) private view {
        if (challengeBlock == 0) revert ZeroChallenge();
        if (challengeBlock >= block.number || block.number - challengeBlock > 256) {
            revert StaleChallenge(challengeBlock, block.number);
        }
        if (blockhash(challengeBlock) != challenge) revert ChallengeMismatch(challengeBlock);
    }

    /// @dev At least `threshold` signatures, each recovering to a distinct current verifier, in
    ///      strictly ascending signer order (which rules out duplicates in one pass). Returns the mask
    ///      of the signers' slots.
    function _checkSignatures(bytes32 digest, bytes[] calldata signatures) private view returns (uint64 mask) {
        uint256 needed = threshold;
        if (signatures.length < needed) revert NotEnoughSignatures(signatures.length, needed);
        address prev = address(0);
        uint64 active = activeVerifierMask;
        for (uint256 i = 0; i < signatures.length; ++i) {
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signatures[i]);
            if (err != ECDSA.RecoverError.NoError) revert BadSignature(i);
            uint8 slot = verifierSlot[signer];
            if (slot == 0 || (active >> (slot - 1)) & 1 == 0) revert UnknownVerifier(signer);
            if (signer <= prev) revert SignersNotAscending(i);
            prev = signer;
            mask |= uint64(1) << (slot - 1);
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
        if (_popcount(e.signerMask & activeVerifierMask) < threshold) return STATUS_VERIFIERS_GONE;
        return STATUS_ACTIVE;
    }

    /// @notice Whether `verifier` is in the verifier set now.
    function isVerifier(address verifier) public view returns (bool) {
        uint8 slot = verifierSlot[verifier];
        return slot != 0 && (activeVerifierMask >> (slot - 1)) & 1 == 1;
    }

    function _popcount(uint64 x) private pure returns (uint256 n) {
        while (x != 0) {
            x &= x - 1;
            ++n;
        }
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
