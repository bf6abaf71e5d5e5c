// The chain side, with viem: is the enclave's key registered and active under this deployment's
// policy (docs/PROTOCOL.md §2b step 1), and what a settled statement says and who signed it
// (§8, EIP-712).
import {
  decodeFunctionData,
  encodeAbiParameters,
  getAddress,
  hashTypedData,
  keccak256 as viemKeccak,
  parseAbi,
  parseAbiItem,
  recoverTypedDataAddress,
  type Hex,
  type PublicClient,
} from "viem";
import { equal, fromHex, SealbridgeError, toHex, type Bytes } from "./bytes.js";
import { programId, type Enclave } from "./enclave.js";

export const settlementAbi = parseAbi([
  "function registry() view returns (address)",
  "function measurementAllowed(bytes32 measurement) view returns (bool)",
  "function policyHash() view returns (bytes32)",
  "function policyState() view returns (bytes32 inForce, bytes32 pending, uint64 activatesAt)",
  "function participants() view returns (address[])",
  "function tokens() view returns (address[])",
  "function logSize() view returns (uint64)",
  "function logRoot() view returns (bytes32)",
  "function stateRoot() view returns (bytes32)",
  "function settle((uint64 sequence, bytes32 prevStateRoot, bytes32 newStateRoot, bytes32 inputsRoot, uint32 inputCount, uint64 logSize, bytes32 logRoot, bytes32 policyHash, bytes32 effectsHash, uint64 notBefore, uint64 notAfter) s, (address account, address token, int256 delta)[] effects, (address account, address token, uint256 amount)[] exits, bytes signature) returns (bool applied)",
]);

export const registryAbi = parseAbi([
  "function enclaveStatus(address enclave) view returns (uint8)",
  "function enclaves(address enclave) view returns (bytes32 measurement, bytes32 ed25519Key, bytes32 resultHash, uint64 expiresAt, uint8 tee, bool revoked, uint64 signerMask)",
]);

export const statementSettledEvent = parseAbiItem(
  "event StatementSettled(uint64 indexed sequence, bytes32 digest, bytes32 newStateRoot, bytes32 inputsRoot, uint32 inputCount, uint64 logSize, bytes32 logRoot, address signer)",
);

/** Registry status codes (EnclaveRegistry.enclaveStatus). */
export const ENCLAVE_STATUS = ["Active", "NotRegistered", "Expired", "Revoked", "MeasurementNotAllowed"];

const hex = (b: Bytes): Hex => `0x${toHex(b)}`;

export interface ChainTie {
  registry: `0x${string}`;
  expiresAt: bigint;
  tee: number;
  policyHash: Hex;
  participants: readonly `0x${string}`[];
  tokens: readonly `0x${string}`[];
}

/**
 * §2b step 1: `settlement` (pinned by the caller, never taken from the node) names the registry;
 * the enclave's address is Active there with the presented Ed25519 key and measurement; the
 * measurement is allowed; the enclave's policy hash is the one in force (or a pending one that
 * is due); the program id is `programId(measurement, policyHash)`. Participants and tokens come
 * from the chain.
 */
