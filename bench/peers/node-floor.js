// The floor for any JavaScript webhook handler: check X-Hub-Signature-256 (createHmac +
// timingSafeEqual) and JSON.parse the body. Nothing is routed or stored: no JavaScript
// implementation can do less and still be correct.
import { createHmac, timingSafeEqual } from "node:crypto";
import { loadManifest, measure } from "./harness.js";

const manifest = loadManifest();
const secret = manifest.secret;

function handle(body, header) {
  if (typeof header !== "string" || !header.startsWith("sha256=")) return 401;
  const expected = Buffer.from(header.slice(7).trim(), "hex");
  const actual = createHmac("sha256", secret).update(body).digest();
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return 401;
  const delivery = JSON.parse(body.toString("utf8"));
  if (typeof delivery.object !== "string") return 400;
  return 200;
}

for (const p of manifest.payloads) {
  if (handle(p.body, p.signature) !== 200) throw new Error(`${p.name}: not accepted`);
}
await measure("node-floor", manifest, handle);
