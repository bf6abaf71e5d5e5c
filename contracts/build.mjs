#!/usr/bin/env node
// Compiles contracts/src/*.sol with the pinned solc-js (package.json) and writes
// contracts/out/<Contract>.json = {contractName, abi, bytecode, deployedBytecode}.
//
//   node contracts/build.mjs           rebuild and write the artifacts
//   node contracts/build.mjs --check   rebuild in memory; exit 1 if a committed artifact differs
//
// Output is deterministic: source unit names are relative ("src/X.sol",
// "@openzeppelin/contracts/..."), and metadata.bytecodeHash is "none", so no checkout path or
// IPFS hash ends up in the bytecode.
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const srcDir = join(here, "src");
const outDir = join(here, "out");
const require = createRequire(join(root, "package.json"));
const solc = require("solc");

const EXPECTED_SOLC = "0.8.37";
const ARTIFACTS = ["EnclaveRegistry", "Settlement", "TestToken", "FeeOnTransferToken", "SealbridgeTimelock"];

function fail(msg) {
  console.error(`contracts/build.mjs: ${msg}`);
  process.exit(1);
}

if (!solc.version().startsWith(EXPECTED_SOLC + "+")) {
  fail(`solc ${solc.version()} is not the pinned ${EXPECTED_SOLC}; run npm ci`);
}

const sources = {};
for (const f of readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[`src/${f}`] = { content: readFileSync(join(srcDir, f), "utf8") };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    metadata: { bytecodeHash: "none" },
    outputSelection: {
      "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
    },
  },
};

// Import callback: "@openzeppelin/..." from node_modules, "src/..." from contracts/src.
function findImports(path) {
  const candidates = path.startsWith("src/")
    ? [join(here, path)]
    : [join(root, "node_modules", path)];
  for (const c of candidates) {
    if (existsSync(c)) return { contents: readFileSync(c, "utf8") };
  }
  return { error: `import not found: ${path}` };
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) fail(`${errors.length} compilation error(s)`);

const rendered = {};
for (const name of ARTIFACTS) {
  const c = output.contracts[`src/${name}.sol`]?.[name];
  if (!c) fail(`contract ${name} missing from compiler output`);
  const artifact = {
    contractName: name,
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
    deployedBytecode: "0x" + c.evm.deployedBytecode.object,
  };
  rendered[name] = JSON.stringify(artifact, null, 2) + "\n";
}

if (process.argv.includes("--check")) {
  const stale = [];
  for (const [name, text] of Object.entries(rendered)) {
    const p = join(outDir, `${name}.json`);
    if (!existsSync(p) || readFileSync(p, "utf8") !== text) stale.push(`contracts/out/${name}.json`);
  }
  if (stale.length > 0) {
    fail(`stale artifact(s): ${stale.join(", ")}; run \`node contracts/build.mjs\` and commit the result`);
  }
  console.log(`contracts/build.mjs: ${ARTIFACTS.length} artifacts are fresh (solc ${solc.version()})`);
} else {
  mkdirSync(outDir, { recursive: true });
  for (const [name, text] of Object.entries(rendered)) {
    writeFileSync(join(outDir, `${name}.json`), text);
    console.log(`wrote contracts/out/${name}.json`);
  }
}