export async function verifyEnclaveOnChain(client: PublicClient, enclave: Enclave, settlement: `0x${string}`): Promise<ChainTie> {
  const chainId = BigInt(await client.getChainId());
  if (chainId !== enclave.chainId) {
    throw new SealbridgeError("chain-mismatch", `the RPC is chain ${chainId}, the enclave settles on ${enclave.chainId}`);
  }
  if (settlement.toLowerCase() !== enclave.settlement) {
    throw new SealbridgeError("chain-mismatch", `the enclave settles at ${enclave.settlement}, not ${settlement}`);
  }
  const read = <T>(functionName: string, address: `0x${string}`, abi: typeof settlementAbi | typeof registryAbi, args: unknown[] = []) =>
    client.readContract({ address, abi, functionName, args } as never) as Promise<T>;
  const registry = (await read<`0x${string}`>("registry", settlement, settlementAbi)).toLowerCase() as `0x${string}`;
  if (registry !== enclave.registry) {
    throw new SealbridgeError("chain-mismatch", `Settlement.registry() is ${registry}, the node says ${enclave.registry}`);
  }
  const status = await read<number>("enclaveStatus", registry, registryAbi, [enclave.address]);
  if (status !== 0) {
    throw new SealbridgeError("not-registered", `enclave ${enclave.address} is ${ENCLAVE_STATUS[status] ?? status} in the registry`);
  }
  const [measurement, ed25519Key, , expiresAt, tee] = await read<readonly [Hex, Hex, Hex, bigint, number, boolean, bigint]>(
    "enclaves",
    registry,
    registryAbi,
    [enclave.address],
  );
  if (!equal(fromHex(ed25519Key), enclave.ed25519)) {
    throw new SealbridgeError("not-registered", "the registry holds another Ed25519 key for this address");
  }
  if (!equal(fromHex(measurement), enclave.measurement)) {
    throw new SealbridgeError("not-registered", "the registry holds another measurement for this enclave");
  }
  if (!(await read<boolean>("measurementAllowed", settlement, settlementAbi, [measurement]))) {
    throw new SealbridgeError("not-registered", `measurement ${measurement} is not allowed by the settlement`);
  }
  let policyHash = await read<Hex>("policyHash", settlement, settlementAbi);
  if (!equal(fromHex(policyHash), enclave.policyHash)) {
    const [inForce, pending, activatesAt] = await read<readonly [Hex, Hex, bigint]>("policyState", settlement, settlementAbi);
    const now = (await client.getBlock()).timestamp;
    if (equal(fromHex(inForce), enclave.policyHash)) policyHash = inForce;
    else if (equal(fromHex(pending), enclave.policyHash) && now >= activatesAt) policyHash = pending;
    else throw new SealbridgeError("chain-mismatch", `the enclave runs policy ${hex(enclave.policyHash)}, the chain has ${inForce}`);
  }
  if (!equal(programId(enclave.measurement, fromHex(policyHash)), enclave.programId)) {
    throw new SealbridgeError("chain-mismatch", "the program id is not that of the registered measurement and the policy in force");
  }
  return {
    registry,
    expiresAt,
    tee,
    policyHash,
    participants: await read<readonly `0x${string}`[]>("participants", settlement, settlementAbi),
    tokens: await read<readonly `0x${string}`[]>("tokens", settlement, settlementAbi),
  };
}

export interface Statement {
  sequence: bigint;
  prevStateRoot: Hex;
  newStateRoot: Hex;
  inputsRoot: Hex;
  inputCount: number;
  logSize: bigint;
  logRoot: Hex;
  policyHash: Hex;
  effectsHash: Hex;
  notBefore: bigint;
  notAfter: bigint;
}
export interface Effect {
  account: `0x${string}`;
  token: `0x${string}`;
  delta: bigint;
}
export interface Exit {
  account: `0x${string}`;
  token: `0x${string}`;
  amount: bigint;
}

const statementTypes = {
  Statement: [
    { name: "sequence", type: "uint64" },
    { name: "prevStateRoot", type: "bytes32" },
    { name: "newStateRoot", type: "bytes32" },
    { name: "inputsRoot", type: "bytes32" },
    { name: "inputCount", type: "uint32" },
    { name: "logSize", type: "uint64" },
    { name: "logRoot", type: "bytes32" },
    { name: "policyHash", type: "bytes32" },
    { name: "effectsHash", type: "bytes32" },
    { name: "notBefore", type: "uint64" },
    { name: "notAfter", type: "uint64" },
  ],
} as const;

export const settlementDomain = (chainId: bigint, settlement: `0x${string}`) =>
  ({ name: "Sealbridge Settlement", version: "1", chainId, verifyingContract: getAddress(settlement) }) as const;

/** The EIP-712 digest the enclave signs (§8). */
export function statementDigest(s: Statement, chainId: bigint, settlement: `0x${string}`): Hex {
  return hashTypedData({ domain: settlementDomain(chainId, settlement), types: statementTypes, primaryType: "Statement", message: s });
}

