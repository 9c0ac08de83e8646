// Shared timing loop of the JavaScript side of `make bench-peers`, the same method as the Rust
// side (shared/examples/bench_peers.rs): for each payload, warm up, then take samples of a
// batch of deliveries each, and report the median time per delivery.
//
// Usage: node <script>.js <manifest.json>; prints one JSON object on stdout:
//   {"impl": "...", "results": [{"name": "2KB", "bytes": 2048, "median_ns": 12345.6, "samples": 51}]}
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

export function loadManifest() {
  const path = process.argv[2];
  if (!path) {
    console.error("usage: node <script>.js <manifest.json>");
    process.exit(2);
  }
  const manifest = JSON.parse(readFileSync(path, "utf8"));
  const payloads = manifest.payloads.map((p) => ({
    ...p,
    // The body as received from the HTTP layer: raw bytes.
    body: readFileSync(join(dirname(path), p.file)),
  }));
  return { ...manifest, payloads };
}

const now = () => process.hrtime.bigint();

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// `handle(body, signature)` may return a promise (then it is awaited, as a server would).
export async function measure(impl, manifest, handle) {
  const { samples, sampleMillis, warmupMillis } = manifest.timing;
  const results = [];
  for (const payload of manifest.payloads) {
    const run = async (n) => {
      for (let i = 0; i < n; i++) {
        const r = handle(payload.body, payload.signature);
        if (r && typeof r.then === "function") await r;
      }
    };
    // Warm-up (lets the JIT optimise) and calibration: how many deliveries fill a sample.
    let batch = 1;
    const warmupEnd = now() + BigInt(warmupMillis) * 1_000_000n;
    let perDelivery = Infinity;
    while (now() < warmupEnd) {
      const start = now();
      await run(batch);
      perDelivery = Math.min(perDelivery, Number(now() - start) / batch);
      if (perDelivery * batch < (sampleMillis * 1e6) / 4) batch *= 2;
    }
    batch = Math.max(1, Math.round((sampleMillis * 1e6) / perDelivery));
    const times = [];
    for (let s = 0; s < samples; s++) {
      const start = now();
      await run(batch);
      times.push(Number(now() - start) / batch);
    }
    results.push({ name: payload.name, bytes: payload.body.length, median_ns: median(times), samples, batch });
  }
  process.stdout.write(JSON.stringify({ impl, results }) + "\n");
}
