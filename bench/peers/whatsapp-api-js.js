// whatsapp-api-js's webhook entry point, as its node:http middleware calls it: the body as a
// string, JSON.parse, then `post(data, raw_body, signature)`, which checks the signature with
// the app secret (Web Crypto HMAC-SHA256) and dispatches to the `message`/`status` handlers.
import { WhatsAppAPI } from "whatsapp-api-js";
import { loadManifest, measure } from "./harness.js";

const manifest = loadManifest();
const Whatsapp = new WhatsAppAPI({
  token: "bench-token",
  appSecret: manifest.secret,
  webhookVerifyToken: "bench-verify-token",
  v: "v23.0",
});
let seen = 0;
Whatsapp.on.message = () => {
  seen++;
};
Whatsapp.on.status = () => {
  seen++;
};

async function handle(body, signature) {
  const raw = body.toString("utf-8");
  await Whatsapp.post(JSON.parse(raw || "{}"), raw, signature);
}

for (const p of manifest.payloads) {
  await handle(p.body, p.signature); // throws when the signature is not accepted
}
if (seen !== manifest.payloads.length) throw new Error("a payload was not dispatched");
await measure("whatsapp-api-js", manifest, handle);