/** `effectsHash = keccak256(abi.encode(effects, exits))` (§8). */
export function effectsHash(effects: readonly Effect[], exits: readonly Exit[]): Hex {
  return viemKeccak(
    encodeAbiParameters(
      [
        { type: "tuple[]", components: [{ name: "account", type: "address" }, { name: "token", type: "address" }, { name: "delta", type: "int256" }] },
        { type: "tuple[]", components: [{ name: "account", type: "address" }, { name: "token", type: "address" }, { name: "amount", type: "uint256" }] },
      ],
      [effects, exits],
    ),
  );
}

/**
 * Verify a statement's EIP-712 signature (65 bytes, low s, v 27/28) and return the signer,
 * which must be `expectedSigner` when given (the registered enclave's address).
 */
export async function verifyStatement(
  s: Statement,
  signature: Hex,
  chainId: bigint,
  settlement: `0x${string}`,
  expectedSigner?: `0x${string}`,
): Promise<`0x${string}`> {
  const sig = fromHex(signature);
  if (sig.length !== 65 || (sig[64] !== 27 && sig[64] !== 28)) {
    throw new SealbridgeError("malformed", "statement signature: not 65 bytes r ‖ s ‖ v with v 27 or 28");
  }
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  if (BigInt(`0x${toHex(sig.slice(32, 64))}`) > n / 2n) {
    throw new SealbridgeError("malformed", "statement signature: high s");
  }
  const signer = (
    await recoverTypedDataAddress({ domain: settlementDomain(chainId, settlement), types: statementTypes, primaryType: "Statement", message: s, signature })
  ).toLowerCase() as `0x${string}`;
  if (expectedSigner && signer !== expectedSigner.toLowerCase()) {
    throw new SealbridgeError("bad-signature", `statement ${s.sequence} signed by ${signer}, not ${expectedSigner}`);
  }
  return signer;
}

export interface SettledStatement {
  statement: Statement;
  effects: readonly Effect[];
  exits: readonly Exit[];
  signature: Hex;
  signer: `0x${string}`;
  txHash: Hex;
  blockNumber: bigint;
}

/**
 * Every statement settled at `settlement`, read from `StatementSettled` events and the calldata
 * of each `settle`; for each: the EIP-712 signature recovers the event's signer, that signer is
 * Active in the registry, and the effects hash is that of the calldata's effects and exits.
 */
export async function settledStatements(client: PublicClient, settlement: `0x${string}`, fromBlock = 0n): Promise<SettledStatement[]> {
  const chainId = BigInt(await client.getChainId());
  const registry = (await client.readContract({ address: settlement, abi: settlementAbi, functionName: "registry" })) as `0x${string}`;
  const logs = await client.getLogs({ address: settlement, event: statementSettledEvent, fromBlock, toBlock: "latest" });
  const out: SettledStatement[] = [];
  for (const log of logs) {
    const tx = await client.getTransaction({ hash: log.transactionHash! });
    const call = decodeFunctionData({ abi: settlementAbi, data: tx.input });
    if (call.functionName !== "settle") {
      throw new SealbridgeError("malformed", `transaction ${tx.hash} settled a statement without calling settle directly`);
    }
    const [statement, effects, exits, signature] = call.args as unknown as [Statement, Effect[], Exit[], Hex];
    if (statement.sequence !== log.args.sequence) {
      throw new SealbridgeError("malformed", `transaction ${tx.hash}: event and calldata name different statements`);
    }
    if (effectsHash(effects, exits) !== statement.effectsHash) {
      throw new SealbridgeError("bad-signature", `statement ${statement.sequence}: effects hash does not match its effects`);
    }
    const signer = await verifyStatement(statement, signature, chainId, settlement, log.args.signer);
    const status = await client.readContract({ address: registry, abi: registryAbi, functionName: "enclaveStatus", args: [signer], blockNumber: log.blockNumber! });
    if (status !== 0) {
      throw new SealbridgeError("not-registered", `statement ${statement.sequence} signed by ${signer}, ${ENCLAVE_STATUS[status]} at its block`);
    }
    out.push({ statement, effects, exits, signature, signer, txHash: tx.hash, blockNumber: log.blockNumber! });
  }
  return out;
}
