// @sealbridge/sdk: a light client of Sealbridge (docs/PROTOCOL.md is the wire format).
export * from "./bytes.js";
export * from "./cbor.js";
export * from "./hash.js";
export * from "./envelope.js";
export * from "./receipt.js";
export * from "./merkle.js";
export * from "./note.js";
export * from "./enclave.js";
export * from "./chain.js";
export * from "./client.js";
